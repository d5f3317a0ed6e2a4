"""``pnp denoise``: denoise an image (or the built-in demo) with one denoiser call.

Examples::

    pnp denoise --demo --noise 0.05 --out denoised.png --report report.json
    pnp denoise noisy.png --noisy --noise 0.05 --denoiser tv --out denoised.png
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
    p.add_argument("--noise", type=float, default=0.05, help="noise std on [0,1] (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--noisy", action="store_true", help="IMAGE is already noisy")
    p.add_argument("--denoiser", default="tv", help="tv, quadratic or a zoo name (default tv)")
    p.add_argument("--sigma", type=float, default=None, help="denoiser sigma (default --noise)")
    p.add_argument("--ensemble", action="store_true",
                   help="average the denoiser over the 8 symmetries of the square (keeps the certificate, 8x cost)")
    p.add_argument("--out", required=True, help="denoised image (.png/.tif/.jpg)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="output bit depth")
    p.add_argument("--report", default=None, help="write a JSON report")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress line (shown only on a terminal)")
    p.set_defaults(func=run, plot=None)


def run(args: argparse.Namespace) -> int:
    import pnp
    from operators import add_gaussian_noise
    from pnp.io import write_image

    if not math.isfinite(args.noise) or args.noise < 0:
        raise ValueError(f"--noise must be finite and >= 0, got {args.noise!r}")
    if args.noisy and args.demo:
        raise ValueError("--noisy needs an IMAGE (the noisy observation), not --demo")
    sigma = args.noise if args.sigma is None else args.sigma
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"--sigma (default --noise) must be > 0, got {sigma!r}")
    check_source(args.image, args.demo)
    check_outputs(args)
    image, source = load_input(args.image, args.demo, args.size)
    denoiser = pnp.get_denoiser(args.denoiser)
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
    write_image(args.out, out, bits=args.bits, overwrite=args.force)
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
    print(f"wrote {args.out} in {elapsed:.2f} s")
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
        write_report(args.report, report, force=args.force)
        print(f"wrote {args.report}")
    return 0
