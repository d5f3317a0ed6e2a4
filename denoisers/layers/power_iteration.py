"""Warm-started power iteration for the operator norm of a 2-D convolution (training only).

For a kernel ``W`` of shape ``[C_out, C_in, k1, k2]`` (odd ``k``), the circular convolution on an
``n x n`` grid is block-diagonalised by the DFT, so power iteration on ``W^T W`` with a vector
``u`` of shape ``[1, C_in, n, n]`` converges to ``max_j ||W_hat(w_j)||_2^2`` on that grid, and
``||W u||`` with the current unit vector ``u`` is a *lower* bound of ``||W||`` (for every image
size and for zero padding alike, see :mod:`denoisers.layers.conv_bounds`). Layers keep ``u`` as a
buffer and advance it by one iteration per training step (warm start): the estimate follows the
weights at the price of one convolution pair per step. ``||W u||^2`` is differentiable in ``W``
(``u`` is treated as a constant), which is how the estimate enters the loss.

Never certify with these numbers: they are lower bounds. Certificates use
:func:`denoisers.layers.conv_bounds.conv_opnorm_upper_bound`.

Example::

    >>> import torch
    >>> from denoisers.layers.conv_bounds import conv_opnorm_circular
    >>> w = torch.randn(4, 2, 3, 3)
    >>> u = torch.randn(1, 2, 16, 16); u = u / u.norm()
    >>> u = conv_power_iteration(w, u, iters=50)
    >>> float(conv_norm_sq(w, u).sqrt()) <= conv_opnorm_circular(w, (16, 16)) * (1 + 1e-6)
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["circular_conv2d", "conv_power_iteration", "conv_norm_sq"]


def circular_conv2d(x: torch.Tensor, weight: torch.Tensor, *, adjoint: bool = False) -> torch.Tensor:
    """Circular (periodic) 'same' convolution with ``weight`` (odd kernel), or its exact adjoint.

    ``x``: ``[B, C_in, H, W]`` (``[B, C_out, H, W]`` for the adjoint). The adjoint of a circular
    convolution is the circular correlation with the flipped, transposed kernel.
    """
    p1, p2 = weight.shape[-2] // 2, weight.shape[-1] // 2
    w = weight.flip(-1, -2).transpose(0, 1) if adjoint else weight
    return F.conv2d(F.pad(x, (p2, p2, p1, p1), mode="circular"), w)


@torch.no_grad()
def conv_power_iteration(weight: torch.Tensor, u: torch.Tensor, iters: int = 1) -> torch.Tensor:
    """``iters`` steps of power iteration on ``W^T W`` from ``u``; returns the new unit vector
    (in ``weight``'s dtype). ``u`` is not modified."""
    w = weight.detach()
    u = u.to(w.dtype)
    for _ in range(int(iters)):
        v = circular_conv2d(circular_conv2d(u, w), w, adjoint=True)
        u = v / v.norm().clamp_min(1e-30)
    return u


def conv_norm_sq(weight: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``||W u||^2`` with ``u`` held constant: a differentiable lower bound of ``||W||^2`` when
    ``||u|| = 1``."""
    return circular_conv2d(u.detach().to(weight.dtype), weight).pow(2).sum()
