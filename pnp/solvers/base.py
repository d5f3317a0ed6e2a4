"""Common machinery of the PnP solvers: state, ``step()``, ``run()``, frozen results.

A solver holds explicit state (the current iterate ``x``, the iteration count, plus any
auxiliary variable), advances it with :meth:`PnPSolver.step` and iterates with
:meth:`PnPSolver.run`, which returns a frozen :class:`SolverResult`. Only scalars are recorded
per iteration (memory stays flat). Every solver evaluates, per image ``b``, the relative
fixed-point residual ``||x_{k+1} - x_k|| / ||x_k||``; each image stops (is frozen and no longer
evaluated) once its own residual is below ``tol``, and the run stops when all have
(``converged=True``), when ``max_iter`` is reached, or when an iterate holds NaN/Inf (the last
finite iterate is returned and ``stop_reason`` says so). ``acceleration="anderson"`` replaces
plain steps by safeguarded Anderson steps where they pass the safeguard
(:mod:`pnp.solvers.anderson`); the guarantee of the plain loop is kept.

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
from typing import Any, Callable, ClassVar, TextIO

import torch
from torch import Tensor

from pnp.exceptions import ConvergenceWarning, GuaranteeWarning
from pnp.guarantees import Guarantee, denoiser_certificate, with_acceleration
from pnp.metrics import psnr as _psnr
from pnp.progress import ProgressLine
from pnp.solvers.anderson import ACCELERATIONS, AccelerationStats, Anderson, AndersonConfig

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
    acceleration: str = "none"
    anderson_memory: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class History:
    """Per-iteration, per-image records (CPU float64 tensors).

    ``residual``: ``[iters, B]`` relative fixed-point residual ``||x_{k+1}-x_k|| / ||x_k||``
    (with acceleration, FBS/HQS: ``||T(s) - s|| / ||s||`` at the accepted point ``s``, the same
    quantity for a plain step; a frozen image, or a rejected Anderson candidate, repeats the
    image's last value);
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

    ``x``: the last (finite) iterate ``[B, C, H, W]``; ``iterations``: iterations done (each
    one evaluation of the fixed-point map, i.e. one denoiser call, accelerated or not);
    ``converged``: every image's residual < ``tol``; ``stop_reason``: one sentence;
    ``history``: :class:`History`; ``guarantee``: the :class:`~pnp.guarantees.Guarantee` that
    applies; ``params``: :class:`SolverParams`; ``image_iterations``: per image, the iteration
    at which it stopped (each image stops on its own residual); ``acceleration``: the per-image
    Anderson counts (``None`` for the plain loop).
    """

    x: Tensor
    iterations: int
    converged: bool
    stop_reason: str
    history: History
    guarantee: Guarantee
    params: SolverParams
    image_iterations: tuple[int, ...] = ()
    acceleration: AccelerationStats | None = None

    def to_dict(self, *, include_history: bool = True) -> dict[str, Any]:
        """JSON-serialisable summary (without ``x``)."""
        d: dict[str, Any] = {
            "iterations": self.iterations,
            "converged": self.converged,
            "stop_reason": self.stop_reason,
            "guarantee": self.guarantee.to_dict(),
            "params": self.params.to_dict(),
            "image_iterations": list(self.image_iterations),
            "acceleration": None if self.acceleration is None else self.acceleration.to_dict(),
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
    """Base class. Subclasses implement :meth:`_evaluate` (one application of the fixed-point
    map on the governing variable) and :meth:`_make_guarantee`; the loop, the per-image stopping
    and the optional Anderson acceleration live here, once for every solver.

    The plain loop is the Krasnoselskii-Mann iteration ``s_{k+1} = T(s_k)`` of the solver's map
    ``T`` on its governing variable ``s`` (``x`` for FBS/HQS, ``z`` for ADMM/DRS); the returned
    iterate ``x`` is the image that the last evaluation produced. Each image stops on its own
    residual: once it is below ``tol`` the image is frozen and no longer evaluated (the others
    go on in one batched call); the run stops when all are frozen or at ``max_iter``.

    Parameters (keyword-only after ``physics, y, denoiser``)
    ----------------------------------------------------------
    physics:
        A deepinv ``LinearPhysics``-compatible operator (``A``, ``A_adjoint``, ``prox_l2``;
        ``opnorm()`` used when present).
    y:
        Measurements (``physics.A(x)`` shape).
    denoiser:
        ``denoiser(x, sigma) -> Tensor``; its ``certificate`` (if any) decides the guarantee.
        When it has a ``for_loop()`` method (denoisers with an inner solve, e.g. the prox of a
        ridge regulariser), the run uses the copy it returns, which warm-starts across iterations.
    sigma:
        Denoiser noise level (> 0), fixed over the iterations.
    gamma:
        Step / prox parameter (> 0); ``None`` -> ``1 / (w ||A||^2)``.
    data_weight:
        ``w`` in ``f(x) = w/2 ||Ax - y||^2``.
    max_iter, tol:
        Iteration budget and stopping tolerance on each image's relative residual.
    x0:
        Initial iterate; default ``A^T y`` (as deepinv does).
    x_true:
        Reference image; enables per-iteration PSNR.
    progress:
        ``True``: a progress line (iteration, residual, PSNR when known, ETA) on stderr;
        a text stream: the line goes there. ``False``: silent.
    acceleration:
        ``"none"`` (plain loop) or ``"anderson"``: safeguarded type-II Anderson acceleration
        (:mod:`pnp.solvers.anderson`), which keeps the guarantee of the plain loop.
    anderson_memory:
        Memory ``m`` of the Anderson step (default 5).
    """

    name: ClassVar[str] = "pnp"
    needs_opnorm_always: ClassVar[bool] = False
    #: residual on the governing variable ``||T(s) - s|| / ||s||`` (FBS, HQS, where ``s = x``);
    #: ``False``: on the returned iterate ``||x_{k+1} - x_k|| / ||x_k||`` (ADMM).
    residual_on_state: ClassVar[bool] = True

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
        progress: bool | TextIO = False,
        acceleration: str = "none",
        anderson_memory: int = 5,
    ) -> None:
        if not (hasattr(physics, "A") and hasattr(physics, "A_adjoint")):
            raise TypeError(
                f"physics must provide A and A_adjoint, got {type(physics).__name__}"
            )
        if not callable(denoiser):
            raise TypeError(f"denoiser must be callable, got {type(denoiser).__name__}")
        self.physics = physics
        self.y = _check_tensor("y", y)
        # a denoiser with an inner solve may offer a warm-started copy for this run (ridge priors)
        for_loop = getattr(denoiser, "for_loop", None)
        self.denoiser = for_loop() if callable(for_loop) else denoiser
        self.sigma = _positive_float("sigma", sigma)
        self.data_weight = _positive_float("data_weight", data_weight)
        self.relaxation = _positive_float("relaxation", relaxation)
        self.firm = bool(firm)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        self.max_iter = max_iter
        self.tol = _positive_float("tol", tol)
        self.progress = progress if hasattr(progress, "write") else bool(progress)
        if not isinstance(acceleration, str) or acceleration.lower() not in ACCELERATIONS:
            raise ValueError(
                f"acceleration must be one of {', '.join(ACCELERATIONS)}, got {acceleration!r}"
            )
        self.acceleration = acceleration.lower()
        self.anderson_config: AndersonConfig | None = None
        if self.acceleration == "anderson":
            self.anderson_config = AndersonConfig(memory=anderson_memory)
        self._legacy = type(self)._evaluate is PnPSolver._evaluate
        if self._legacy and self.acceleration != "none":
            raise ValueError(
                f"acceleration={acceleration!r}: {type(self).__name__} defines no fixed-point "
                "map (_evaluate), only the plain loop"
            )

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
        b = self.x.shape[0]
        self._active = torch.ones(b, dtype=torch.bool)
        self._last_res = torch.full((b,), math.inf, dtype=torch.float64)
        self._image_iterations = torch.zeros(b, dtype=torch.long)
        self._state: Tensor = self.x.clone()  # governing variable s (z for ADMM)
        self._anderson: Anderson | None = None
        if self.anderson_config is not None:
            self._anderson = Anderson(self.anderson_config)
            self._anderson.start(self._state)

    # -- to implement -------------------------------------------------------------------------
    def _evaluate(self, s: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        """One application of the fixed-point map to the governing variable ``s`` of the images
        ``rows`` (``None``: the whole batch): returns ``(T(s), x)`` with ``x`` the image this
        evaluation produces (the iterate the plain loop would return)."""
        raise NotImplementedError

    def _update(self) -> Tensor:  # pragma: no cover - legacy subclasses only
        """Legacy hook (subclasses without :meth:`_evaluate`): advance the state, return
        ``x_{k+1}``. Such solvers run the plain loop over the whole batch."""
        raise NotImplementedError

    def _make_guarantee(self) -> Guarantee:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------------------
    def _y_rows(self, rows: Tensor | None) -> Tensor:
        return self.y if rows is None else self.y[rows.to(self.y.device)]

    def _grad_f(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """``grad f(x) = w A^T (A x - y)`` (``y`` of the images ``rows``)."""
        g = self.physics.A_adjoint(self.physics.A(x) - self._y_rows(rows))
        return g if self.data_weight == 1.0 else self.data_weight * g

    def _prox_f(self, z: Tensor, rows: Tensor | None = None) -> Tensor:
        """``prox_{gamma f}(z) = argmin_x gamma w/2 ||Ax - y||^2 + 1/2 ||x - z||^2``.

        Delegates to ``physics.prox_l2(z, y, gamma * w)`` (deepinv's convention): one FFT
        division for circular blur, deepinv's iterative least squares for other operators.
        """
        return self.physics.prox_l2(z, self._y_rows(rows), self.gamma * self.data_weight)

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
            acceleration=self.acceleration,
            anderson_memory=None if self.anderson_config is None else self.anderson_config.memory,
        )

    # -- public -------------------------------------------------------------------------------
    def _non_finite(self) -> None:
        self._stopped = True
        self.converged = False
        self.stop_reason = (
            f"non-finite values (NaN/Inf) at iteration {self.iteration + 1}; "
            f"returned the last finite iterate (iteration {self.iteration})"
        )

    def _step_legacy(self) -> Tensor | None:
        x_old = self.x
        x_new = self._update()
        diff = _per_image_norm(x_new - x_old)
        finite = bool(torch.isfinite(diff).all()) or bool(torch.isfinite(x_new).all())
        if not finite:
            self._non_finite()
            return None
        res = (diff / _per_image_norm(x_old).clamp_min(_EPS)).double().cpu()
        self.x = x_new
        self._last_res = res
        self._image_iterations += 1
        return res

    def step(self) -> Tensor | None:
        """One iteration (one evaluation of the fixed-point map for every image still running).

        Returns the per-image relative residual ``[B]`` (a frozen image keeps its last value; an
        image whose Anderson candidate was rejected keeps its previous residual), or ``None``
        when the new values are not finite (the state keeps the last finite iterate and the
        solver stops). Images whose residual drops below ``tol`` are frozen; when all are, the
        solver stops with ``converged=True``."""
        if self._stopped:
            raise RuntimeError(f"solver already stopped: {self.stop_reason}")
        t0 = time.perf_counter()
        with torch.no_grad():
            if self._legacy:
                res = self._step_legacy()
                if res is None:
                    return None
            else:
                active = self._active
                rows = None if bool(active.all()) else active.nonzero().flatten()
                drows = None if rows is None else rows.to(self.x.device)
                pts = (
                    self._anderson.points(rows) if self._anderson is not None
                    else (self._state if rows is None else self._state[drows])
                )
                t_pts, x_new = self._evaluate(pts, drows)
                if not (bool(torch.isfinite(t_pts).all()) and bool(torch.isfinite(x_new).all())):
                    self._non_finite()
                    return None
                if self._anderson is not None:
                    ok = self._anderson.update(rows, pts, t_pts)
                else:
                    ok = torch.ones(pts.shape[0], dtype=torch.bool)
                x_old = self.x if rows is None else self.x[drows]
                if self.residual_on_state:
                    num, den = _per_image_norm(t_pts - pts), _per_image_norm(pts)
                else:
                    num, den = _per_image_norm(x_new - x_old), _per_image_norm(x_old)
                res_rows = (num / den.clamp_min(_EPS)).double().cpu()
                all_rows = torch.arange(self.x.shape[0]) if rows is None else rows
                prev = self._last_res[all_rows]
                res_rows = torch.where(ok, res_rows, prev)
                okd = ok.to(self.x.device).view(-1, *([1] * (self.x.ndim - 1)))
                x_rows = torch.where(okd, x_new.to(self.x.dtype), x_old)
                if rows is None:
                    self.x = x_rows
                    if self._anderson is None:
                        self._state = t_pts
                else:
                    self.x = self.x.index_copy(0, drows, x_rows)
                    if self._anderson is None:
                        self._state = self._state.index_copy(0, drows, t_pts.to(self._state.dtype))
                res = self._last_res.clone()
                res[all_rows] = res_rows
                self._last_res = res
                self._image_iterations[all_rows] += 1
                done = ok & (res_rows < self.tol)
                self._active[all_rows[done]] = False
            self.iteration += 1
            self._residuals.append(res.tolist())
            if self.x_true is not None:
                self._psnrs.append(_psnr(self._region(self.x), self.x_true).tolist())
            if not self._legacy and not bool(self._active.any()):
                self.converged = True
                self._stopped = True
                self.stop_reason = (
                    f"converged: max relative residual {float(res.max()):.3g} < tol "
                    f"{self.tol:g} at iteration {self.iteration}"
                )
        self._times.append(time.perf_counter() - t0)
        return res

    def run(self) -> SolverResult:
        """Iterate until every image has converged, ``max_iter`` or a non-finite iterate."""
        if not self.guarantee.holds and not self._warned:
            warnings.warn(
                f"{self.name}: {self.guarantee.summary()}", GuaranteeWarning, stacklevel=2
            )
            self._warned = True
        line = None
        if self.progress is not False:
            stream = self.progress if hasattr(self.progress, "write") else None
            line = ProgressLine(f"PnP-{self.name.upper()}", total=self.max_iter, tol=self.tol,
                                stream=stream)
        try:
            while not self._stopped and self.iteration < self.max_iter:
                res = self.step()
                if res is None:
                    warnings.warn(
                        f"{self.name}: {self.stop_reason}", ConvergenceWarning, stacklevel=2
                    )
                    break
                worst = float(res.max())
                if line is not None:
                    p = None if not self._psnrs else sum(self._psnrs[-1]) / len(self._psnrs[-1])
                    line.update(self.iteration, worst, psnr=p, seconds=self._times[-1])
                if self._legacy and worst < self.tol:
                    self.converged = True
                    self._stopped = True
                    self.stop_reason = (
                        f"converged: max relative residual {worst:.3g} < tol {self.tol:g} "
                        f"at iteration {self.iteration}"
                    )
            if not self._stopped:
                self.stop_reason = f"max_iter reached ({self.max_iter} iterations)"
        finally:
            if line is not None:
                line.close()
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
        stats = None if self._anderson is None else self._anderson.stats()
        guarantee = self.guarantee
        if stats is not None:
            guarantee = with_acceleration(
                guarantee, accepted=stats.total_accepted, tried=stats.total_tried,
                iterations=self.iteration, safeguard=stats.config.safeguard,
                max_step=stats.config.max_step, memory=stats.config.memory,
            )
        return SolverResult(
            x=self.x,
            iterations=self.iteration,
            converged=self.converged,
            stop_reason=self.stop_reason,
            history=history,
            guarantee=guarantee,
            params=self.params(),
            image_iterations=tuple(int(v) for v in self._image_iterations),
            acceleration=stats,
        )
