"""Helpers shared by ``pnp deblur`` and ``pnp denoise``: demo image, output plan, report, plot.

Heavy modules (numpy, torch, matplotlib) are imported inside the functions: the command line
imports this module to build its parser, and ``pnp --help`` must not wait for torch.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pnp.cli._outputs import OutputPlan

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

#: Image suffixes the writers accept (:data:`pnp.io.IMAGE_SUFFIXES`, repeated here to keep the
#: parser free of torch; a test checks that both agree).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")

#: The ``--denoiser`` help of every command (what :func:`pnp.resolve.resolve_denoiser` accepts).
DENOISER_HELP = (
    "tv, quadratic, bm3d, a zoo name (rk-averaged: the certified network family, or one member), "
    "a checkpoint file (.safetensors, written by pnp train) or py:MODULE:CALLABLE"
)

__all__ = [
    "DENOISER_HELP",
    "IMAGE_SUFFIXES",
    "OutputPlan",
    "check_outputs",
    "check_source",
    "demo_image",
    "environment",
    "load_input",
    "positive_int",
    "progress_enabled",
    "write_plot",
    "write_report",
]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def demo_image(size: int = 256) -> Tensor:
    """scikit-image's ``camera`` (grey, 512x512), resized to ``size x size``: ``[1, 1, H, W]``."""
    import numpy as np
    import torch
    from skimage import data, transform

    img = data.camera().astype(np.float64) / 255.0
    if size != img.shape[0]:
        img = transform.resize(img, (size, size), anti_aliasing=True, order=1)
    return torch.from_numpy(np.clip(img, 0.0, 1.0).astype(np.float32))[None, None]


def check_source(image: str | None, demo: bool) -> None:
    """Exactly one of ``IMAGE`` and ``--demo``."""
    if demo and image is not None:
        raise ValueError("give either IMAGE or --demo, not both")
    if not demo and image is None:
        raise ValueError("give an IMAGE path or --demo")


def load_input(image: str | None, demo: bool, size: int) -> tuple[Tensor, str]:
    """The input image and its description; exactly one of ``image`` and ``demo``."""
    check_source(image, demo)
    if demo:
        return demo_image(size), f"demo: skimage.data.camera() resized to {size}x{size}"
    from pnp.io import read_image

    try:
        return read_image(image), str(image)
    except (FileNotFoundError, IsADirectoryError, ValueError, PermissionError) as exc:
        msg = str(exc)
        raise type(exc)(f"IMAGE {str(image)!r}: {msg}" if str(image) not in msg else f"IMAGE: {msg}") from None


def check_outputs(args: Any) -> OutputPlan:
    """Plan ``--out`` (an image), ``--report`` (JSON) and ``--plot`` (PNG) before any computation
    (:class:`~pnp.cli._outputs.OutputPlan`: folders exist and are writable, no existing file
    without ``--force``, no two outputs the same file); returns the plan, whose outputs are
    staged and committed at the end."""
    plan = OutputPlan(force=bool(getattr(args, "force", False)))
    out = plan.add("--out", args.out, suffixes=IMAGE_SUFFIXES)
    if getattr(args, "bits", 8) == 16 and out.suffix.lower() in (".jpg", ".jpeg"):
        raise ValueError(f"--bits 16 needs a .png or .tif --out, got {str(args.out)!r}")
    if getattr(args, "report", None) is not None:
        plan.add("--report", args.report, suffixes=(".json",))
    if getattr(args, "plot", None) is not None:
        plan.add("--plot", args.plot, suffixes=(".png", ".pdf", ".svg"))
    return plan


def environment(x: Tensor) -> dict[str, Any]:
    import deepinv
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "deepinv": deepinv.__version__,
        "device": str(x.device),
        "dtype": str(x.dtype).replace("torch.", ""),
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_report(path: str, report: dict[str, Any], *, force: bool) -> None:
    p = Path(path)
    if p.exists() and not force:
        raise FileExistsError(f"--report {str(p)!r} exists (use --force to overwrite)")
    p.write_text(json.dumps(_clean(report), indent=2) + "\n")


def write_plot(path: str, residual: Tensor, psnr: Tensor | None, *, title: str, force: bool) -> None:
    """Residual (log scale) and PSNR against iteration (first image of the batch)."""
    p = Path(path)
    if p.exists() and not force:
        raise FileExistsError(f"--plot {str(p)!r} exists (use --force to overwrite)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ncols = 2 if psnr is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.6), squeeze=False)
    its = np.arange(1, residual.shape[0] + 1)
    ax = axes[0, 0]
    ax.semilogy(its, residual[:, 0].clamp_min(1e-300).numpy())
    ax.set_xlabel("iteration")
    ax.set_ylabel("||x_{k+1} - x_k|| / ||x_k||")
    ax.set_title("fixed-point residual")
    ax.grid(True, which="both", alpha=0.3)
    if psnr is not None:
        ax = axes[0, 1]
        ax.plot(its, psnr[:, 0].numpy())
        ax.set_xlabel("iteration")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title("PSNR")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)


def progress_enabled(quiet: bool = False) -> bool:
    """Progress lines only on a terminal (stderr is a TTY) and without ``--quiet``."""
    from pnp.progress import wants_progress

    return wants_progress(quiet, sys.stderr)
