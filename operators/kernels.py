"""Blur kernels: Gaussian, uniform box, seeded random motion, file loading, the named sets.

Every function returns a 2-D ``torch.float64`` tensor that is non-negative and sums to 1
(the standard deblurring protocol's kernels are used as they are stored, to 1e-6).

Named specs understood by :func:`load_kernel`:

* ``"levin:0"`` .. ``"levin:7"``: the 8 camera-shake kernels of Levin et al. 2009
  (``shared/data/kernels/levin09.npz``, keys ``k0``..``k7``);
* ``"kernels12:0"`` .. ``"kernels12:11"``: the 12 25x25 kernels of the DPIR/USRNet line of work
  (``shared/data/kernels/kernels12.npz``);
* ``"gaussian:SIZE:STD"``, ``"uniform:SIZE"``, ``"motion:SIZE:SEED"``.

The shared data folder is found from the environment variable ``PNP_SHARED_DATA`` (the
``.../shared/data`` folder itself), else by walking up from the current directory and from this
file to the first parent that holds ``shared/data``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "KernelWarning",
    "available_kernels",
    "find_shared_data",
    "gaussian_kernel",
    "load_kernel",
    "motion_kernel",
    "uniform_kernel",
    "validate_kernel",
]

_NAMED_SETS = {"levin": ("levin09.npz", 8), "kernels12": ("kernels12.npz", 12)}
_PARAMETRIC = ("gaussian:SIZE:STD", "uniform:SIZE", "motion:SIZE:SEED")
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_SUM_RTOL = 1e-6


class KernelWarning(UserWarning):
    """A kernel was changed on load (e.g. normalised to sum 1)."""


# --------------------------------------------------------------------------- validation
def validate_kernel(
    k: Tensor | np.ndarray,
    *,
    image_shape: tuple[int, ...] | None = None,
    normalize: bool = True,
) -> Tensor:
    """Check a blur kernel (PSF) and return it as a 2-D float64 tensor summing to 1.

    Rules: 2-D; finite; no negative entry ("negative mass"); not all zero; no larger than the
    image (``image_shape`` is ``(H, W)`` or any shape whose last two entries are ``H, W``).
    A sum that differs from 1 by more than a relative 1e-6 is **normalised with a
    :class:`KernelWarning`** when ``normalize=True`` (the decision for this toolkit: a PSF's
    scale is a convention, its shape is the information) and refused (ValueError) when
    ``normalize=False``. Sums within the tolerance are kept as they are, so the protocol
    kernels stay bit-identical to the published ones.

    :raises TypeError: not a tensor/array, or complex.
    :raises ValueError: any of the rules above.
    """
    if isinstance(k, np.ndarray):
        if np.iscomplexobj(k):
            raise TypeError(f"kernel must be real, got dtype {k.dtype}")
        t = torch.from_numpy(np.array(k, dtype=np.float64))
    elif isinstance(k, Tensor):
        if k.is_complex():
            raise TypeError(f"kernel must be real, got dtype {k.dtype}")
        t = k.detach().to(torch.float64).clone()
    else:
        raise TypeError(f"kernel must be a torch.Tensor or numpy.ndarray, got {type(k).__name__}")
    if t.ndim != 2:
        raise ValueError(f"kernel must be 2-D [h, w], got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"kernel must not be empty, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("kernel holds NaN or Inf values")
    if bool((t < 0).any()):
        raise ValueError(f"kernel has negative mass (minimum entry {float(t.min()):.3g})")
    total = float(t.sum())
    if total == 0.0:
        raise ValueError("kernel is all zero")
    if image_shape is not None:
        if len(image_shape) < 2:
            raise ValueError(f"image_shape must end with (H, W), got {image_shape!r}")
        hh, ww = int(image_shape[-2]), int(image_shape[-1])
        if t.shape[0] > hh or t.shape[1] > ww:
            raise ValueError(
                f"kernel of size {t.shape[0]}x{t.shape[1]} is larger than the image of size {hh}x{ww}"
            )
    if abs(total - 1.0) > _SUM_RTOL:
        if not normalize:
            raise ValueError(f"kernel sums to {total!r}, not 1 (normalize=False)")
        warnings.warn(f"kernel sums to {total:.6g}; normalised to sum 1", KernelWarning, stacklevel=2)
        t = t / total
    return t


# --------------------------------------------------------------------------- generators
def _check_size(size: Any, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{name} must be a positive integer, got {size!r}")
    return int(size)


def gaussian_kernel(size: int, std: float) -> Tensor:
    """2-D isotropic Gaussian, as MATLAB ``fspecial('gaussian', size, std)``.

    ``g[i, j] = exp(-(u_i^2 + v_j^2) / (2 std^2))`` with offsets ``u, v = -(size-1)/2 ..
    (size-1)/2`` from the centre (integers for odd sizes, half-integers for even ones, like
    ``fspecial``), entries below ``eps * max`` set to 0 (as ``fspecial`` does), normalised to
    sum 1. ``gaussian_kernel(25, 1.6)`` is the literature's 25x25 Gaussian of std 1.6.
    """
    n = _check_size(size)
    std = float(std)
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"std must be finite and > 0, got {std!r}")
    r = (n - 1) / 2.0
    u = np.arange(-r, r + 1)
    xx, yy = np.meshgrid(u, u)
    g = np.exp(-(xx * xx + yy * yy) / (2.0 * std * std))
    g[g < np.finfo(float).eps * g.max()] = 0.0
    return torch.from_numpy(g / g.sum())


def uniform_kernel(size: int) -> Tensor:
    """``size x size`` box, every entry ``1 / size^2``."""
    n = _check_size(size)
    return torch.full((n, n), 1.0 / (n * n), dtype=torch.float64)


def motion_kernel(size: int, *, seed: int, length: float | None = None) -> Tensor:
    """Seeded random camera-shake kernel (``size x size``, non-negative, sums to 1).

    A smooth random walk (unit steps whose direction follows a momentum-damped random turn,
    drawn from ``numpy.random.default_rng(seed)``) of total length ``length`` pixels (default
    ``size``), rescaled to fit inside the kernel support, centred by its centroid at
    ``(size // 2, size // 2)`` and rasterised by bilinear splatting. The same ``(size, seed,
    length)`` always gives the same kernel.
    """
    n = _check_size(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if length is None:
        length = float(n)
    length = float(length)
    if not np.isfinite(length) or length <= 0:
        raise ValueError(f"length must be finite and > 0, got {length!r}")
    if n == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    rng = np.random.default_rng(int(seed))
    steps = max(int(np.ceil(4 * length)), 8)
    step = length / steps
    angle = rng.uniform(0, 2 * np.pi)
    turn = 0.0
    pts = np.zeros((steps + 1, 2))
    for i in range(steps):
        turn = 0.7 * turn + 0.3 * rng.normal(0.0, 0.6)
        angle += turn
        pts[i + 1] = pts[i] + step * np.array([np.sin(angle), np.cos(angle)])
    pts -= pts.mean(axis=0)
    extent = np.abs(pts).max()
    half = float((n - 1) // 2)  # room on both sides of the centre n // 2
    if extent > half:
        pts *= half / extent
    pts += n // 2
    k = np.zeros((n, n))
    for r, c in pts:
        r0, c0 = int(np.floor(r)), int(np.floor(c))
        fr, fc = r - r0, c - c0
        for dr, wr in ((0, 1 - fr), (1, fr)):
            for dc, wc in ((0, 1 - fc), (1, fc)):
                rr, cc = min(max(r0 + dr, 0), n - 1), min(max(c0 + dc, 0), n - 1)
                k[rr, cc] += wr * wc
    return torch.from_numpy(k / k.sum())


# --------------------------------------------------------------------------- data location
def _shared_data_candidates() -> list[Path]:
    starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
    seen: list[Path] = []
    for start in starts:
        for parent in (start, *start.parents):
            cand = parent / "shared" / "data"
            if cand not in seen:
                seen.append(cand)
    return seen


def find_shared_data() -> Path | None:
    """The ``shared/data`` folder (``$PNP_SHARED_DATA``, else first ``<parent>/shared/data``
    walking up from the current directory, then from this package), or ``None``."""
    env = os.environ.get("PNP_SHARED_DATA")
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    for cand in _shared_data_candidates():
        if cand.is_dir():
            return cand
    return None


def _named_set_file(name: str) -> Path:
    fname = _NAMED_SETS[name][0]
    env = os.environ.get("PNP_SHARED_DATA")
    looked: list[Path] = []
    if env:
        looked.append(Path(env).expanduser() / "kernels" / fname)
    else:
        looked.extend(c / "kernels" / fname for c in _shared_data_candidates())
    for p in looked:
        if p.is_file():
            return p
    where = "; ".join(str(p) for p in looked[:12])
    raise FileNotFoundError(
        f"kernel set {name!r} needs {fname}, not found (set PNP_SHARED_DATA to the shared/data "
        f"folder). Looked in: {where}"
    )


def available_kernels() -> list[str]:
    """Names :func:`load_kernel` accepts now: the named sets whose data file is found, then the
    parametric templates ``gaussian:SIZE:STD``, ``uniform:SIZE``, ``motion:SIZE:SEED``."""
    names: list[str] = []
    for name, (_, count) in _NAMED_SETS.items():
        try:
            _named_set_file(name)
        except FileNotFoundError:
            continue
        names.extend(f"{name}:{i}" for i in range(count))
    names.extend(_PARAMETRIC)
    return names


# --------------------------------------------------------------------------- loading
def _parse_int(text: str, spec: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"kernel spec {spec!r}: {what} must be an integer, got {text!r}") from None


def _load_named(spec: str) -> Tensor | None:
    parts = spec.split(":")
    head = parts[0].lower()
    if head in _NAMED_SETS:
        if len(parts) != 2:
            raise ValueError(f"kernel spec {spec!r} must look like '{head}:INDEX'")
        idx = _parse_int(parts[1], spec, "INDEX")
        count = _NAMED_SETS[head][1]
        if not 0 <= idx < count:
            raise ValueError(f"kernel spec {spec!r}: index must be in 0..{count - 1}, got {idx}")
        with np.load(_named_set_file(head)) as data:
            return validate_kernel(np.asarray(data[f"k{idx}"], dtype=np.float64))
    if head == "gaussian":
        if len(parts) != 3:
            raise ValueError(f"kernel spec {spec!r} must look like 'gaussian:SIZE:STD'")
        try:
            std = float(parts[2])
        except ValueError:
            raise ValueError(f"kernel spec {spec!r}: STD must be a number, got {parts[2]!r}") from None
        return gaussian_kernel(_parse_int(parts[1], spec, "SIZE"), std)
    if head == "uniform":
        if len(parts) != 2:
            raise ValueError(f"kernel spec {spec!r} must look like 'uniform:SIZE'")
        return uniform_kernel(_parse_int(parts[1], spec, "SIZE"))
    if head == "motion":
        if len(parts) != 3:
            raise ValueError(f"kernel spec {spec!r} must look like 'motion:SIZE:SEED'")
        return motion_kernel(_parse_int(parts[1], spec, "SIZE"), seed=_parse_int(parts[2], spec, "SEED"))
    return None


def _load_file(path: Path, key: str | None) -> Tensor:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"kernel file not found: {path}")
    if suffix == ".npy":
        if key is not None:
            raise ValueError(f"kernel spec {str(path)}:{key}: a .npy file holds one array, no key")
        return validate_kernel(np.load(path, allow_pickle=False))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            if key is None:
                if len(keys) != 1:
                    raise ValueError(
                        f"{path} holds {len(keys)} arrays {keys}; name one as 'file.npz:KEY'"
                    )
                key = keys[0]
            if key not in keys:
                raise ValueError(f"{path} has no array {key!r}; it holds {keys}")
            return validate_kernel(np.asarray(data[key]))
    if suffix in _IMAGE_SUFFIXES:
        if key is not None:
            raise ValueError(f"kernel spec {str(path)}:{key}: an image file takes no key")
        from skimage import io as skio

        img = np.asarray(skio.imread(str(path)), dtype=np.float64)
        if img.ndim == 3:
            img = img[..., :3].mean(axis=-1) if img.shape[-1] in (3, 4) else img[..., 0]
        total = img.sum()
        if img.ndim == 2 and np.isfinite(total) and total > 0 and (img >= 0).all():
            img = img / total  # pixel values have an arbitrary scale: normalising is expected
        return validate_kernel(img)
    raise ValueError(
        f"kernel file {path} has unsupported suffix {suffix!r} (use .npy, .npz or an image: "
        f"{', '.join(_IMAGE_SUFFIXES)})"
    )


def load_kernel(spec: str | os.PathLike[str]) -> Tensor:
    """Load a kernel from a named spec or a file; returns a validated 2-D float64 tensor.

    ``spec`` is a named spec (``"levin:3"``, ``"kernels12:0"``, ``"gaussian:25:1.6"``,
    ``"uniform:9"``, ``"motion:21:0"``; see :func:`available_kernels`) or a path: ``.npy``,
    ``.npz`` with a single array or ``"file.npz:KEY"``, or a PNG/TIFF/JPEG/BMP image (converted
    to grey and normalised to sum 1 silently: an image's scale is arbitrary). Other kernels go
    through :func:`validate_kernel` (normalised with a :class:`KernelWarning` if needed).

    :raises FileNotFoundError: the file, or the shared data set, is missing (says where it looked).
    :raises ValueError: malformed spec or invalid kernel.
    """
    if isinstance(spec, os.PathLike):
        return _load_file(Path(spec), None)
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str or a path, got {type(spec).__name__}")
    if not spec:
        raise ValueError("spec must not be empty")
    named = _load_named(spec)
    if named is not None:
        return named
    key: str | None = None
    path_text = spec
    head, sep, tail = spec.rpartition(":")
    if sep and head.lower().endswith(".npz") and tail and "/" not in tail and "\\" not in tail:
        path_text, key = head, tail
    path = Path(path_text).expanduser()
    if not path.suffix:
        raise ValueError(
            f"unknown kernel spec {spec!r}: not a named kernel ({', '.join(_NAMED_SETS)}, "
            f"{', '.join(_PARAMETRIC)}) nor a file with a suffix"
        )
    return _load_file(path, key)
