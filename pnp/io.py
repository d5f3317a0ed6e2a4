"""Image reading and writing: PNG, TIFF, JPEG; grey or colour; 8 or 16 bit.

Images are tensors ``[1, C, H, W]``, float32, values in ``[0, 1]`` (``C`` = 1 or 3; an alpha
channel is dropped). Integer images are scaled by their type's maximum (255 or 65535); float
TIFFs are taken as they are (clipped to ``[0, 1]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pnp._png16 import is_png16_colour, read_png16, write_png16

__all__ = ["read_image", "write_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def read_image(path: str | os.PathLike[str]) -> Tensor:
    """Read an image file into a ``[1, C, H, W]`` float32 tensor in ``[0, 1]``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a
    readable image.
    """
    import imageio.v3 as iio

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {str(p)!r}")
    if p.is_dir():
        raise IsADirectoryError(f"image path is a directory: {str(p)!r}")
    try:
        if p.suffix.lower() == ".png" and is_png16_colour(p):
            arr = read_png16(p)
        else:
            arr = np.asarray(iio.imread(p))
    except Exception as exc:  # imageio raises many kinds of errors for non-images
        raise ValueError(
            f"cannot read {str(p)!r} as an image (not a readable PNG/TIFF/JPEG file)"
        ) from None
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channel-first TIFF
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"unsupported image layout {arr.shape} in {str(p)!r}")
    if arr.shape[-1] == 2:  # grey + alpha
        arr = arr[:, :, :1]
    elif arr.shape[-1] == 4:  # RGBA
        arr = arr[:, :, :3]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(arr.astype(np.float64), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported pixel type {arr.dtype} in {str(p)!r}")
    if not np.isfinite(arr).all():
        raise ValueError(f"image {str(p)!r} contains NaN or Inf values")
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)
    return t.unsqueeze(0)


def write_image(
    path: str | os.PathLike[str],
    x: Tensor,
    *,
    bits: int = 8,
    overwrite: bool = False,
) -> Path:
    """Write one image ``[1, C, H, W]`` or ``[C, H, W]`` (values clipped to ``[0, 1]``).

    ``bits=8`` (PNG/TIFF/JPEG) or ``bits=16`` (PNG or TIFF only). An existing file is never
    replaced unless ``overwrite=True`` (``FileExistsError``). Returns the path written.
    """
    import imageio.v3 as iio

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"output path {str(p)!r} must end with one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if bits == 16 and suffix in (".jpg", ".jpeg"):
        raise ValueError("bits=16 needs a .png or .tif output, not JPEG")
    if p.exists() and not overwrite:
        raise FileExistsError(f"output file exists: {str(p)!r} (use --force / overwrite=True)")
    if p.parent != Path("") and not p.parent.exists():
        raise FileNotFoundError(f"output directory does not exist: {str(p.parent)!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"write_image writes one image; got batch {x.shape[0]}")
        x = x[0]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"x must have shape [1, C, H, W] with C in (1, 3), got {tuple(x.shape)}")
    arr = x.detach().to("cpu", torch.float64).clamp(0.0, 1.0).numpy().transpose(1, 2, 0)
    if not np.isfinite(arr).all():
        raise ValueError("x contains NaN or Inf values")
    maxval = 255 if bits == 8 else 65535
    arr = np.round(arr * maxval).astype(np.uint8 if bits == 8 else np.uint16)
    if arr.shape[-1] == 1:
        arr = arr[:, :, 0]
    if bits == 16 and arr.ndim == 3 and suffix == ".png":
        write_png16(p, arr)  # Pillow cannot write 16-bit colour PNG
    elif suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(p, arr, photometric="rgb" if arr.ndim == 3 else "minisblack")
    else:
        iio.imwrite(p, arr)
    return p
