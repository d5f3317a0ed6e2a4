"""Empirical *lower* bounds that check certificates independently.

A certificate is a property computed from upper bounds; these are methods that search for
evidence against it:

* :func:`jacobian_spectral_norm`: power iteration on ``J^T J`` at a point (JVP by double VJP);
  ``||J(x)||_2 <= Lip(D)``.
* :func:`adversarial_lipschitz`: gradient ascent on ``||D(x) - D(y)|| / ||x - y||`` over pairs.
* :func:`adversarial_averagedness`: gradient ascent on the averagedness ratio
  ``(||Dx - Dy||^2 + (1 - alpha)/alpha ||(I - D)x - (I - D)y||^2) / ||x - y||^2``, which is ``<= 1``
  for every pair exactly when ``D`` is ``alpha``-averaged.
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
