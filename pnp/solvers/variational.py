"""Direct minimisation of ``Phi(x) = 1/2 ||A x - y||^2 + lambda R(x, sigma)`` with a learned ridge prior.

One gradient of ``R`` per iteration (plus one energy evaluation, and a second gradient only when
the safeguard rejects the accelerated point). The algorithm is the monotone accelerated proximal
gradient method of Li and Lin (NeurIPS 2015, "Accelerated proximal gradient methods for nonconvex
programming", Algorithm 2, here with a zero non-smooth part): with ``L = ||A||^2 + lambda Lip(grad R)``
(certified), ``t_1 = 1``, ``x_0 = x_1 = y_0``::

    y_k     = x_k + (t_{k-1} / t_k) (z_k - x_k) + ((t_{k-1} - 1) / t_k) (x_k - x_{k-1})
    z_{k+1} = y_k - grad Phi(y_k) / L
    if Phi(z_{k+1}) <= Phi(x_k) - delta ||z_{k+1} - y_k||^2:   x_{k+1} = z_{k+1}
    else:   v_{k+1} = x_k - grad Phi(x_k) / L;   x_{k+1} = argmin(Phi(z_{k+1}), Phi(v_{k+1}))
    t_{k+1} = (1 + sqrt(4 t_k^2 + 1)) / 2,   or, when the test failed, a restart: t = 1, z = x

Step size (``step=``). ``"certified"`` takes ``1/L`` with the certified ``L`` at every step.
``"backtracking"`` (the default) takes ``z_{k+1} = y_k - grad Phi(y_k) / L_k`` with a local constant
``L_k <= L``: each iteration first lowers it, ``L_k = max(0.9 L_{k-1}, L / 1000)`` (starting from
``||A||^2``), then doubles it (capped at ``L``) until the descent lemma holds at ``y_k``,
``Phi(z_{k+1}) <= Phi(y_k) - ||grad Phi(y_k)||^2 / (2 L_k)`` (up to the rounding of ``Phi``; where the
predicted decrease is below that rounding, ``L_k`` is not lowered). Each doubling costs one energy
evaluation; ``Phi(y_k)`` comes with the gradient. The certified ``L`` bounds the Hessian everywhere,
while the iterates meet much smaller curvature (for the shipped crr, a Hessian norm of 0.14 found
against the certified 0.91), so the steps are longer. The plain-gradient fallback ``v``
below always uses the certified ``1/L``.

Guarantees (the theorem is stated in the result). Every step either passes the sufficient-decrease
test or takes the better of ``z`` and the plain gradient step ``v`` (which decreases ``Phi`` by at least
``||grad Phi(x_k)||^2 / (2L)``), whatever the extrapolation and whatever ``L_k`` in ``(0, L]``
(accepted steps satisfy ``||grad Phi(y_k)|| = L_k ||z_{k+1} - y_k|| <= L ||z_{k+1} - y_k||``, which is
what the proof uses), so (Li & Lin, Theorem 3):

* ``Phi(x_k)`` is non-increasing (by construction; recorded, and evaluated with float64 sums: in
  float32 images, its value carries a rounding error of about ``1e-7`` relative, the size of the
  rare increases seen near convergence), and ``Phi >= 0`` because ``R >= 0``;
* if the iterates are bounded, every accumulation point is a critical point (``grad Phi = 0``);
* ``R`` convex (CRR): ``Phi`` is convex, so those points are global minimisers;
* ``R`` weakly convex (WCRR): ``Phi`` may be non-convex; critical points, not global minimisers.

Stop: per image, when ``||grad Phi(y_k)|| <= tol ||A^T y||`` (a relative gradient-norm test at the
extrapolated point), or at ``max_iter``. The result records per image the relative change
``||x_{k+1} - x_k|| / ||x_k||``, the objective and the relative gradient norm at every iteration,
and the relative gradient norm at the returned point.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pnp.guarantees import Guarantee
from pnp.metrics import psnr as _psnr
from pnp.solvers.base import History, SolverParams, SolverResult, _check_tensor, _per_image_norm, _positive_float, operator_norm

__all__ = ["VariationalRidge", "VariationalResult"]

_EPS = 1e-12
#: step-size rules of :class:`VariationalRidge` (module docstring)
STEP_RULES = ("backtracking", "certified")
#: per-iteration decrease of the local constant, its floor (a fraction of the certified ``L``), and the
#: relative slack of the descent-lemma test for the rounding of ``Phi`` (in units of the image dtype's eps)
_L_DECREASE, _L_FLOOR, _PHI_SLACK_EPS = 0.9, 1e-3, 4.0


@dataclass(frozen=True)
class VariationalResult(SolverResult):
    """A :class:`SolverResult` with the objective: ``objective [iters + 1, B]`` (``Phi(x_k)``,
    ``k = 0..iters``), ``grad_norm [iters, B]`` (relative gradient norm at the extrapolated points),
    ``final_grad_norm [B]`` (at the returned ``x``), ``lam [B]`` (the weights used) and
    ``safeguard_steps`` (how many accelerated points were rejected), ``step_constant [B]`` (the last local
    constant ``L_k``; the certified ``L`` with ``step="certified"``) and ``backtracks`` (doublings of ``L_k``)."""

    objective: Tensor | None = None
    grad_norm: Tensor | None = None
    final_grad_norm: Tensor | None = None
    lam: Tensor | None = None
    safeguard_steps: int = 0
    step_constant: Tensor | None = None
    backtracks: int = 0

    def to_dict(self, *, include_history: bool = True) -> dict[str, Any]:
        d = super().to_dict(include_history=include_history)
        d["lambda"] = None if self.lam is None else self.lam.tolist()
        d["final_grad_norm"] = None if self.final_grad_norm is None else self.final_grad_norm.tolist()
        d["safeguard_steps"] = self.safeguard_steps
        d["step_constant"] = None if self.step_constant is None else self.step_constant.tolist()
        d["backtracks"] = self.backtracks
        if include_history:
            d["objective"] = None if self.objective is None else self.objective.tolist()
            d["grad_norm"] = None if self.grad_norm is None else self.grad_norm.tolist()
        return d


class VariationalRidge:
    """Minimise ``1/2 ||A x - y||^2 + lam_scale lambda(sigma) R(x, sigma)`` (module docstring).

    Parameters
    ----------
    physics: ``A``, ``A_adjoint`` (``opnorm()`` used when present, exact).
    y: measurements ``[B, C, H, W]``.
    regularizer: a :class:`denoisers.ridge.RidgeRegularizer` (CRR or WCRR).
    sigma: noise level at which ``R`` and ``lambda`` are evaluated (> 0).
    lam_scale: multiplier of ``lambda(sigma)`` (> 0).
    max_iter, tol: budget and relative gradient-norm tolerance.
    delta: sufficient-decrease constant of the safeguard (``> 0``, default ``1e-4``).
    step: ``"backtracking"`` (default: local constants ``L_k <= L``) or ``"certified"`` (``1/L`` always);
        module docstring.
    x0: start (default ``A^T y``); x_true: reference for PSNR.
    """

    name: ClassVar[str] = "variational"

    def __init__(
        self,
        physics: Any,
        y: Tensor,
        regularizer: Any,
        *,
        sigma: float,
        lam_scale: float = 1.0,
        max_iter: int = 500,
        tol: float = 1e-4,
        delta: float = 1e-4,
        step: str = "backtracking",
        x0: Tensor | None = None,
        x_true: Tensor | None = None,
    ) -> None:
        if not (hasattr(physics, "A") and hasattr(physics, "A_adjoint")):
            raise TypeError(f"physics must provide A and A_adjoint, got {type(physics).__name__}")
        for attr in ("energy_and_grad", "certificate", "lambda_of", "kernel"):
            if not hasattr(regularizer, attr):
                raise TypeError(f"regularizer must be a ridge regulariser (missing {attr!r}), got {type(regularizer).__name__}")
        self.physics = physics
        self.y = _check_tensor("y", y)
        self.reg = regularizer
        self.sigma = _positive_float("sigma", sigma)
        self.lam_scale = _positive_float("lam_scale", lam_scale)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        self.max_iter = max_iter
        self.tol = _positive_float("tol", tol)
        self.delta = _positive_float("delta", delta)
        if step not in STEP_RULES:
            raise ValueError(f"step must be one of {', '.join(STEP_RULES)}, got {step!r}")
        self.step = step
        with torch.no_grad():
            aty = physics.A_adjoint(self.y)
            if x0 is None:
                x0 = aty
            else:
                x0 = _check_tensor("x0", x0)
                if tuple(x0.shape) != tuple(aty.shape):
                    raise ValueError(f"x0 must have shape {tuple(aty.shape)} (that of A^T y), got {tuple(x0.shape)}")
        if x0.ndim != 4:
            raise ValueError(f"images must have shape [B, C, H, W], got {tuple(x0.shape)}")
        self.x0 = x0.detach().clone()
        self.aty_norm = _per_image_norm(aty).clamp_min(_EPS)
        if x_true is not None:
            x_true = _check_tensor("x_true", x_true)
            if tuple(x_true.shape) != tuple(self.x0.shape):
                raise ValueError(f"x_true must have shape {tuple(self.x0.shape)}, got {tuple(x_true.shape)}")
        self.x_true = x_true
        self.opnorm, self.opnorm_exact = operator_norm(physics, self.x0)
        with torch.no_grad():
            self.cert = regularizer.certificate()
            self.kernel = regularizer.kernel().detach().to(self.x0.dtype)
            s = torch.full((self.x0.shape[0],), self.sigma, dtype=self.x0.dtype, device=self.x0.device)
            self.lam = (regularizer.lambda_of(s) * self.lam_scale).to(self.x0.dtype)
        self.L = self.opnorm**2 + self.lam * self.cert.lip_grad  # [B]
        self.guarantee = self._make_guarantee()

    # ------------------------------------------------------------------------------------------
    def _make_guarantee(self) -> Guarantee:
        c = self.cert
        lmax = float(self.lam.max())
        conds = (
            f"L = ||A||^2 + lambda Lip(grad R) = {self.opnorm:.6g}^2 + {lmax:.6g} x {c.lip_grad:.6g}"
            f" ({'exact' if self.opnorm_exact else 'estimated'} ||A||, certified Lip(grad R))",
            (f"step 1/L with the Li-Lin safeguard (delta = {self.delta:g}): Phi(x_k) non-increasing"
             if self.step == "certified" else
             f"steps 1/L_k, L_k <= L by backtracking on the descent lemma, with the Li-Lin safeguard "
             f"(delta = {self.delta:g}; fallback step 1/L): Phi(x_k) non-increasing"),
        )
        checked = self.opnorm_exact
        if c.convex:
            return Guarantee(
                holds=True,
                theorem="monotone accelerated proximal gradient with restart (Li & Lin 2015) on a convex L-smooth "
                "objective: Phi(x_k) non-increasing, accumulation points are critical, hence global minimisers",
                conditions=conds + ("R convex (CRR: spline slopes in [0, 1])",),
                checked=checked,
                reason="convex objective (CRR prior), certified smoothness constant; the iterates approach the global minimum",
            )
        return Guarantee(
            holds=True,
            theorem="monotone accelerated proximal gradient (Li & Lin 2015) on an L-smooth non-convex objective: "
            "Phi(x_k) non-increasing; with bounded iterates every accumulation point is a critical point",
            conditions=conds + (f"R {c.weak_convexity:.6g}-weakly convex (WCRR), R >= 0; bounded iterates (assumed, not checked)",),
            checked=False,
            reason="weakly convex prior: monotone objective and convergence to critical points (not a global minimiser)",
        )

    def _phi_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = self.physics.A(x) - self.y
        e, g = self.reg.energy_and_grad(x, self.sigma, kernel=self.kernel)
        lam = self.lam
        phi = 0.5 * r.flatten(1).square().sum(1, dtype=torch.float64) + lam.double() * e
        grad = self.physics.A_adjoint(r) + lam.view(-1, 1, 1, 1) * g
        return phi, grad

    def _phi(self, x: Tensor) -> Tensor:
        r = self.physics.A(x) - self.y
        e = self.reg.energy(x, self.sigma, kernel=self.kernel)
        return 0.5 * r.flatten(1).square().sum(1, dtype=torch.float64) + self.lam.double() * e

    def params(self) -> SolverParams:
        return SolverParams(
            solver=self.name, sigma=self.sigma, gamma=float((1.0 / self.L).min()),
            gamma_rule="1/L (certified)" if self.step == "certified" else "1/L_k by backtracking, L_k <= L (certified)",
            data_weight=1.0, relaxation=1.0, firm=False, max_iter=self.max_iter, tol=self.tol,
            opnorm=self.opnorm, opnorm_exact=self.opnorm_exact, denoiser=f"ridge:{self.cert.kind}",
        )

    def run(self) -> VariationalResult:
        """Iterate until every image passes the gradient test or ``max_iter``."""
        b = self.x0.shape[0]
        L4 = self.L.view(-1, 1, 1, 1)
        objs: list[list[float]] = []
        gnorms: list[list[float]] = []
        res_hist: list[list[float]] = []
        psnrs: list[list[float]] = []
        times: list[float] = []
        rejected = 0
        backtracks = 0
        certified = self.step == "certified"
        L_cap = self.L.double()
        Lk = L_cap.clone() if certified else torch.minimum(torch.full_like(L_cap, self.opnorm**2), L_cap)
        L_floor = _L_FLOOR * L_cap
        slack_eps = _PHI_SLACK_EPS * torch.finfo(self.x0.dtype).eps
        stop = "max_iter reached"
        converged = False
        with torch.no_grad():
            x = self.x0.clone()
            x_prev = x.clone()
            z = x.clone()
            phi_x = self._phi(x)
            objs.append(phi_x.tolist())
            t_prev, t = 0.0, 1.0
            active = torch.ones(b, dtype=torch.bool, device=x.device)
            it = 0
            for it in range(1, self.max_iter + 1):
                t0 = time.perf_counter()
                yk = x + (t_prev / t) * (z - x) + ((t_prev - 1.0) / t) * (x - x_prev)
                phi_y, gy = self._phi_grad(yk)
                gnorm = _per_image_norm(gy)
                rel = gnorm / self.aty_norm
                gsq = gnorm.double().square()
                slack = slack_eps * phi_y.abs()
                if not certified:
                    # lower L_k only where the test can tell: near the minimum the predicted decrease
                    # ||g||^2 / (2 L_k) drops below the rounding of Phi, and the last tested L_k is kept
                    lower = torch.maximum(_L_DECREASE * Lk, L_floor)
                    Lk = torch.where(gsq / (2.0 * lower) > 10.0 * slack, lower, Lk)
                while True:
                    z_new = yk - gy / Lk.to(gy.dtype).view(-1, 1, 1, 1)
                    phi_z = self._phi(z_new)
                    if certified:
                        break
                    short = (phi_z > phi_y - gsq / (2.0 * Lk) + slack) & (Lk < L_cap) & active
                    if not bool(short.any()):
                        break
                    backtracks += int(short.sum())
                    Lk = torch.where(short, torch.minimum(2.0 * Lk, L_cap), Lk)
                ok = phi_z <= phi_x - self.delta * _per_image_norm(z_new - yk).double().square()
                x_new = z_new.clone()
                phi_new = phi_z.clone()
                restart = False
                if not bool(ok.all()):
                    bad = ~ok
                    restart = True
                    rejected += int((bad & active).sum())
                    _, gx = self._phi_grad(x)
                    v = x - gx / L4
                    phi_v = self._phi(v)
                    use_v = bad & (phi_v < phi_z)
                    x_new = torch.where(use_v.view(-1, 1, 1, 1), v, x_new)
                    phi_new = torch.where(use_v, phi_v, phi_new)
                a4 = active.view(-1, 1, 1, 1)
                x_new = torch.where(a4, x_new, x)
                phi_new = torch.where(active, phi_new, phi_x)
                res = _per_image_norm(x_new - x) / _per_image_norm(x).clamp_min(_EPS)
                x_prev, x, z = x, x_new, torch.where(a4, z_new, z)
                phi_x = phi_new
                if restart:  # function-value restart: the momentum is dropped
                    t_prev, t = 0.0, 1.0
                    x_prev = x
                    z = x.clone()
                else:
                    t_prev, t = t, (1.0 + math.sqrt(4.0 * t * t + 1.0)) / 2.0
                objs.append(phi_x.tolist())
                gnorms.append(torch.where(active, rel, torch.zeros_like(rel)).tolist())
                res_hist.append(torch.where(active, res, torch.zeros_like(res)).tolist())
                if self.x_true is not None:
                    psnrs.append(_psnr(x, self.x_true).tolist())
                times.append(time.perf_counter() - t0)
                active &= ~(rel <= self.tol)
                if not bool(active.any()):
                    converged = True
                    stop = f"converged: relative gradient norm <= tol {self.tol:g} for every image at iteration {it}"
                    break
            _, gfin = self._phi_grad(x)
            final = _per_image_norm(gfin) / self.aty_norm
        history = History(
            residual=torch.tensor(res_hist, dtype=torch.float64).reshape(-1, b),
            psnr=torch.tensor(psnrs, dtype=torch.float64).reshape(-1, b) if self.x_true is not None else None,
            time=torch.tensor(times, dtype=torch.float64),
        )
        return VariationalResult(
            x=x, iterations=it, converged=converged, stop_reason=stop, history=history, guarantee=self.guarantee,
            params=self.params(), objective=torch.tensor(objs, dtype=torch.float64), grad_norm=torch.tensor(gnorms, dtype=torch.float64),
            final_grad_norm=final.detach().cpu().to(torch.float64), lam=self.lam.detach().cpu().to(torch.float64),
            safeguard_steps=rejected, step_constant=Lk.detach().cpu(), backtracks=backtracks,
        )
