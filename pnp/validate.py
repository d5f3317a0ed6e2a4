"""One input validator for images, kernels, noise levels and denoiser parameters, shared by the
command line, :func:`pnp.deblur` and (through :mod:`denoisers.contract`) every denoiser's
``forward``.

Each check raises a typed exception whose message names the argument (``name``: ``"y"`` from
Python, ``"--noise"`` from the command line) and the value:

* ``TypeError``: the wrong kind of object (a NumPy array, an integer or complex tensor, a string
  for a number, a bool);
* ``ValueError``: the right kind with a wrong value (shape, NaN/Inf, out of range, a kernel with
  negative or zero mass).

Ranges: images are on the ``[0, 1]`` scale (an observation may leave it by its noise: values
outside ``[-m, 1 + m]`` with ``m = 0.5 + 10 * noise_level`` are refused, which catches ``[0, 255]``
data); noise levels are standard deviations on that scale, ``0 <= noise_level <=``
:data:`MAX_NOISE_LEVEL`.

>>> check_noise_level(0.01)
0.01
>>> check_noise_level(1e9, name="--noise")
Traceback (most recent call last):
...
ValueError: --noise must be a standard deviation on the [0, 1] image scale, at most 1 (0.01 = 2.55/255), got 1e+09
"""

from __future__ import annotations

import math
import os
from typing import Any

__all__ = [
    "MAX_NOISE_LEVEL",
    "check_image",
    "check_kernel",
    "check_noise_level",
    "check_positive",
]

#: The largest noise standard deviation accepted on the ``[0, 1]`` image scale (a noise as large as
#: the whole dynamic range leaves nothing to restore).
MAX_NOISE_LEVEL = 1.0


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes, complex)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None


def check_noise_level(value: Any, *, name: str = "noise_level", allow_zero: bool = True) -> float:
    """A noise standard deviation on the ``[0, 1]`` scale: finite, ``>= 0`` (``> 0`` unless
    ``allow_zero``) and at most :data:`MAX_NOISE_LEVEL`. Returns it as a float."""
    v = _number(value, name)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    if v > MAX_NOISE_LEVEL:
        raise ValueError(
            f"{name} must be a standard deviation on the [0, 1] image scale, at most {MAX_NOISE_LEVEL:g} "
            f"(0.01 = 2.55/255), got {v:g}"
        )
    return v


def check_positive(value: Any, *, name: str) -> float:
    """A finite number ``> 0`` (a denoiser ``sigma``, a step ``gamma``, a tolerance)."""
    v = _number(value, name)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def check_image(x: Any, *, name: str = "y", noise_level: float = 0.0, channels: int | None = None) -> Any:
    """A real floating-point ``[B, C, H, W]`` tensor (:func:`denoisers.contract.check_input`),
    finite, with values on the ``[0, 1]`` scale up to its noise (module docstring). Returns ``x``.
    """
    import torch

    from denoisers.contract import check_input

    check_input(x, name=name, channels=channels)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())
    margin = 0.5 + 10.0 * float(noise_level)
    if lo < -margin or hi > 1.0 + margin:
        hint = " (for 8-bit data divide by 255)" if hi > 2.0 else ""
        raise ValueError(
            f"{name} has values in [{lo:.4g}, {hi:.4g}]; images are on the [0, 1] scale"
            f"{' (with noise level ' + format(noise_level, 'g') + ')' if noise_level else ''}{hint}"
        )
    return x


def check_kernel(kernel: Any, *, name: str = "kernel", image_shape: tuple[int, ...] | None = None) -> Any:
    """A blur kernel as a 2-D float64 tensor summing to 1, from a tensor, an array or a
    :func:`operators.load_kernel` spec (``"gaussian:25:1.6"``, ``"levin:0"``, a file): finite, no
    negative entry, not all zero, no larger than the image (:func:`operators.validate_kernel`;
    other sums are normalised with a :class:`operators.KernelWarning`).

    :raises TypeError: neither tensor, array nor spec; complex values.
    :raises ValueError: any rule above, or a spec that cannot be read (message names ``name``).
    :raises FileNotFoundError: a kernel file that does not exist.
    """
    import numpy as np
    import torch

    from operators import load_kernel, validate_kernel

    shown = f"{name} {kernel!r}" if isinstance(kernel, (str, os.PathLike)) else name
    try:
        if isinstance(kernel, (str, os.PathLike)):
            k = load_kernel(kernel)
        elif isinstance(kernel, (np.ndarray, torch.Tensor)):
            k = kernel
        else:
            raise TypeError(f"must be a tensor, an array or a spec string, got {type(kernel).__name__}")
        if isinstance(k, np.ndarray) and not (np.issubdtype(k.dtype, np.number) or k.dtype == np.bool_):
            raise TypeError(f"must hold numbers, got dtype {k.dtype}")
        if k.ndim > 2 and all(int(n) == 1 for n in k.shape[:-2]):  # [1, 1, h, w] as FFTBlur stores it
            k = k.reshape(k.shape[-2:])
        return validate_kernel(k, image_shape=image_shape)
    except (TypeError, ValueError, FileNotFoundError, IsADirectoryError) as exc:
        msg = str(exc)
        raise type(exc)(msg if msg.startswith(name) else f"{shown}: {msg}") from None
    except (OSError, RuntimeError) as exc:  # an image reader's own errors for a file that is no image
        raise ValueError(f"{shown}: cannot read it as a kernel ({' '.join(str(exc).split())[:200]})") from None
