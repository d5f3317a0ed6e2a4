"""The denoiser of a ridge regulariser: ``D(y, sigma) = prox_{lambda(sigma) R(., sigma)}(y)``.

The prox minimises ``F(x) = 1/2 ||x - y||^2 + lambda R(x)``, which is ``m``-strongly convex with an
``L``-Lipschitz gradient, ``m = 1 - lambda rho`` and ``L = 1 + lambda Lip(grad R)`` (certified
constants of :class:`denoisers.ridge.RidgeCertificate`; ``m = 1`` for CRR, ``m >= 1 - lambda_cap``
for WCRR). Solver: accelerated gradient with the strongly convex momentum
``beta = (sqrt L - sqrt m) / (sqrt L + sqrt m)``, step ``1/L``, and gradient restart (momentum
dropped when ``<grad F(z_k), x_{k+1} - x_k> > 0``); warm-startable (``x0``).

Stopping and the inexactness bound. Each image stops at the first extrapolated point ``z_k`` where
the root-mean-square gradient ``||grad F(z_k)|| / sqrt(n) <= tol`` and that point is returned. Strong
convexity gives ``||z_k - x*|| <= ||grad F(z_k)|| / m``, so the returned image is within RMS
``tol / m`` of the exact prox (per pixel, root-mean-square); the certificate states it.

Guarantees of the exact prox: CRR, firmly non-expansive (``alpha = 1/2``) for every ``sigma``; WCRR,
``(1 - lambda rho)``-cocoercive, so ``1 / (1 - lambda rho)``-Lipschitz (not averaged).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from deepinv.models import Denoiser

from denoisers.certificate import Certificate
from denoisers.ridge.model import RidgeRegularizer
from denoisers.contract import check_input, sigma_vector

__all__ = ["ProxInfo", "ProxSearchSurrogate", "RidgeDenoiser", "ridge_prox", "ProxConvergenceWarning"]


class ProxConvergenceWarning(UserWarning):
    """The inner prox solve stopped at ``max_iter`` before reaching its tolerance."""


@dataclass(frozen=True)
class ProxInfo:
    iterations: int
    converged: bool
    grad_rms: tuple[float, ...]
    error_bound_rms: tuple[float, ...]


def _check_image(y: Any, name: str = "y") -> torch.Tensor:
    check_input(y, name=name)
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return y


def _rms(t: torch.Tensor) -> torch.Tensor:
    """Root-mean-square of each image of a batch, ``||t_b|| / sqrt(n)``."""
    return t.flatten(1).norm(dim=1) / math.sqrt(t[0].numel())


def ridge_prox(
    reg: RidgeRegularizer,
    y: torch.Tensor,
    sigma: Any,
    *,
    x0: torch.Tensor | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
    lam_scale: float = 1.0,
    kernel: torch.Tensor | None = None,
    constants: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, ProxInfo]:
    """``prox_{lam_scale * lambda(sigma) R}(y)`` to RMS gradient ``tol`` (module docstring).

    ``constants = (Lip(grad R), rho)`` (certified) may be passed to skip recomputing them.
    Runs without autograd; returns ``(x, info)``.
    """
    _check_image(y)
    if not (isinstance(tol, (int, float)) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (isinstance(lam_scale, (int, float)) and lam_scale > 0 and math.isfinite(lam_scale)):
        raise ValueError(f"lam_scale must be a finite number > 0, got {lam_scale!r}")
    with torch.no_grad():
        b = y.shape[0]
        s = sigma_vector(sigma, b, y)
        if kernel is None:
            kernel = reg.kernel().detach()
        if constants is None:
            cert = reg.certificate()
            constants = (cert.lip_grad, cert.weak_convexity)
        lip_r, rho = constants
        lam = (reg.lambda_of(s) * lam_scale).to(y.dtype)
        L = 1.0 + lam * lip_r
        m = (1.0 - lam * rho).clamp_min(1e-12)
        if bool((m <= 1e-12).any()):
            raise ValueError(f"lambda * rho >= 1: the prox objective is not strongly convex (lambda={lam.tolist()}, rho={rho})")
        beta = ((L.sqrt() - m.sqrt()) / (L.sqrt() + m.sqrt())).view(-1, 1, 1, 1)
        step = (1.0 / L).view(-1, 1, 1, 1)
        lam4 = lam.view(-1, 1, 1, 1)
        x = (x0 if x0 is not None else y).clone()
        z = x.clone()
        active = torch.ones(b, dtype=torch.bool, device=y.device)
        out = x.clone()
        grad_rms = torch.zeros(b, dtype=y.dtype, device=y.device)
        it = 0
        for it in range(1, max_iter + 1):
            g = z - y + lam4 * reg.grad(z, s, kernel=kernel)
            rms = _rms(g)
            done = active & (rms <= tol)
            if bool(done.any()):
                out[done] = z[done]
                grad_rms[done] = rms[done]
                active &= ~done
            if not bool(active.any()):
                break
            x_new = z - step * g
            restart = ((g * (x_new - x)).flatten(1).sum(1) > 0).view(-1, 1, 1, 1)
            z_new = torch.where(restart, x_new, x_new + beta * (x_new - x))
            a4 = active.view(-1, 1, 1, 1)
            x = torch.where(a4, x_new, x)
            z = torch.where(a4, z_new, z)
        converged = not bool(active.any())
        if not converged:
            out[active] = z[active]
            g = z - y + lam4 * reg.grad(z, s, kernel=kernel)
            grad_rms[active] = _rms(g)[active]
        info = ProxInfo(
            iterations=it,
            converged=converged,
            grad_rms=tuple(grad_rms.tolist()),
            error_bound_rms=tuple((grad_rms / m).tolist()),
        )
        return out, info


class RidgeDenoiser(Denoiser):
    """deepinv-compatible ``D(y, sigma) = prox_{lambda(sigma) R}(y)`` of a ridge regulariser.

    ``tol``: RMS gradient tolerance of the inner solve (the returned image is within RMS
    ``tol / (1 - lambda rho)`` of the exact prox). ``warm_start=True`` starts each call from the
    previous output when the shapes agree (inside PnP loops the prox input changes little), and then
    tightens the call's tolerance to ``min(tol, STEP_FRACTION x`` the RMS change of the input since the
    last call, smallest over the batch``)``: the inner error shrinks with the loop's steps (summable when
    they decay geometrically), and a warm start is not returned unchanged while the loop still moves.
    The input is never modified. ``certificate`` is the generic :class:`Certificate` the PnP solvers read
    (CRR: Lipschitz 1, ``alpha = 1/2``; WCRR: Lipschitz ``1/(1 - lambda_max rho)``, no alpha), marked
    inexact; ``ridge_certificate`` has the regulariser's constants.
    """

    #: with ``warm_start``, each call's tolerance is at most this fraction of the RMS change of the input
    STEP_FRACTION = 0.1
    #: ... and at least this many machine epsilons of the image's dtype
    EPS_FLOOR = 10

    def __init__(self, reg: RidgeRegularizer, *, tol: float = 1e-4, max_iter: int = 1000, warm_start: bool = False) -> None:
        super().__init__()
        self.reg = reg
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.warm_start = bool(warm_start)
        self._last: torch.Tensor | None = None
        self._last_input: torch.Tensor | None = None
        self._cache: tuple[Any, ...] | None = None
        self.last_info: ProxInfo | None = None

    def _constants(self) -> tuple[torch.Tensor, Any]:
        key = tuple(p.data_ptr() for p in self.reg.parameters()) + tuple(p._version for p in self.reg.parameters())
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                cert = self.reg.certificate()
                self._cache = (key, self.reg.kernel().detach(), cert)
        return self._cache[1], self._cache[2]

    def for_loop(self) -> "RidgeDenoiser":
        """A warm-started copy for one PnP run (same regulariser, tolerance and cached constants).

        The PnP solvers call it once when they start (:class:`pnp.solvers.base.PnPSolver`): inside a
        loop the prox input changes little between iterations, so each inner solve starts from the
        previous output. The stop is the same RMS-gradient test, so every output keeps the
        inexactness bound of the certificate; only the inner iteration count changes. The copy
        starts with no previous output, so runs do not depend on each other.
        """
        twin = RidgeDenoiser(self.reg, tol=self.tol, max_iter=self.max_iter, warm_start=True)
        twin._cache = self._cache
        return twin

    @property
    def ridge_certificate(self):
        return self._constants()[1]

    @property
    def certificate(self) -> Certificate:
        rc = self.ridge_certificate
        m_min = 1.0 - rc.lambda_max * rc.weak_convexity
        inexact = (
            f"inner accelerated-gradient solve stopped at RMS gradient <= {self.tol:g}, so each output is within "
            f"RMS {self.tol / max(m_min, 1e-300):.3g} of the exact prox (strong convexity modulus >= {m_min:.4g})"
        )
        if rc.kind == "crr":
            return Certificate(
                lipschitz_bound=1.0,
                alpha=0.5,
                method="prox of a convex ridge regulariser (CRR): firmly non-expansive",
                notes=inexact,
                exact=False,
            )
        return Certificate(
            lipschitz_bound=rc.prox_lipschitz,
            alpha=None,
            method="prox of a weakly convex ridge regulariser (WCRR): 1/(1 - lambda rho)-Lipschitz, not averaged",
            notes=inexact,
            exact=False,
        )

    def forward(self, y: torch.Tensor, sigma: Any) -> torch.Tensor:
        _check_image(y, name="x")
        sigma_vector(sigma, y.shape[0], y)
        kernel, cert = self._constants()
        warm = self.warm_start and self._last is not None and self._last.shape == y.shape
        x0 = self._last if warm else None
        tol = self.tol
        if warm:
            # a warm start already within a fixed tol would be returned unchanged, and a PnP loop would
            # read the zero change as convergence: the tolerance follows the change of the input instead
            # (the output moves by at most the prox's Lipschitz constant times as much)
            step = float(_rms(y.detach() - self._last_input).min())
            floor = self.EPS_FLOOR * float(torch.finfo(y.dtype).eps)
            tol = min(self.tol, max(self.STEP_FRACTION * step, floor))
        x, info = ridge_prox(
            self.reg, y, sigma, x0=x0, tol=tol, max_iter=self.max_iter, kernel=kernel,
            constants=(cert.lip_grad, cert.weak_convexity),
        )
        self.last_info = info
        if not info.converged:
            warnings.warn(
                f"prox solve stopped at max_iter={self.max_iter} with RMS gradient {max(info.grad_rms):.3g} > tol={tol:g}",
                ProxConvergenceWarning,
                stacklevel=2,
            )
        if self.warm_start:
            self._last_input = y.detach().clone()
            self._last = x.detach()
        return x


class ProxSearchSurrogate(torch.nn.Module):
    """For adversarial searches over pairs: the prox value (solved to ``tol`` without autograd) with
    a gradient path through one gradient step of the prox objective at the solution,
    ``x* + (y - x* - lambda grad R(x*)) / L``: the value equals the prox up to the solve's residual,
    the gradient is only a descent heuristic for the search (the exact Jacobian is
    ``(I + lambda H)^{-1}``). The values it returns are what the searches compare to the certificate."""

    def __init__(self, reg: RidgeRegularizer, *, tol: float = 1e-7, max_iter: int = 5000) -> None:
        super().__init__()
        self.reg = reg
        self.tol = tol
        self.max_iter = max_iter

    def forward(self, y: torch.Tensor, sigma: Any) -> torch.Tensor:
        cert = self.reg.certificate()
        x, _ = ridge_prox(self.reg, y.detach(), sigma, tol=self.tol, max_iter=self.max_iter,
                          constants=(cert.lip_grad, cert.weak_convexity))
        s = sigma_vector(sigma, y.shape[0], y)
        lam = self.reg.lambda_of(s).to(y.dtype).view(-1, 1, 1, 1)
        with torch.enable_grad():
            return x + (y - x - lam * self.reg.grad(x, s)) / (1.0 + lam * cert.lip_grad)
