r"""The literature's degradation, bit for bit: circular blur, then seeded numpy Gaussian noise.

For a clean image ``x`` (``H x W x C``, float64 in ``[0, 1]``, an 8-bit file divided by 255),
a kernel ``k`` and a noise level ``nu``::

    b = scipy.ndimage.convolve(x, k[:, :, None], mode="wrap")        # circular convolution
    numpy.random.seed(seed); y = b + numpy.random.normal(0, nu, b.shape)

The blur is computed by :class:`operators.FFTBlur` in float64 (the very operator the solvers
invert), equal to the direct convolution up to float64 round-off (``tests/benchmarks`` checks
both against SciPy). The noise is :func:`operators.numpy_gaussian_noise`, bit-identical to the
seeded legacy ``RandomState`` sequence, drawn in ``H x W x C`` order (as the published code
does), and the same for every kernel of an image. With ``quantize=True`` the blur is SciPy's own
``convolve`` of the ``uint8`` image (DPIR's Python code blurs ``uint8`` arrays, so the blurred
image is rounded to 8 bits before the noise is added); it needs 8-bit images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Degraded",
    "IMAGE_SUFFIXES",
    "blur_wrap",
    "degrade",
    "list_images",
    "load_clean",
    "resolve_data",
    "to_tensor",
    "to_hwc",
]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class Degraded:
    """A degraded test case (``H x W x C`` float64 arrays): ``clean``, noiseless ``blurred`` and
    the ``observed`` ``y = blurred + noise``."""

    clean: np.ndarray
    blurred: np.ndarray
    observed: np.ndarray


def resolve_data(folder: str | os.PathLike[str]) -> Path:
    """An image folder: an existing path, else ``<shared/data>/<folder>``.

    :raises FileNotFoundError: neither exists (says where it looked).
    """
    p = Path(folder).expanduser()
    if p.is_dir():
        return p
    from operators import find_shared_data

    shared = find_shared_data()
    if shared is not None and (shared / str(folder)).is_dir():
        return shared / str(folder)
    where = f"{p}" + (f" and {shared / str(folder)}" if shared is not None else "")
    raise FileNotFoundError(
        f"image folder {str(folder)!r} not found (looked at {where}; set PNP_SHARED_DATA or pass --data DIR)"
    )


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files of ``folder`` (sorted by name). Raises ``ValueError`` when there are none."""
    root = resolve_data(folder)
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(root)!r}")
    return files


def load_clean(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """``(x, bits)``: the image as ``H x W x C`` float64 in ``[0, 1]`` (``C`` = 1 or 3, alpha
    dropped) divided by its integer maximum in float64, and its bit depth (8, 16, or 0 for float
    files)."""
    import imageio.v3 as iio

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {str(p)!r}")
    try:
        arr = np.asarray(iio.imread(p))
    except Exception:
        raise ValueError(f"cannot read {str(p)!r} as an image") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported image layout {arr.shape} in {str(p)!r}")
    arr = arr[:, :, :1] if arr.shape[-1] == 2 else arr[:, :, :3]
    if np.issubdtype(arr.dtype, np.integer):
        bits = 8 if arr.dtype == np.uint8 else 16
        x = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif np.issubdtype(arr.dtype, np.floating):
        bits = 0
        x = np.clip(arr.astype(np.float64), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported pixel type {arr.dtype} in {str(p)!r}")
    return np.ascontiguousarray(x), bits


def to_tensor(x: np.ndarray, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``H x W x C`` array -> ``[1, C, H, W]`` tensor."""
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float64).transpose(2, 0, 1)))
    return t.unsqueeze(0).to(device=device, dtype=dtype)


def to_hwc(t: Tensor) -> np.ndarray:
    """``[1, C, H, W]`` tensor -> ``H x W x C`` float64 array."""
    if t.ndim != 4 or t.shape[0] != 1:
        raise ValueError(f"expected a tensor of shape [1, C, H, W], got {tuple(t.shape)}")
    return t[0].detach().to("cpu", torch.float64).numpy().transpose(1, 2, 0)


def blur_wrap(x: np.ndarray, kernel: np.ndarray | Tensor) -> np.ndarray:
    """Circular convolution of an ``H x W x C`` image by a 2-D kernel (every channel), float64.

    Equal to ``scipy.ndimage.convolve(x, k[:, :, None], mode="wrap")`` (:class:`operators.FFTBlur`
    with ``center="middle"``).
    """
    from operators import FFTBlur

    k = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    op = FFTBlur(k)
    with torch.no_grad():
        out = op.A(to_tensor(x, dtype=torch.float64))
    return to_hwc(out)


def degrade(
    clean: np.ndarray,
    kernel: np.ndarray | Tensor,
    noise: float,
    *,
    seed: int = 0,
    quantize: bool = False,
) -> Degraded:
    """Blur ``clean`` (``H x W x C`` float64 in ``[0, 1]``) circularly by ``kernel`` and add
    ``numpy.random.seed(seed); numpy.random.normal(0, noise, (H, W, C))`` (module docstring).

    ``quantize=True``: the literature's ``uint8`` path (``clean`` must be an 8-bit image divided
    by 255); the blurred image is SciPy's ``convolve`` of the ``uint8`` array, divided by 255.
    """
    from operators import numpy_gaussian_noise

    x = np.asarray(clean, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"clean must be an H x W x C array, got shape {x.shape}")
    k = np.asarray(kernel.detach().cpu().numpy() if isinstance(kernel, Tensor) else kernel, dtype=np.float64)
    if k.ndim != 2:
        raise ValueError(f"kernel must be 2-D, got shape {k.shape}")
    if k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]:
        raise ValueError(f"kernel of size {k.shape} is larger than the image of size {x.shape[:2]}")
    if quantize:
        from scipy import ndimage

        u8 = np.round(x * 255.0)
        if np.abs(u8 - x * 255.0).max() > 1e-6:
            raise ValueError("quantize=True needs an 8-bit image (values k/255)")
        blurred = ndimage.convolve(u8.astype(np.uint8), k[:, :, None], mode="wrap").astype(np.float64) / 255.0
    else:
        blurred = blur_wrap(x, k)
    observed = blurred + numpy_gaussian_noise(blurred.shape, float(noise), seed=int(seed))
    return Degraded(clean=x, blurred=blurred, observed=observed)
