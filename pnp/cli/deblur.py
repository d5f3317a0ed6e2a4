"""``pnp deblur``: deblur an image (or the built-in demo) with a certified PnP solver.

Examples::

    pnp deblur --demo --out restored.png --report report.json
    pnp deblur photo.png --kernel levin:3 --noise 0.01 --solver admm --out restored.png
    pnp deblur blurred.png --blurred --kernel kernel.npy --noise 0.01 --out restored.png
    pnp deblur photo.jpg --blurred --kernel k.npy --boundary valid --noise 0.01 --out restored.png
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pnp.cli._common import (
    DENOISER_HELP,
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
#: Blur model for a real IMAGE when --boundary is not given (the --demo keeps "circular"): the
#: winner of the levin10-valid benchmark (BENCHMARKS.md, issue 18).
DEFAULT_BOUNDARY_REAL = "valid"
BOUNDARY_CHOICES = ("circular", "valid", "reflect", "replicate")


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
    p.add_argument("--noise", type=float, default=0.01, help="noise std on the [0,1] scale, at most 1 (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--blurred", action="store_true", help="IMAGE is already the observation")
    p.add_argument(
        "--boundary", choices=BOUNDARY_CHOICES, default=None,
        help=(
            "blur model at the image borders: valid (the photo is the blur of a larger scene, "
            "cropped), circular (periodic), reflect/replicate (the image extended by symmetry or "
            f"by its edge). Default: circular with --demo, {DEFAULT_BOUNDARY_REAL} otherwise. "
            "Without --blurred, a non-circular boundary also blurs IMAGE before cropping (the "
            "observation and the restored image are smaller by the kernel size minus one)"
        ),
    )
    p.add_argument("--denoiser", default="tv", help=DENOISER_HELP + " (default tv)")
    p.add_argument("--solver", choices=("auto", "fbs", "hqs", "admm", "variational"), default="auto",
                   help="auto (default): variational for the ridge priors crr/wcrr, else fbs (forward-backward); "
                   "hqs (half-quadratic splitting); admm; variational: minimise 1/2||Ax-y||^2 + lambda R(x) "
                   "directly (crr, wcrr only)")
    p.add_argument("--sigma", type=float, default=None, help="denoiser sigma (default: rule)")
    p.add_argument("--gamma", type=float, default=None, help="step size (default: rule; 1/||A||^2, or 1.95/||A||^2 for learned denoisers in FBS)")
    p.add_argument("--max-iter", type=positive_int, default=150, help="iteration budget (default 150)")
    p.add_argument("--tol", type=float, default=1e-4, help="stop when the relative residual < tol (default 1e-4)")
    p.add_argument("--accel", choices=("auto", "none", "anderson"), default="auto",
                   help="safeguarded Anderson acceleration, keeps the guarantee (default auto: "
                        "anderson for learned denoisers, none for tv/quadratic; the variational solver has its own)")
    p.add_argument("--anderson-memory", type=positive_int, default=5, help="Anderson memory (default 5)")
    p.add_argument("--quiet", action="store_true", help="no progress line (shown only on a terminal)")
    p.add_argument("--out", required=True, help="restored image (.png/.tif/.jpg)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="output bit depth (default 8)")
    p.add_argument("--report", default=None, help="write a JSON report (.json; default none)")
    p.add_argument("--plot", default=None, help="write the residual/PSNR plot (.png/.pdf/.svg; default none)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (default: refuse)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pnp.validate import check_noise_level, check_positive

    check_noise_level(args.noise, name="--noise")
    check_positive(args.tol, name="--tol")
    for name in ("sigma", "gamma"):
        if getattr(args, name) is not None:
            check_positive(getattr(args, name), name=f"--{name}")
    if args.blurred and args.demo:
        raise ValueError("--blurred needs an IMAGE (the observation), not --demo")
    if args.blurred and args.kernel is None:
        raise ValueError("--blurred needs --kernel (the kernel file or spec)")
    check_source(args.image, args.demo)
    with check_outputs(args) as plan:  # every output checked before any work; written at the end
        return _run(args, plan)


def _run(args: argparse.Namespace, plan: Any) -> int:
    import torch

    import pnp
    from operators import add_gaussian_noise
    from pnp.io import write_image
    from pnp.resolve import resolve_denoiser

    kernel_spec = args.kernel or DEFAULT_KERNEL
    boundary = args.boundary or ("circular" if args.demo else DEFAULT_BOUNDARY_REAL)
    image, source = load_input(args.image, args.demo, args.size)
    h, w = image.shape[-2:]
    physics = pnp.make_blur(kernel_spec, image_shape=tuple(image.shape[-2:]), name="--kernel")
    kh, kw = physics.kernel_size
    # "tv" by name: pnp.deblur's warm-started TV; everything else resolved here, before any work
    denoiser = (args.denoiser if args.denoiser.strip().lower() == "tv"
                else resolve_denoiser(args.denoiser, argument="--denoiser"))
    if args.blurred:
        x_true, y = None, image
    elif boundary == "circular":
        x_true = image
        y = add_gaussian_noise(physics.A(image), args.noise, seed=args.seed)
    else:
        # a non-periodic observation: blur the whole image, keep the valid part
        if 2 * kh - 1 > h or 2 * kw - 1 > w:
            raise ValueError(
                f"--boundary {boundary}: image ({h}x{w}) too small for the kernel {kernel_spec!r} "
                f"({kh}x{kw}): blurring before cropping needs at least {2 * kh - 1}x{2 * kw - 1}"
            )
        scene = pnp.make_blur(kernel_spec, boundary="valid")
        x_true = scene.observed_region(image)
        y = add_gaussian_noise(scene.A(image), args.noise, seed=args.seed)

    t0 = time.perf_counter()
    result = pnp.deblur(
        y, physics.kernel.to(torch.float64), noise_level=args.noise, denoiser=denoiser,
        solver=args.solver, sigma=args.sigma, gamma=args.gamma, max_iter=args.max_iter,
        tol=args.tol, x_true=x_true, progress=progress_enabled(args.quiet), boundary=boundary,
        acceleration=args.accel, anderson_memory=args.anderson_memory,
    )
    elapsed = time.perf_counter() - t0
    plan.stage("--out", lambda tmp: write_image(tmp, result.x, bits=args.bits, overwrite=True))

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

    report: dict[str, Any] = {
        "psnr": psnr_out,
        "psnr_input": psnr_in,
        "psnr_definition": "10 log10(1/MSE), data range 1, both images clipped to [0,1], no crop",
        "iterations": result.iterations,
        "converged": result.converged,
        "stop_reason": result.stop_reason,
        "guarantee": result.guarantee.to_dict(),
        "acceleration": None if result.acceleration is None else result.acceleration.to_dict(),
        "solver": result.params.solver,
        "denoiser": args.denoiser,
        "kernel": kernel_spec,
        "kernel_size": [kh, kw],
        "boundary": boundary,
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
        plan.stage("--report", lambda tmp: write_report(tmp, report, force=True))
    if args.plot:
        if result.iterations == 0:
            raise ValueError("--plot: no iteration to plot")
        plan.stage("--plot", lambda tmp: write_plot(
            tmp, result.history.residual, result.history.psnr,
            title=f"{result.params.solver.upper()} / {args.denoiser} / {kernel_spec} / noise {args.noise}",
            force=True,
        ))
    for path in plan.commit():
        print(f"wrote {path}")
    print(f"time          : {elapsed:.1f} s")
    return 0
