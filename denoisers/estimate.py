"""Empirical *lower* bounds that check certificates independently.

A certificate is a property computed from upper bounds; these are methods that search for
evidence against it:

* :func:`jacobian_spectral_norm`: power iteration on ``J^T J`` at a point (JVP by double VJP);
  ``||J(x)||_2 <= Lip(D)``.
* :func:`adversarial_lipschitz`: gradient ascent on ``||D(x) - D(y)|| / ||x - y||`` over pairs.
* :func:`adversarial_averagedness`: gradient ascent on the averagedness ratio
  ``(||Dx - Dy||^2 + (1 - alpha)/alpha ||(I - D)x - (I - D)y||^2) / ||x - y||^2``, which is ``<= 1``
  for every pair exactly when ``D`` is ``alpha``-averaged.

For explicit priors ``R`` with a gradient (the ridge regularisers, anything with
``grad(x, sigma)``):

* :func:`hessian_spectral_norm`: power iteration on the Hessian by Hessian-vector products;
  ``|lambda(H(x))| <= Lip(grad R)``.
* :func:`hessian_min_eigenvalue`: the smallest Hessian eigenvalue at a point by power iteration on
  ``c I - H``; ``-lambda_min(H) <= rho`` (weak-convexity modulus), ``>= 0`` means locally convex.
* :func:`adversarial_weak_convexity`: gradient ascent over pairs on
  ``-<grad R(x) - grad R(y), x - y> / ||x - y||^2``, which is ``<= rho`` for every pair exactly when
  ``R + rho/2 ||.||^2`` is convex (``<= 0`` for convex ``R``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = [
    "Estimate",
    "jacobian_spectral_norm",
    "adversarial_lipschitz",
    "averagedness_ratio",
    "adversarial_averagedness",
    "adversarial_weak_convexity",
    "hessian_min_eigenvalue",
    "hessian_spectral_norm",
]

Denoiser = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Estimate:
    """An empirical lower bound and how it was found."""

    value: float
    method: str
    evaluations: int


def _call(denoiser: Denoiser, x: torch.Tensor, sigma: Any) -> torch.Tensor:
    return denoiser(x, sigma)


def jacobian_spectral_norm(
    denoiser: Denoiser, x: torch.Tensor, sigma: Any = None, *, iters: int = 30, seed: int = 0
) -> Estimate:
    """``||J_D(x)||_2`` by power iteration on ``J^T J`` (a lower bound of the Lipschitz constant)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = x.detach().clone().requires_grad_(True)
    out = _call(denoiser, x, sigma)
    v = torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device).requires_grad_(True)
    # vjp(v) = J^T v, built with create_graph so that jvp(u) = d/dv <J^T v, u> = J u
    (jt_v,) = torch.autograd.grad(out, x, v, create_graph=True)
    u = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    u = u / u.norm()
    norm = 0.0
    for _ in range(iters):
        (ju,) = torch.autograd.grad(jt_v, v, u, retain_graph=True)
        (jtju,) = torch.autograd.grad(out, x, ju, retain_graph=True)
        nrm = jtju.norm()
        norm = float(nrm.sqrt())
        if nrm == 0:
            break
        u = (jtju / nrm).detach()
    return Estimate(value=norm, method=f"Jacobian power iteration ({iters} steps) at one input", evaluations=2 * iters)


def _pair_search(
    ratio_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    steps: int,
    lr: float,
    init_scale: float,
    seed: int,
) -> float:
    """Adam ascent of a per-image ``ratio_fn(x, x + d)`` over ``x`` and ``d``; the largest value seen."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = x0.detach().clone().requires_grad_(True)
    d = (init_scale * torch.randn(x0.shape, generator=g, dtype=x0.dtype)).to(x0.device).requires_grad_(True)
    opt = torch.optim.Adam([x, d], lr=lr)
    best = 0.0
    for _ in range(steps):
        ratio = ratio_fn(x, x + d)
        best = max(best, float(ratio.detach().max()))
        opt.zero_grad()
        (-ratio.sum()).backward()
        opt.step()
    return best


def adversarial_lipschitz(
    denoiser: Denoiser,
    x0: torch.Tensor,
    sigma: Any = None,
    *,
    steps: int = 100,
    lr: float = 1e-2,
    init_scale: float = 1e-2,
    seed: int = 0,
) -> Estimate:
    """Maximise ``||D(x) - D(y)|| / ||x - y||`` over pairs by Adam, starting near ``x0``."""

    def ratio(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        num = (_call(denoiser, x, sigma) - _call(denoiser, y, sigma)).flatten(1).norm(dim=1)
        return num / (x - y).flatten(1).norm(dim=1).clamp_min(1e-12)

    best = _pair_search(ratio, x0, steps=steps, lr=lr, init_scale=init_scale, seed=seed)
    return Estimate(value=best, method=f"adversarial pair search (Adam, {steps} steps)", evaluations=2 * steps)


def averagedness_ratio(denoiser: Denoiser, x: torch.Tensor, y: torch.Tensor, alpha: float, sigma: Any = None) -> torch.Tensor:
    """Per-image ``(||Dx - Dy||^2 + (1 - alpha)/alpha ||(I-D)x - (I-D)y||^2) / ||x - y||^2``
    (``<= 1`` for every pair iff ``D`` is alpha-averaged)."""
    if not (0.0 < alpha <= 1.0):
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    dx, dy = _call(denoiser, x, sigma), _call(denoiser, y, sigma)
    a = (dx - dy).flatten(1).pow(2).sum(1)
    r = ((x - dx) - (y - dy)).flatten(1).pow(2).sum(1)
    n = (x - y).flatten(1).pow(2).sum(1).clamp_min(1e-30)
    return (a + (1.0 - alpha) / alpha * r) / n


def adversarial_averagedness(
    denoiser: Denoiser,
    x0: torch.Tensor,
    alpha: float,
    sigma: Any = None,
    *,
    steps: int = 100,
    lr: float = 1e-2,
    init_scale: float = 1e-1,
    seed: int = 0,
) -> Estimate:
    """Largest averagedness ratio found by Adam over pairs (``> 1`` would refute ``alpha``)."""
    best = _pair_search(
        lambda x, y: averagedness_ratio(denoiser, x, y, alpha, sigma),
        x0, steps=steps, lr=lr, init_scale=init_scale, seed=seed,
    )
    return Estimate(value=best, method=f"adversarial averagedness search (Adam, {steps} steps)", evaluations=2 * steps)


# ---------------------------------------------------------------------------- explicit priors
def _hvp_setup(prior: Any, x: torch.Tensor, sigma: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        g = prior.grad(xr, sigma)
    return xr, g


def _power(apply: Callable[[torch.Tensor], torch.Tensor], shape: torch.Size, like: torch.Tensor, iters: int,
           seed: int) -> float:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    u = torch.randn(shape, generator=gen, dtype=like.dtype).to(like.device)
    u = u / u.norm()
    val = 0.0
    for _ in range(iters):
        hu = apply(u)
        val = float((u * hu).sum())  # Rayleigh quotient, a lower bound of the top eigenvalue
        n = hu.norm()
        if n == 0:
            break
        u = (hu / n).detach()
    return val


def hessian_spectral_norm(prior: Any, x: torch.Tensor, sigma: Any = None, *, iters: int = 50, seed: int = 0) -> Estimate:
    """Largest ``|eigenvalue|`` of ``H = d^2 R / dx^2`` at ``x`` (Rayleigh quotients of the power
    iteration on ``H^2``): a lower bound of ``Lip(grad R)``. Needs ``prior.grad(x, sigma)``
    differentiable in ``x``."""
    xr, g = _hvp_setup(prior, x, sigma)

    def hh(u: torch.Tensor) -> torch.Tensor:
        (hu,) = torch.autograd.grad(g, xr, u, retain_graph=True)
        (hhu,) = torch.autograd.grad(g, xr, hu, retain_graph=True)
        return hhu

    val = _power(hh, xr.shape, xr, iters, seed)
    return Estimate(value=max(val, 0.0) ** 0.5, method=f"Hessian power iteration ({iters} steps) at one input",
                    evaluations=2 * iters)


def hessian_min_eigenvalue(prior: Any, x: torch.Tensor, sigma: Any = None, *, shift: float, iters: int = 100,
                           seed: int = 0) -> Estimate:
    """``lambda_min(H(x))`` by power iteration on ``shift I - H`` (``shift >= Lip(grad R)``); the
    value found is an upper bound of ``lambda_min`` (so ``-value`` is a lower bound of the local
    weak-convexity modulus)."""
    xr, g = _hvp_setup(prior, x, sigma)

    def op(u: torch.Tensor) -> torch.Tensor:
        (hu,) = torch.autograd.grad(g, xr, u, retain_graph=True)
        return shift * u - hu

    top = _power(op, xr.shape, xr, iters, seed)
    return Estimate(value=shift - top, method=f"power iteration on {shift:g} I - H ({iters} steps) at one input",
                    evaluations=iters)


def adversarial_weak_convexity(prior: Any, x0: torch.Tensor, sigma: Any = None, *, steps: int = 100, lr: float = 1e-2,
                               init_scale: float = 1e-1, seed: int = 0) -> Estimate:
    """Largest ``-<grad R(x) - grad R(y), x - y> / ||x - y||^2`` found by Adam over pairs: a lower
    bound of the weak-convexity modulus ``rho`` (a positive value refutes convexity)."""

    def ratio(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = x - y
        inner = ((prior.grad(x, sigma) - prior.grad(y, sigma)) * d).flatten(1).sum(1)
        return -inner / d.flatten(1).pow(2).sum(1).clamp_min(1e-30)

    best = _pair_search(ratio, x0, steps=steps, lr=lr, init_scale=init_scale, seed=seed)
    return Estimate(value=best, method=f"adversarial monotonicity search (Adam, {steps} steps)", evaluations=2 * steps)
