"""Training data: folders of images, random patches, flips/rotations, per-patch noise.

Sampling is *stateless*: the patches of step ``k`` on rank ``r`` come from a generator seeded with
``(seed, k, r)``, so a resumed run draws exactly what an uninterrupted run would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["shared_data_dir", "load_image_folder", "default_training_images", "PatchSampler", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def shared_data_dir() -> Path | None:
    """``$PNP_SHARED_DATA``, else the first ``shared/data`` found next to the cwd or the package."""
    env = os.environ.get("PNP_SHARED_DATA")
    if env:
        p = Path(env)
        return p if p.is_dir() else None
    starts = [Path.cwd().resolve(), Path(__file__).resolve()]
    for start in starts:
        for parent in [start, *start.parents]:
            cand = parent / "shared" / "data"
            if cand.is_dir():
                return cand
    return None


def _to_gray_float(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        if img.shape[-1] == 4:
            img = img[..., :3]
        from skimage.color import rgb2gray

        img = rgb2gray(img) if img.dtype.kind == "f" else rgb2gray(img.astype(np.float64) / np.iinfo(img.dtype).max)
        return img.astype(np.float32)
    if img.dtype.kind in "ui":
        return (img.astype(np.float64) / np.iinfo(img.dtype).max).astype(np.float32)
    return img.astype(np.float32)


def load_image_folder(folder: str | os.PathLike, *, grayscale: bool = True) -> list[torch.Tensor]:
    """All images in ``folder`` as ``[C, H, W]`` float32 tensors in [0, 1]."""
    from skimage import io as skio

    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"data folder not found: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"data must be a folder of images, got a file: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"data folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    out = []
    for f in files:
        try:
            img = skio.imread(f)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"cannot read image {f}: {exc}") from None
        if grayscale:
            out.append(torch.from_numpy(_to_gray_float(img))[None])
        else:
            arr = img if img.ndim == 3 else np.stack([img] * 3, -1)
            arr = arr[..., :3].astype(np.float32) / (np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else 1.0)
            out.append(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))))
    return out


def default_training_images() -> tuple[list[torch.Tensor], str]:
    """``shared/data/train400`` when present, else scikit-image's natural images (grey)."""
    d = shared_data_dir()
    if d is not None and (d / "train400").is_dir():
        return load_image_folder(d / "train400"), str(d / "train400")
    from skimage import data as skdata

    names = ["camera", "astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "moon", "page", "text"]
    imgs = []
    for n in names:
        try:
            imgs.append(torch.from_numpy(_to_gray_float(getattr(skdata, n)()))[None])
        except Exception:  # noqa: BLE001  (optional images may be missing in some versions)
            continue
    return imgs, "skimage.data:" + ",".join(names)


class PatchSampler:
    """Random patches with flips/rotations and Gaussian noise drawn per patch.

    ``sample(step, rank)`` returns ``(clean, noisy, sigma)`` with shapes ``[B, C, P, P]`` and ``[B]``.
    ``sigma_range = (lo, hi)`` draws a level per patch uniformly; ``lo == hi`` is a fixed level.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        *,
        patch_size: int,
        batch_size: int,
        sigma_range: tuple[float, float],
        seed: int,
    ) -> None:
        if patch_size < 4:
            raise ValueError(f"patch_size must be >= 4, got {patch_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        lo, hi = sigma_range
        if lo < 0 or hi < lo:
            raise ValueError(f"sigma range must satisfy 0 <= lo <= hi, got {sigma_range}")
        usable = [im for im in images if im.shape[-1] >= patch_size and im.shape[-2] >= patch_size]
        if not usable:
            smallest = min((tuple(im.shape[-2:]) for im in images), default=None)
            raise ValueError(f"every image is smaller than patch_size={patch_size} (smallest {smallest})")
        self.images = usable
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.sigma_range = (float(lo), float(hi))
        self.seed = int(seed)

    def generator(self, step: int, rank: int = 0) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1))
        return g

    def sample(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.generator(step, rank)
        p = self.patch_size
        idx = torch.randint(len(self.images), (self.batch_size,), generator=g)
        patches = []
        for i in idx.tolist():
            im = self.images[i]
            h, w = im.shape[-2:]
            top = int(torch.randint(h - p + 1, (1,), generator=g))
            left = int(torch.randint(w - p + 1, (1,), generator=g))
            patch = im[:, top : top + p, left : left + p]
            k = int(torch.randint(4, (1,), generator=g))
            if k:
                patch = torch.rot90(patch, k, dims=(-2, -1))
            if int(torch.randint(2, (1,), generator=g)):
                patch = patch.flip(-1)
            patches.append(patch)
        clean = torch.stack(patches).contiguous()
        lo, hi = self.sigma_range
        sigma = lo + (hi - lo) * torch.rand(self.batch_size, generator=g)
        noise = torch.randn(clean.shape, generator=g) * sigma.view(-1, 1, 1, 1)
        return clean, clean + noise, sigma
