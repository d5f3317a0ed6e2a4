"""The input contract of every denoiser ``D(x, sigma)``, checked in one place.

``x``: a real floating-point ``torch.Tensor`` of shape ``[B, C, H, W]`` (float32 by default,
float64 accepted), values nominally in ``[0, 1]``. ``sigma``: a real number or a tensor with one
value or one value per image (``[B]``), finite and ``> 0`` (``>= 0`` where a denoiser allows the
identity at ``sigma = 0``).

Every public ``forward`` of this package calls :func:`check_input` first, so a wrong input gets
one message that names the argument and what was expected, whatever the wrapper (per-channel,
rescaled, family, ensemble) it went through. The checks are cheap (types and shapes only, no
reduction over the pixels, hence no device synchronisation): value checks (finite, range) belong
to the entry points (:mod:`pnp.validate`), which run once per problem, not once per iteration.

>>> import torch
>>> check_input(torch.zeros(1, 1, 8, 8))
>>> check_input(torch.zeros(8, 8))
Traceback (most recent call last):
...
ValueError: x must have shape [B, C, H, W], got shape (8, 8) (one grey image of shape [H, W] is x[None, None])
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_input", "sigma_vector"]


def _type_name(value: Any) -> str:
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"


def check_input(x: Any, *, name: str = "x", channels: int | None = None) -> None:
    """Refuse anything but a real floating-point ``[B, C, H, W]`` tensor (with ``channels``
    channels when given).

    :raises TypeError: not a tensor (a NumPy array included), complex, or not floating point.
    :raises ValueError: wrong number of axes, an empty axis, or the wrong number of channels.
    """
    if not isinstance(x, torch.Tensor):
        hint = " (convert it with torch.from_numpy(...).float())" if type(x).__module__ == "numpy" else ""
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, C, H, W], got {_type_name(x)}{hint}")
    if x.is_complex():
        raise TypeError(f"{name} must be real, got dtype {str(x.dtype).replace('torch.', '')}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32 or float64) with values in [0, 1], got dtype "
            f"{str(x.dtype).replace('torch.', '')} (for 8-bit images use x.float() / 255)"
        )
    if x.ndim != 4:
        hint = ""
        if x.ndim == 2:
            hint = " (one grey image of shape [H, W] is x[None, None])"
        elif x.ndim == 3:
            hint = " (one image of shape [C, H, W] is x[None])"
        raise ValueError(f"{name} must have shape [B, C, H, W], got shape {tuple(x.shape)}{hint}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} has {x.shape[1]} channels (shape {tuple(x.shape)}), this denoiser expects {channels}"
        )


def sigma_vector(sigma: Any, batch: int, like: torch.Tensor, *, name: str = "sigma",
                 allow_zero: bool = False) -> torch.Tensor:
    """``sigma`` as a ``[batch]`` tensor with ``like``'s device and dtype.

    Accepts a real number (Python or NumPy scalar) or a real tensor with 1 or ``batch`` values.

    :raises TypeError: ``None``, a bool, a string, a complex value or any other type.
    :raises ValueError: the wrong number of values; a value that is not finite or not ``> 0``
        (``>= 0`` with ``allow_zero``).
    """
    dtype = like.dtype if like.is_floating_point() else torch.float32
    if isinstance(sigma, torch.Tensor):
        if sigma.is_complex() or sigma.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number or a real [B] tensor, got dtype {sigma.dtype}")
        s = sigma.detach().to(device=like.device, dtype=dtype).flatten()
        if s.numel() == 1:
            s = s.expand(batch)
        elif s.numel() != batch:
            raise ValueError(f"{name} must be a number or a [B] tensor with B={batch}, got shape {tuple(sigma.shape)}")
    else:
        if sigma is None or isinstance(sigma, (bool, str, bytes, complex)):
            raise TypeError(f"{name} must be a real number or a [B] tensor, got {sigma!r}")
        try:
            value = float(sigma)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a real number or a [B] tensor, got {_type_name(sigma)}") from None
        s = torch.full((batch,), value, device=like.device, dtype=dtype)
    bad = ~torch.isfinite(s) | ((s < 0) if allow_zero else (s <= 0))
    if bool(bad.any()):
        shown = s.tolist() if s.numel() <= 8 else f"{s.numel()} values, {int(bad.sum())} invalid"
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {shown}")
    return s
