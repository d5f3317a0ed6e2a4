"""Additive white Gaussian noise with explicit seeds (torch) and the literature's numpy protocol."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["add_gaussian_noise", "numpy_gaussian_noise"]


def _check_sigma_tensor(sigma: Tensor, batch: int) -> Tensor:
    if sigma.is_complex():
        raise TypeError(f"sigma must be real, got dtype {sigma.dtype}")
    if sigma.ndim == 0 or sigma.numel() == 1:
        s = sigma.reshape(1, 1, 1, 1)
    elif sigma.ndim == 1 or (sigma.ndim == 4 and tuple(sigma.shape[1:]) == (1, 1, 1)):
        if sigma.shape[0] != batch:
            raise ValueError(f"sigma has {sigma.shape[0]} entries but the batch has {batch} images")
        s = sigma.reshape(-1, 1, 1, 1)
    else:
        raise ValueError(f"sigma must be a float, a 0-d tensor or a [B] tensor, got shape {tuple(sigma.shape)}")
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma.detach().cpu().flatten().tolist()}")
    return s


def add_gaussian_noise(
    x: Tensor,
    sigma: float | Tensor,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Tensor:
    """``x + sigma * n`` with ``n`` i.i.d. standard normal, same shape/dtype/device as ``x``.

    ``x`` is never modified. ``sigma`` is a float or a ``[B]`` tensor (one level per image), on
    the ``[0, 1]`` image scale (``2.55/255 = 0.01``). Randomness:

    * ``seed``: a fresh CPU ``torch.Generator`` seeded with it; the noise is drawn on the CPU and
      moved to ``x.device``, so the same seed gives the same noise on every device;
    * ``generator``: drawn from it on the generator's device, then moved to ``x.device``;
    * neither: torch's global RNG on ``x.device``.

    :raises ValueError: negative or non-finite ``sigma``; both ``generator`` and ``seed``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    batch = int(x.shape[0]) if x.ndim > 0 else 1
    s: Any
    if isinstance(sigma, Tensor):
        s = _check_sigma_tensor(sigma, batch).to(device=x.device, dtype=x.dtype)
        if x.ndim != 4 and s.numel() != 1:
            raise ValueError(f"a per-image sigma needs x of shape [B, C, H, W], got {tuple(x.shape)}")
        if s.numel() == 1:
            s = s.reshape(())
    elif isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
        s = float(sigma)
        if not np.isfinite(s) or s < 0:
            raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    else:
        raise TypeError(f"sigma must be a float or a tensor, got {type(sigma).__name__}")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        generator = torch.Generator(device="cpu")
        generator.manual_seed(int(seed))
    if generator is not None:
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
        noise = noise.to(x.device)
    else:
        noise = torch.randn_like(x)
    return x + s * noise


def numpy_gaussian_noise(shape: tuple[int, ...], sigma: float, *, seed: int) -> np.ndarray:
    """The literature's protocol: ``numpy.random.seed(seed); numpy.random.normal(0, sigma, shape)``.

    Bit-identical to that sequence (the legacy Mersenne-Twister ``RandomState``), without
    touching numpy's global random state. Returns a float64 array of ``shape``.
    """
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return np.random.RandomState(int(seed)).normal(0.0, sigma, tuple(shape))
