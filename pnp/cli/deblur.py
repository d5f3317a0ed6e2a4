"""``pnp deblur``: deblur an image (or the built-in demo) with a certified PnP solver.

Examples::

    pnp deblur --demo --out restored.png --report report.json
    pnp deblur photo.png --kernel levin:3 --noise 0.01 --solver admm --out restored.png
    pnp deblur blurred.png --blurred --kernel kernel.npy --noise 0.01 --out restored.png
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import torch

from pnp.cli._common import (
    check_outputs,
    check_source,
    environment,
    load_input,
    positive_int,
    progress_enabled,
    write_plot,
    write_report,
)

__all__ = ["add_parser", "run"]

DEFAULT_KERNEL = "gaussian:25:1.6"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "deblur",
        help="deblur an image with a PnP solver (FBS, HQS, ADMM)",
        description=(
            "Blur IMAGE (or the demo image) with a kernel and Gaussian noise, or take an already "
            "blurred IMAGE with --blurred, restore it with a PnP solver, write the result, and "
            "report PSNR, iterations, convergence and the guarantee that applies."
        ),
    )
    p.add_argument("image", nargs="?", metavar="IMAGE", help="PNG/TIFF/JPEG, grey or colour, 8/16 bit")
    p.add_argument("--demo", action="store_true", help="use skimage.data.camera() resized")
    p.add_argument("--size", type=positive_int, default=256, help="demo image size (default 256)")
    p.add_argument(
        "--kernel", default=None,
        help=f"kernel spec or file (default {DEFAULT_KERNEL}; required with --blurred)",
    )
    p.add_argument("--noise", type=float, default=0.01, help="noise std on [0,1] (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--blurred", action="store_true", help="IMAGE is already the observation")
    p.add_argument("--denoiser", default="tv", help="tv, quadratic or a zoo name (default tv)")
    p.add_argument("--solver", choices=("fbs", "hqs", "admm"), default="fbs")
    p.add_argument("--sigma", type=float, default=None, help="denoiser sigma (default: rule)")
    p.add_argument("--gamma", type=float, default=None, help="step size (default: rule; 1/||A||^2, or 1.95/||A||^2 for learned denoisers in FBS)")
    p.add_argument("--max-iter", type=positive_int, default=150, help="default 150")
    p.add_argument("--tol", type=float, default=1e-4, help="stop when residual < tol (1e-4)")
    p.add_argument("--accel", choices=("auto", "none", "anderson"), default="auto",
                   help="safeguarded Anderson acceleration, keeps the guarantee (default auto: "
                        "anderson for learned denoisers, none for tv/quadratic)")
    p.add_argument("--anderson-memory", type=positive_int, default=5, help="Anderson memory (default 5)")
    p.add_argument("--quiet", action="store_true", help="no progress line (shown only on a terminal)")
    p.add_argument("--out", required=True, help="restored image (.png/.tif/.jpg)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="output bit depth")
    p.add_argument("--report", default=None, help="write a JSON report")
    p.add_argument("--plot", default=None, help="write residual/PSNR plot (PNG)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pnp
    from operators import add_gaussian_noise
    from pnp.io import write_image

    if not math.isfinite(args.noise) or args.noise < 0:
        raise ValueError(f"--noise must be finite and >= 0, got {args.noise!r}")
    if not (math.isfinite(args.tol) and args.tol > 0):
        raise ValueError(f"--tol must be > 0, got {args.tol!r}")
    for name in ("sigma", "gamma"):
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"--{name} must be > 0, got {v!r}")
    if args.blurred and args.demo:
        raise ValueError("--blurred needs an IMAGE (the observation), not --demo")
    if args.blurred and args.kernel is None:
        raise ValueError("--blurred needs --kernel (the kernel file or spec)")
    check_source(args.image, args.demo)
    check_outputs(args)
    kernel_spec = args.kernel or DEFAULT_KERNEL

    image, source = load_input(args.image, args.demo, args.size)
    physics = pnp.make_blur(kernel_spec)
    kh, kw = physics.kernel_size
    h, w = image.shape[-2:]
    if kh > h or kw > w:
        raise ValueError(f"kernel {kernel_spec!r} of size {kh}x{kw} is larger than the image ({h}x{w})")
    if args.blurred:
        x_true, y = None, image
    else:
        x_true = image
        y = add_gaussian_noise(physics.A(image), args.noise, seed=args.seed)

    t0 = time.perf_counter()
    result = pnp.deblur(
        y, physics.kernel.to(torch.float64), noise_level=args.noise, denoiser=args.denoiser,
        solver=args.solver, sigma=args.sigma, gamma=args.gamma, max_iter=args.max_iter,
        tol=args.tol, x_true=x_true, progress=progress_enabled(args.quiet),
        acceleration=args.accel, anderson_memory=args.anderson_memory,
    )
    elapsed = time.perf_counter() - t0
    write_image(args.out, result.x, bits=args.bits, overwrite=args.force)

    psnr_in = psnr_out = None
    if x_true is not None:
        psnr_in = float(pnp.psnr(y, x_true)[0])
        psnr_out = float(pnp.psnr(result.x, x_true)[0])
        print(f"PSNR input    : {psnr_in:.2f} dB")
        print(f"PSNR restored : {psnr_out:.2f} dB")
    print(f"iterations    : {result.iterations} ({result.stop_reason})")
    print(f"converged     : {result.converged}")
    if result.acceleration is not None:
        print(f"anderson      : {result.acceleration.total_accepted} of "
              f"{result.acceleration.total_tried} steps accepted (memory {args.anderson_memory})")
    print(f"{result.guarantee.summary()}")
    print(f"wrote {args.out} in {elapsed:.1f} s")

    report: dict[str, Any] = {
        "psnr": psnr_out,
        "psnr_input": psnr_in,
        "psnr_definition": "10 log10(1/MSE), data range 1, both images clipped to [0,1], no crop",
        "iterations": result.iterations,
        "converged": result.converged,
        "stop_reason": result.stop_reason,
        "guarantee": result.guarantee.to_dict(),
        "acceleration": None if result.acceleration is None else result.acceleration.to_dict(),
        "solver": args.solver,
        "denoiser": args.denoiser,
        "kernel": kernel_spec,
        "kernel_size": [kh, kw],
        "boundary": "circular",
        "noise": args.noise,
        "seed": args.seed,
        "blurred_input": bool(args.blurred),
        "image": source,
        "image_shape": list(image.shape),
        "output": str(args.out),
        "params": result.params.to_dict(),
        "time": elapsed,
        "time_per_iteration": (
            float(result.history.time.mean()) if result.iterations else None
        ),
        "history": result.history.to_dict(),
        "environment": environment(result.x),
    }
    if args.report:
        write_report(args.report, report, force=args.force)
        print(f"wrote {args.report}")
    if args.plot:
        if result.iterations == 0:
            raise ValueError("--plot: no iteration to plot")
        write_plot(
            args.plot, result.history.residual, result.history.psnr,
            title=f"PnP-{args.solver.upper()} / {args.denoiser} / {kernel_spec} / noise {args.noise}",
            force=args.force,
        )
        print(f"wrote {args.plot}")
    return 0
