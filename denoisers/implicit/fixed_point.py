"""Average iteration with an l-inf stopping rule, safeguarded Anderson acceleration, and the
implicit-differentiation autograd Function.

Forward. For a map ``f(x) = Phi(A x + z)`` with ``mu_inf(A) <= mu < 1`` the *average iteration*

    x_{k+1} = (1 - a) x_k + a f(x_k),        a = 1 / (1 - min_i min(a_ii, 0)),

is a contraction in l-inf with factor ``rho = 1 - a (1 - mu^+)`` (see
:func:`denoisers.implicit.measures.average_step`), so it converges from every start to the
unique fixed point ``x*``. We stop when the per-sample residual ``r = ||f(x_k) - x_k||_inf``
is ``<= tol`` for every sample, or after ``max_iter`` evaluations of ``f``. The a-posteriori
error bound ``||x_k - x*||_inf <= r / (1 - mu^+)`` follows from
``||x - x*|| <= ||x - G(x)|| + ||G(x) - G(x*)|| <= a r + rho ||x - x*||`` with ``G`` the averaged map.

Anderson acceleration (type II, memory ``m``) on the averaged map ``G`` is optional. It carries
no contraction guarantee, so it is safeguarded per sample: the best iterate is kept; when a
sample's residual grows above ``100 x`` its best one, that sample goes back to its best iterate and
the memory is cleared (restart); after 3 such failures the sample continues with plain averaged
(contractive) steps for the rest of the budget.

Backward (implicit differentiation). With ``x* = f(x*; z, theta)`` and ``J = df/dx`` at ``x*``,
``dL/d(z, theta) = w^T df/d(z, theta)`` where ``w`` solves the adjoint fixed point
``w = g + J^T w`` (``g = dL/dx*``). We solve it with the *same* averaged iteration
``w <- (1 - a) w + a (g + J^T w)``: its matrix ``(1 - a) I + a J^T`` is the transpose of the
forward contraction matrix ``(1 - a) I + a Dg A``, so it contracts in the dual norm (l1) with the
same factor ``rho``; we stop on the per-sample l1 residual. No backpropagation through the
forward iterations: memory is that of one evaluation of ``f``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch
from torch.autograd.function import once_differentiable

__all__ = ["FixedPointConfig", "FixedPointInfo", "average_iteration", "implicit_fixed_point"]


@dataclass(frozen=True)
class FixedPointConfig:
    """Settings of the forward and adjoint solves.

    tol: absolute tolerance on the per-sample residual (l-inf forward, l1 backward).
    max_iter: budget of map evaluations per solve.
    anderson: Anderson memory (0 = plain average iteration).
    anderson_reg: relative Tikhonov regularisation of the Anderson least-squares problem
        (times the mean squared residual norm in the memory).
    """

    tol: float = 1e-6
    max_iter: int = 500
    anderson: int = 0
    anderson_reg: float = 1e-8

    def __post_init__(self) -> None:
        if not (self.tol > 0 and math.isfinite(self.tol)):
            raise ValueError(f"tol must be a positive finite float, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}")
        if isinstance(self.anderson, bool) or not isinstance(self.anderson, int) or self.anderson < 0:
            raise ValueError(f"anderson must be an int >= 0, got {self.anderson!r}")
        if not (self.anderson_reg >= 0):
            raise ValueError(f"anderson_reg must be >= 0, got {self.anderson_reg!r}")


@dataclass(frozen=True)
class FixedPointInfo:
    """Outcome of one solve. ``residual`` is the largest per-sample residual at the returned x."""

    iterations: int
    residual: float
    converged: bool
    step: float
    norm: str
    accelerated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _residual(d: torch.Tensor, norm: str) -> torch.Tensor:
    flat = d.reshape(d.shape[0], -1)
    if norm == "inf":
        return flat.abs().amax(dim=1)
    return flat.abs().sum(dim=1)


def average_iteration(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    step: float,
    config: FixedPointConfig = FixedPointConfig(),
    norm: Literal["inf", "1"] = "inf",
) -> tuple[torch.Tensor, FixedPointInfo]:
    """Solve ``x = f(x)`` by ``x <- x + step (f(x) - x)`` (optionally Anderson-accelerated).

    ``x0``: ``[N, ...]`` start (batch first); the residual is taken per sample in ``norm``.
    Returns the final iterate (the best one seen when Anderson is on) and a :class:`FixedPointInfo`.
    """
    if not (0.0 < step <= 1.0):
        raise ValueError(f"step must be in (0, 1], got {step!r}")
    if norm not in ("inf", "1"):
        raise ValueError(f"norm must be 'inf' or '1', got {norm!r}")
    x = x0
    fx = f(x)
    res = _residual(fx - x, norm)
    it = 1
    if config.anderson == 0:
        while float(res.max()) > config.tol and it < config.max_iter:
            x = x + step * (fx - x)
            fx = f(x)
            res = _residual(fx - x, norm)
            it += 1
            if not bool(torch.isfinite(res).all()):
                break
        r = float(res.max())
        return x, FixedPointInfo(iterations=it, residual=r, converged=r <= config.tol, step=float(step), norm=norm)
    return _anderson(f, x, fx, res, step=step, config=config, norm=norm)


def _anderson(f, x, fx, res, *, step, config, norm):
    N = x.shape[0]
    shape = x.shape
    bshape = (N,) + (1,) * (x.ndim - 1)
    m = config.anderson
    Xs: list[torch.Tensor] = []  # G(x) history, flattened
    Fs: list[torch.Tensor] = []  # residual history G(x) - x, flattened
    best_x, best_r = x, res.clone()
    plain = torch.zeros(N, dtype=torch.bool, device=x.device)  # per-sample fallback
    strikes = torch.zeros(N, dtype=torch.long, device=x.device)
    it = 1
    while float(res.max()) > config.tol and it < config.max_iter:
        gx = x + step * (fx - x)
        Xs.append(gx.reshape(N, -1))
        Fs.append((gx - x).reshape(N, -1))
        if len(Xs) > m:
            Xs.pop(0)
            Fs.pop(0)
        k = len(Fs)
        if k == 1:
            x = gx
        else:
            Fm = torch.stack(Fs, dim=2)  # [N, d, k]
            H = Fm.transpose(1, 2) @ Fm  # [N, k, k]
            # relative Tikhonov term (residuals shrink to ~tol, so an absolute one would dominate)
            scale = H.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
            H = H + (config.anderson_reg * scale)[:, None, None] * torch.eye(k, dtype=x.dtype, device=x.device)
            ones = torch.ones(N, k, 1, dtype=x.dtype, device=x.device)
            try:
                sol = torch.linalg.solve(H, ones)
            except RuntimeError:
                sol = torch.linalg.lstsq(H, ones).solution
            alpha = sol / sol.sum(dim=1, keepdim=True)  # weights summing to 1
            xa = (torch.stack(Xs, dim=2) @ alpha).reshape(shape)
            x = torch.where(plain.view(bshape), gx, xa)
        fx = f(x)
        res = _residual(fx - x, norm)
        it += 1
        # safeguard, per sample: a non-finite or 100x-worse residual sends that sample back to its
        # best iterate (see the module docstring)
        bad = ~torch.isfinite(res) | (res > 100.0 * best_r)
        better = torch.isfinite(res) & (res < best_r)
        best_x = torch.where(better.view(bshape), x, best_x)
        best_r = torch.where(better, res, best_r)
        if bool(bad.any()):
            # restart: clear the memory; a sample that fails repeatedly falls back to plain steps
            strikes = strikes + bad.long()
            plain = plain | (strikes >= 3)
            Xs.clear()
            Fs.clear()
            x = torch.where(bad.view(bshape), best_x, x)
            fx = f(x)
            res = _residual(fx - x, norm)
            it += 1
    better = torch.isfinite(res) & (res < best_r)
    best_x = torch.where(better.view(bshape), x, best_x)
    best_r = torch.where(better, res, best_r)
    # return the best iterate seen per sample (its residual is exact: it was evaluated)
    r = float(best_r.max())
    return best_x, FixedPointInfo(iterations=it, residual=r, converged=r <= config.tol, step=float(step),
                                  norm=norm, accelerated=True)


class _ImplicitFixedPoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec, z, *params):  # type: ignore[override]
        fn, step, config, x0, sink = spec
        with torch.no_grad():
            x, info = average_iteration(lambda v: fn(v, z, params), x0, step=step, config=config, norm="inf")
        sink["forward"] = info
        ctx.spec = spec
        ctx.save_for_backward(x, z, *params)
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        fn, step, config, _x0, sink = ctx.spec
        x, z, *params = ctx.saved_tensors
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            zd = z.detach().requires_grad_(True)
            pd = [p.detach().requires_grad_(p.requires_grad) for p in params]
            y = fn(xd, zd, pd)

            def adjoint(w: torch.Tensor) -> torch.Tensor:
                (jt,) = torch.autograd.grad(y, xd, w, retain_graph=True)
                return g + jt

            w, info = average_iteration(adjoint, g, step=step, config=config, norm="1")
            sink["backward"] = info
            wants = [zd] + [p for p in pd if p.requires_grad]
            grads = torch.autograd.grad(y, wants, w, allow_unused=True)
        out: list[torch.Tensor | None] = [grads[0]]
        k = 1
        for p in pd:
            if p.requires_grad:
                out.append(grads[k])
                k += 1
            else:
                out.append(None)
        return (None, *out)


def implicit_fixed_point(
    fn: Callable[[torch.Tensor, torch.Tensor, Sequence[torch.Tensor]], torch.Tensor],
    z: torch.Tensor,
    params: Sequence[torch.Tensor],
    *,
    x0: torch.Tensor,
    step: float,
    config: FixedPointConfig,
) -> tuple[torch.Tensor, dict[str, FixedPointInfo]]:
    """Fixed point ``x* = fn(x*, z, params)`` differentiable in ``z`` and ``params`` by the
    implicit function theorem (adjoint fixed point, see the module docstring).

    Returns ``(x*, sink)``; ``sink["forward"]`` holds the forward :class:`FixedPointInfo` and,
    after ``backward``, ``sink["backward"]`` the adjoint one.
    """
    sink: dict[str, FixedPointInfo] = {}
    x = _ImplicitFixedPoint.apply((fn, float(step), config, x0, sink), z, *params)
    return x, sink
