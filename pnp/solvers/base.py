"""Common machinery of the PnP solvers: state, ``step()``, ``run()``, frozen results.

A solver holds explicit state (the current iterate ``x``, the iteration count, plus any
auxiliary variable), advances it with :meth:`PnPSolver.step` and iterates with
:meth:`PnPSolver.run`, which returns a frozen :class:`SolverResult`. Only scalars are recorded
per iteration (memory stays flat). Every solver evaluates, per image ``b``, the relative
fixed-point residual ``||x_{k+1} - x_k|| / ||x_k||`` and stops when its maximum over the batch
is below ``tol`` (``converged=True``), when ``max_iter`` is reached, or when an iterate holds
NaN/Inf (the last finite iterate is returned and ``stop_reason`` says so).

The operator norm ``||A||`` (not squared) comes from ``physics.opnorm()`` when the physics has
one (exact, e.g. :class:`operators.FFTBlur`), else from deepinv's power iteration
``physics.compute_sqnorm`` (which returns ``||A^T A|| = ||A||^2``; we take its square root), in
which case it is an estimate and the guarantee is flagged ``checked=False``. A physics whose
``opnorm_kind`` is ``"upper bound"`` (e.g. :class:`operators.FFTBlur` with ``boundary="valid"``)
gives a certified bound: the FBS step condition is still checked with it.

When ``x`` lives on a larger grid than the observation (``"valid"`` blur), ``x_true`` is the
reference for ``physics.observed_region(x)`` (the part of ``x`` aligned with ``y``), and the PSNR
history is measured there.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from pnp.exceptions import ConvergenceWarning, GuaranteeWarning
from pnp.guarantees import Guarantee, denoiser_certificate
from pnp.metrics import psnr as _psnr

__all__ = [
    "History",
    "PnPSolver",
    "SolverParams",
    "SolverResult",
    "operator_norm",
]

_EPS = 1e-12


def operator_norm(physics: Any, x_like: Tensor) -> tuple[float, bool]:
    """``(||A||, exact)`` for images shaped like ``x_like``.

    ``physics.opnorm(image_size=(H, W))`` (or ``physics.opnorm()``) when present: exact.
    Otherwise ``sqrt(physics.compute_sqnorm(x_like))`` -- deepinv's power iteration on
    ``A^T A``, a lower bound of ``||A||^2`` in general -- with ``exact=False``. The global
    random state is left untouched.
    """
    opnorm = getattr(physics, "opnorm", None)
    if callable(opnorm):
        try:
            value = opnorm(image_size=tuple(x_like.shape[-2:]))
        except TypeError:
            value = opnorm()
        value = float(value)
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"physics.opnorm() must be finite and > 0, got {value!r}")
        return value, True
    if not hasattr(physics, "compute_sqnorm") and not hasattr(physics, "compute_norm"):
        raise TypeError(
            f"physics of type {type(physics).__name__} has neither opnorm() nor compute_sqnorm(); "
            "pass gamma explicitly"
        )
    devices = [x_like.device] if x_like.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(0)
        if hasattr(physics, "compute_sqnorm"):
            sq = physics.compute_sqnorm(x_like, max_iter=200, tol=1e-7, verbose=False)
        else:  # older deepinv: compute_norm returns the squared norm
            sq = physics.compute_norm(x_like, max_iter=200, tol=1e-7, verbose=False)
    value = math.sqrt(float(sq))
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"estimated operator norm must be finite and > 0, got {value!r}")
    return value, False


@dataclass(frozen=True)
class SolverParams:
    """The parameters a run actually used (serialisable with :meth:`to_dict`)."""

    solver: str
    sigma: float
    gamma: float
    gamma_rule: str
    data_weight: float
    relaxation: float
    firm: bool
    max_iter: int
    tol: float
    opnorm: float | None
    opnorm_exact: bool
    denoiser: str
    opnorm_kind: str = "exact"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class History:
    """Per-iteration, per-image records (CPU float64 tensors).

    ``residual``: ``[iters, B]`` relative fixed-point residual ``||x_{k+1}-x_k|| / ||x_k||``;
    ``psnr``: ``[iters, B]`` PSNR of ``x_{k+1}`` (dB; ``None`` without ``x_true``);
    ``time``: ``[iters]`` seconds spent in each iteration.
    """

    residual: Tensor
    psnr: Tensor | None
    time: Tensor

    def to_dict(self) -> dict[str, Any]:
        return {
            "residual": self.residual.tolist(),
            "psnr": None if self.psnr is None else self.psnr.tolist(),
            "time": self.time.tolist(),
        }


@dataclass(frozen=True)
class SolverResult:
    """What a solver returns.

    ``x``: the last (finite) iterate ``[B, C, H, W]``; ``iterations``: iterations done;
    ``converged``: max residual over the batch < ``tol``; ``stop_reason``: one sentence;
    ``history``: :class:`History`; ``guarantee``: the :class:`~pnp.guarantees.Guarantee` that
    applies; ``params``: :class:`SolverParams`.
    """

    x: Tensor
    iterations: int
    converged: bool
    stop_reason: str
    history: History
    guarantee: Guarantee
    params: SolverParams

    def to_dict(self, *, include_history: bool = True) -> dict[str, Any]:
        """JSON-serialisable summary (without ``x``)."""
        d: dict[str, Any] = {
            "iterations": self.iterations,
            "converged": self.converged,
            "stop_reason": self.stop_reason,
            "guarantee": self.guarantee.to_dict(),
            "params": self.params.to_dict(),
        }
        if include_history:
            d["history"] = self.history.to_dict()
        return d


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def _check_tensor(name: str, t: Any) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_complex() or not t.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return t


def _per_image_norm(t: Tensor) -> Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


class PnPSolver:
    """Base class. Subclasses implement :meth:`_update` and :meth:`_make_guarantee`.

    Parameters (keyword-only after ``physics, y, denoiser``)
    ----------------------------------------------------------
    physics:
        A deepinv ``LinearPhysics``-compatible operator (``A``, ``A_adjoint``, ``prox_l2``;
        ``opnorm()`` used when present).
    y:
        Measurements (``physics.A(x)`` shape).
    denoiser:
        ``denoiser(x, sigma) -> Tensor``; its ``certificate`` (if any) decides the guarantee.
    sigma:
        Denoiser noise level (> 0), fixed over the iterations.
    gamma:
        Step / prox parameter (> 0); ``None`` -> ``1 / (w ||A||^2)``.
    data_weight:
        ``w`` in ``f(x) = w/2 ||Ax - y||^2``.
    max_iter, tol:
        Iteration budget and stopping tolerance on the max relative residual.
    x0:
        Initial iterate; default ``A^T y`` (as deepinv does).
    x_true:
        Reference image; enables per-iteration PSNR.
    progress:
        Show a tqdm progress bar.
    """

    name: ClassVar[str] = "pnp"
    needs_opnorm_always: ClassVar[bool] = False

    def __init__(
        self,
        physics: Any,
        y: Tensor,
        denoiser: Callable[..., Tensor],
        *,
        sigma: float,
        gamma: float | None = None,
        data_weight: float = 1.0,
        relaxation: float = 1.0,
        firm: bool = False,
        max_iter: int = 200,
        tol: float = 1e-5,
        x0: Tensor | None = None,
        x_true: Tensor | None = None,
        progress: bool = False,
    ) -> None:
        if not (hasattr(physics, "A") and hasattr(physics, "A_adjoint")):
            raise TypeError(
                f"physics must provide A and A_adjoint, got {type(physics).__name__}"
            )
        if not callable(denoiser):
            raise TypeError(f"denoiser must be callable, got {type(denoiser).__name__}")
        self.physics = physics
        self.y = _check_tensor("y", y)
        self.denoiser = denoiser
        self.sigma = _positive_float("sigma", sigma)
        self.data_weight = _positive_float("data_weight", data_weight)
        self.relaxation = _positive_float("relaxation", relaxation)
        self.firm = bool(firm)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        self.max_iter = max_iter
        self.tol = _positive_float("tol", tol)
        self.progress = bool(progress)

        with torch.no_grad():
            if x0 is None:
                x0 = physics.A_adjoint(y)
            else:
                x0 = _check_tensor("x0", x0)
                ref_shape = tuple(physics.A_adjoint(y).shape)
                if tuple(x0.shape) != ref_shape:
                    raise ValueError(
                        f"x0 must have shape {ref_shape} (that of A^T y), got {tuple(x0.shape)}"
                    )
        if x0.ndim != 4:
            raise ValueError(f"images must have shape [B, C, H, W], got {tuple(x0.shape)}")
        self.x: Tensor = x0.detach().clone()
        region = getattr(physics, "observed_region", None)
        self._region: Callable[[Tensor], Tensor] = region if callable(region) else (lambda t: t)
        if x_true is not None:
            x_true = _check_tensor("x_true", x_true)
            ref_shape = tuple(self._region(self.x).shape)
            if tuple(x_true.shape) != ref_shape:
                raise ValueError(
                    f"x_true must have shape {ref_shape}, got {tuple(x_true.shape)}"
                )
        self.x_true = x_true

        self.opnorm: float | None = None
        self.opnorm_exact = False
        self.opnorm_kind = "none"
        if gamma is None or self.needs_opnorm_always:
            self.opnorm, certified = operator_norm(physics, self.x)
            kind = getattr(physics, "opnorm_kind", "exact") if certified else "power-iteration estimate"
            self.opnorm_kind = kind if isinstance(kind, str) else "exact"
            self.opnorm_exact = certified and self.opnorm_kind == "exact"
        if gamma is None:
            self.gamma = 1.0 / (self.data_weight * self.opnorm**2)
            self.gamma_rule = "default 1/(w*||A||^2)"
        else:
            self.gamma = _positive_float("gamma", gamma)
            self.gamma_rule = "given"
        self.certificate = denoiser_certificate(denoiser)
        self.guarantee: Guarantee = self._make_guarantee()

        self.iteration = 0
        self.converged = False
        self.stop_reason = "not started"
        self._stopped = False
        self._residuals: list[list[float]] = []
        self._psnrs: list[list[float]] = []
        self._times: list[float] = []
        self._warned = False

    # -- to implement -------------------------------------------------------------------------
    def _update(self) -> Tensor:  # pragma: no cover - abstract
        """Advance auxiliary state and return the next iterate ``x_{k+1}``."""
        raise NotImplementedError

    def _make_guarantee(self) -> Guarantee:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------------------
    def _grad_f(self, x: Tensor) -> Tensor:
        """``grad f(x) = w A^T (A x - y)``."""
        g = self.physics.A_adjoint(self.physics.A(x) - self.y)
        return g if self.data_weight == 1.0 else self.data_weight * g

    def _prox_f(self, z: Tensor) -> Tensor:
        """``prox_{gamma f}(z) = argmin_x gamma w/2 ||Ax - y||^2 + 1/2 ||x - z||^2``.

        Delegates to ``physics.prox_l2(z, y, gamma * w)`` (deepinv's convention): one FFT
        division for circular blur, deepinv's iterative least squares for other operators.
        """
        return self.physics.prox_l2(z, self.y, self.gamma * self.data_weight)

    def _prox_inexact(self) -> str | None:
        """How ``physics.prox_l2`` is computed when the physics says it is iterative, else None."""
        if getattr(self.physics, "prox_is_exact", True):
            return None
        describe = getattr(self.physics, "prox_description", None)
        return str(describe()) if callable(describe) else "iterative solver"

    def _denoise(self, v: Tensor) -> Tensor:
        out = self.denoiser(v, self.sigma)
        if self.firm:
            out = 0.5 * (v + out)
        return out

    def params(self) -> SolverParams:
        return SolverParams(
            solver=self.name,
            sigma=self.sigma,
            gamma=self.gamma,
            gamma_rule=self.gamma_rule,
            data_weight=self.data_weight,
            relaxation=self.relaxation,
            firm=self.firm,
            max_iter=self.max_iter,
            tol=self.tol,
            opnorm=self.opnorm,
            opnorm_exact=self.opnorm_exact,
            denoiser=type(self.denoiser).__name__,
            opnorm_kind=self.opnorm_kind,
        )

    # -- public -------------------------------------------------------------------------------
    def step(self) -> Tensor | None:
        """One iteration. Returns the per-image relative residual ``[B]``, or ``None`` when the
        new iterate is not finite (the state keeps the last finite iterate and the solver
        stops)."""
        if self._stopped:
            raise RuntimeError(f"solver already stopped: {self.stop_reason}")
        t0 = time.perf_counter()
        with torch.no_grad():
            x_old = self.x
            x_new = self._update()
            diff = _per_image_norm(x_new - x_old)
            # x_old is finite, so a non-finite x_new shows in diff; confirm (norm overflow)
            finite = bool(torch.isfinite(diff).all()) or bool(torch.isfinite(x_new).all())
            if not finite:
                self._stopped = True
                self.converged = False
                self.stop_reason = (
                    f"non-finite values (NaN/Inf) at iteration {self.iteration + 1}; "
                    f"returned the last finite iterate (iteration {self.iteration})"
                )
                return None
            res = diff / _per_image_norm(x_old).clamp_min(_EPS)
            self.x = x_new
            self.iteration += 1
            self._residuals.append(res.tolist())
            if self.x_true is not None:
                self._psnrs.append(_psnr(self._region(x_new), self.x_true).tolist())
        self._times.append(time.perf_counter() - t0)
        return res

    def run(self) -> SolverResult:
        """Iterate until convergence, ``max_iter`` or a non-finite iterate."""
        if not self.guarantee.holds and not self._warned:
            warnings.warn(
                f"{self.name}: {self.guarantee.summary()}", GuaranteeWarning, stacklevel=2
            )
            self._warned = True
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.max_iter, initial=self.iteration, desc=f"PnP-{self.name.upper()}")
        try:
            while not self._stopped and self.iteration < self.max_iter:
                res = self.step()
                if res is None:
                    warnings.warn(
                        f"{self.name}: {self.stop_reason}", ConvergenceWarning, stacklevel=2
                    )
                    break
                worst = float(res.max())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(residual=f"{worst:.2e}")
                if worst < self.tol:
                    self.converged = True
                    self._stopped = True
                    self.stop_reason = (
                        f"converged: max relative residual {worst:.3g} < tol {self.tol:g} "
                        f"at iteration {self.iteration}"
                    )
            if not self._stopped:
                self.stop_reason = f"max_iter reached ({self.max_iter} iterations)"
        finally:
            if bar is not None:
                bar.close()
        return self.result()

    def result(self) -> SolverResult:
        """The frozen result for the current state."""
        b = self.x.shape[0]
        residual = torch.tensor(self._residuals, dtype=torch.float64).reshape(-1, b)
        psnr = (
            torch.tensor(self._psnrs, dtype=torch.float64).reshape(-1, b)
            if self.x_true is not None
            else None
        )
        history = History(
            residual=residual, psnr=psnr, time=torch.tensor(self._times, dtype=torch.float64)
        )
        return SolverResult(
            x=self.x,
            iterations=self.iteration,
            converged=self.converged,
            stop_reason=self.stop_reason,
            history=history,
            guarantee=self.guarantee,
            params=self.params(),
        )
