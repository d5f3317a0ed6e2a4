"""Image quality metrics with one explicit definition.

PSNR here is ``10 log10(1 / MSE)`` per image with data range 1, after clipping **both** images
to ``[0, 1]``, over all pixels and channels, **no border crop**.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["psnr"]


def psnr(x: Tensor, ref: Tensor) -> Tensor:
    """Per-image PSNR in dB, shape ``[B]``.

    ``x`` and ``ref`` are ``[B, C, H, W]`` (or broadcastable ``ref`` with batch 1); both are
    clipped to ``[0, 1]``; data range 1; no crop. Identical images give ``+inf``.

    >>> psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))
    tensor([20.])
    """
    if not isinstance(x, Tensor) or not isinstance(ref, Tensor):
        raise TypeError("x and ref must be torch.Tensor")
    if x.ndim != 4:
        raise ValueError(f"x must have shape [B, C, H, W], got shape {tuple(x.shape)}")
    if ref.ndim != 4 or ref.shape[1:] != x.shape[1:] or ref.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"ref shape {tuple(ref.shape)} does not match x shape {tuple(x.shape)}"
        )
    ref = ref.to(device=x.device, dtype=x.dtype)
    diff = x.detach().clamp(0.0, 1.0) - ref.detach().clamp(0.0, 1.0)
    mse = diff.pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse)
