"""``pnp denoise``: denoise an image (or the built-in demo) with one denoiser call.

Examples::

    pnp denoise --demo --noise 0.05 --out denoised.png --report report.json
    pnp denoise noisy.png --noisy --noise 0.05 --denoiser tv --out denoised.png
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
    write_report,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "denoise",
        help="denoise an image with a (certified) denoiser",
        description=(
            "Add Gaussian noise to IMAGE (or the demo image), or take an already noisy IMAGE "
            "with --noisy, apply D(y, sigma) once, write the result and report PSNR."
        ),
    )
    p.add_argument("image", nargs="?", metavar="IMAGE", help="PNG/TIFF/JPEG, grey or colour, 8/16 bit")
    p.add_argument("--demo", action="store_true", help="use skimage.data.camera() resized")
    p.add_argument("--size", type=positive_int, default=256, help="demo image size (default 256)")
    p.add_argument("--noise", type=float, default=0.05, help="noise std on the [0,1] scale, at most 1 (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--noisy", action="store_true", help="IMAGE is already noisy")
    p.add_argument("--denoiser", default="tv", help=DENOISER_HELP + " (default tv)")
    p.add_argument("--sigma", type=float, default=None, help="denoiser sigma (default --noise)")
    p.add_argument("--ensemble", action="store_true",
                   help="average the denoiser over the 8 symmetries of the square (keeps the certificate, 8x cost)")
    p.add_argument("--out", required=True, help="denoised image (.png/.tif/.jpg)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="output bit depth (default 8)")
    p.add_argument("--report", default=None, help="write a JSON report (.json; default none)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (default: refuse)")
    p.add_argument("--quiet", action="store_true", help="no progress line (shown only on a terminal)")
    p.set_defaults(func=run, plot=None)


def run(args: argparse.Namespace) -> int:
    from pnp.validate import check_noise_level, check_positive

    check_noise_level(args.noise, name="--noise")
    if args.noisy and args.demo:
        raise ValueError("--noisy needs an IMAGE (the noisy observation), not --demo")
    sigma = check_positive(args.noise if args.sigma is None else args.sigma,
                           name="--sigma" if args.sigma is not None else "--sigma (default --noise)")
    check_source(args.image, args.demo)
    with check_outputs(args) as plan:  # every output checked before any work; written at the end
        return _run(args, plan, sigma)


def _run(args: argparse.Namespace, plan: Any, sigma: float) -> int:
    import torch

    import pnp
    from operators import add_gaussian_noise
    from pnp.io import write_image
    from pnp.resolve import resolve_denoiser

    image, source = load_input(args.image, args.demo, args.size)
    denoiser = resolve_denoiser(args.denoiser, argument="--denoiser")
    if args.ensemble:
        from denoisers import GeometricEnsemble

        denoiser = GeometricEnsemble(denoiser)
    if args.noisy:
        x_true, y = None, image
    else:
        x_true, y = image, add_gaussian_noise(image, args.noise, seed=args.seed)
    line = None
    if progress_enabled(args.quiet):
        from pnp.progress import ProgressLine

        line = ProgressLine("denoise", total=1)
        passes = 8 if args.ensemble else 1
        line.message(f"denoise {args.denoiser}: {'x'.join(map(str, y.shape))}, {passes} pass(es) ...")
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            out = denoiser(y, sigma)
        elapsed = time.perf_counter() - t0
        if line is not None:
            done = f"denoise {args.denoiser}: done in {elapsed:.1f} s"
            if x_true is not None:
                done += f", PSNR {float(pnp.psnr(out, x_true)[0]):.2f} dB"
            line.message(done)
    finally:
        if line is not None:
            line.close()
    plan.stage("--out", lambda tmp: write_image(tmp, out, bits=args.bits, overwrite=True))
    psnr_in = psnr_out = None
    if x_true is not None:
        psnr_in = float(pnp.psnr(y, x_true)[0])
        psnr_out = float(pnp.psnr(out, x_true)[0])
        print(f"PSNR noisy    : {psnr_in:.2f} dB")
        print(f"PSNR denoised : {psnr_out:.2f} dB")
    cert = pnp.guarantees.denoiser_certificate(denoiser)
    print(
        "certificate   : "
        + ("none" if cert is None else f"Lipschitz <= {cert.lipschitz_bound:g}, alpha = {cert.alpha}")
    )
    report: dict[str, Any] = {
        "psnr": psnr_out,
        "psnr_input": psnr_in,
        "psnr_definition": "10 log10(1/MSE), data range 1, both images clipped to [0,1], no crop",
        "denoiser": args.denoiser,
        "ensemble": bool(args.ensemble),
        "sigma": sigma,
        "noise": args.noise,
        "seed": args.seed,
        "noisy_input": bool(args.noisy),
        "image": source,
        "image_shape": list(image.shape),
        "output": str(args.out),
        "certificate": None if cert is None else cert.to_dict(),
        "time": elapsed,
        "environment": environment(out),
    }
    if args.report:
        plan.stage("--report", lambda tmp: write_report(tmp, report, force=True))
    for path in plan.commit():
        print(f"wrote {path}")
    print(f"time          : {elapsed:.2f} s")
    return 0
