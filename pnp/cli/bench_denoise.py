"""``pnp bench denoise``: PSNR/SSIM of denoisers on an image folder at given noise levels.

Example::

    pnp bench denoise --data set12 --noise 15/255,25/255 --denoiser tv,bm3d,rk-averaged --out runs/den

Noise: ``numpy.random.seed(seed)`` then ``numpy.random.normal(0, noise, (H, W, C))`` per image;
each denoiser is called at the true noise level. Resumable (rerun with the same ``--out``).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from pnp.cli._common import DENOISER_HELP

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pnp.cli.bench_deblur import _positive_int

    p = subparsers.add_parser(
        "denoise", help="denoiser PSNR/SSIM on a folder at given noise levels (incl. BM3D)",
        description="Add seeded Gaussian noise to every image of --data, denoise at the true level, "
                    "and write results.json, results.csv and summary.md to --out.",
    )
    p.add_argument("--data", default="set12", help="image folder (path or name under shared/data; default set12)")
    p.add_argument("--noise", default="15/255,25/255,50/255", help="noise levels (default 15/255,25/255,50/255)")
    p.add_argument("--denoiser", required=True, help="comma-separated: " + DENOISER_HELP)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--max-images", type=_positive_int, default=None, help="first N images only")
    p.add_argument("--seed", type=int, default=0, help="numpy seed before each image's noise (default 0)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.report import denoise_table
    from benchmarks.runner import run_denoise_benchmark
    from pnp.cli.bench_deblur import _names, _noise

    from benchmarks.runner import BenchmarkError
    from pnp.cli import CLIError

    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    try:
        records = run_denoise_benchmark(
            data=args.data, noise_levels=tuple(_noise(args.noise)), denoisers=tuple(_names(args.denoiser)),
            out=args.out, max_images=args.max_images, seed=args.seed, dtype=args.dtype, device=args.device,
            log=log, command="pnp " + shlex.join(sys.argv[1:]),
        )
    except BenchmarkError as exc:  # a denoiser failed: exit 2 (a new folder without records is removed)
        raise CLIError(str(exc)) from None
    print(denoise_table(records), end="")
    print(f"wrote {args.out}/results.json, results.csv, summary.md")
    return 0
