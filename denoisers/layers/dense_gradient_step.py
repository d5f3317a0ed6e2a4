"""Dense averaged gradient-step block ``x <- x - h W^T relu(W x + b)`` (l2-certified).

``phi(x) = sum_j rho((W x + b)_j)`` with ``rho(t) = max(t, 0)^2 / 2`` is convex with gradient
``W^T relu(W x + b)``, which is ``beta = ||W||_2^2``-Lipschitz (relu is monotone and 1-Lipschitz),
hence ``1/beta``-co-coercive (Baillon-Haddad). For ``0 < h beta < 2`` the step
``I - h grad phi = (1 - alpha) I + alpha (I - (2/beta) grad phi)`` is ``alpha``-averaged with
``alpha = h ||W||_2^2 / 2`` and in particular non-expansive (l2 Lipschitz constant <= 1).

The constraint is kept by the step, never by touching ``W``: ``h = 2 alpha_target / ||W||_2^2``
with ``||W||_2`` the exact largest singular value (``torch.linalg.matrix_norm(ord=2)``,
differentiable), so ``alpha = alpha_target`` for every ``W``. The certificate recomputes
``||W||_2`` in float64 and inflates it by a relative ``1e-6`` against rounding. Chains of blocks
compose with :func:`denoisers.certificate.compose_alpha` (see :func:`chain_certificate`).

Example::

    >>> import torch
    >>> blk = DenseGradientStep(16, 32, alpha_target=0.5)
    >>> blk(torch.randn(4, 16)).shape
    torch.Size([4, 16])
    >>> blk.certificate.alpha <= 0.5 + 1e-9
    True
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from denoisers.certificate import Certificate, LayerBound, compose_alpha

__all__ = ["DenseGradientStep", "chain_certificate"]

_SAFETY = 1.0 + 1e-6


class DenseGradientStep(nn.Module):
    """``x <- x - h W^T relu(W x + b)`` with ``W`` of shape ``[hidden, features]``.

    Parameters
    ----------
    features: dimension ``d`` of ``x`` (input and output).
    hidden: number of rows of ``W``.
    alpha_target: averagedness in (0, 1) the step size is set for: ``h = 2 alpha_target / ||W||_2^2``.

    Input ``[N, d]`` (float32 or float64); output the same shape. The input is not modified.
    """

    def __init__(self, features: int, hidden: int, *, alpha_target: float = 0.5) -> None:
        super().__init__()
        for name, v in (("features", features), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not (0.0 < float(alpha_target) < 1.0):
            raise ValueError(f"alpha_target must be in (0, 1), got {alpha_target!r}")
        self.features, self.hidden = features, hidden
        self.alpha_target = float(alpha_target)
        lin = nn.Linear(features, hidden)
        self.W = nn.Parameter(lin.weight.detach().clone())
        self.b = nn.Parameter(lin.bias.detach().clone())

    def weight_norm(self) -> torch.Tensor:
        """``||W||_2`` (largest singular value, differentiable)."""
        return torch.linalg.matrix_norm(self.W, ord=2)

    def step_size(self) -> torch.Tensor:
        """``h = 2 alpha_target / ||W||_2^2``."""
        return 2.0 * self.alpha_target / self.weight_norm().pow(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"x must have shape [N, {self.features}], got {tuple(x.shape)}")
        W = self.W.to(x.dtype)
        h = self.step_size().to(x.dtype)
        return x - h * torch.relu(x @ W.T + self.b.to(x.dtype)) @ W

    @property
    @torch.no_grad()
    def certificate(self) -> Certificate:
        """l2 Lipschitz bound 1 and ``alpha = h ||W||^2 / 2`` with ``||W||`` recomputed in float64.

        ``h`` is the float64 value of the step used in the forward pass; ``||W||_2`` is inflated by
        ``1 + 1e-6`` against rounding, so ``alpha`` may exceed ``alpha_target`` by ~2e-6.
        """
        w = float(torch.linalg.matrix_norm(self.W.double(), ord=2)) * _SAFETY
        h = float(self.step_size().double())
        alpha = h * w * w / 2.0
        if not (0.0 < alpha < 1.0):
            raise ValueError(f"block is not averaged: alpha = h ||W||^2 / 2 = {alpha!r}")
        return Certificate(
            lipschitz_bound=1.0,
            alpha=alpha,
            method="gradient step on a convex ||W||^2-smooth potential: alpha = h ||W||_2^2 / 2 (Baillon-Haddad)",
            layers=(LayerBound(name="W", norm_bound=w, method="exact largest singular value (float64) x (1 + 1e-6)"),),
        )


def chain_certificate(blocks: Sequence[DenseGradientStep]) -> Certificate:
    """Certificate of ``blocks[-1] o ... o blocks[0]``: Lipschitz 1 and
    ``alpha = compose_alpha([alpha_i])`` (Combettes-Yamada)."""
    if len(blocks) == 0:
        raise ValueError("blocks must be a non-empty sequence")
    certs = [b.certificate for b in blocks]
    alpha = compose_alpha([c.alpha for c in certs])  # type: ignore[misc]
    layers = tuple(LayerBound(name=f"block{i}.W", norm_bound=c.layers[0].norm_bound, method=c.layers[0].method)
                   for i, c in enumerate(certs))
    return Certificate(
        lipschitz_bound=1.0,
        alpha=alpha,
        method=f"composition of {len(certs)} averaged gradient steps: alpha = m / (m - 1 + 1 / max alpha_i)",
        layers=layers,
    )
