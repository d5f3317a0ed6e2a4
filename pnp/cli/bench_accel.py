"""``pnp bench accel``: accelerated (safeguarded Anderson) against plain PnP loops, side by side.

Example (the issue's target: set12 images 01-07, all ten kernels, 7.65/255, the shipped family)::

    pnp bench accel --protocol levin10-cal2 --data set12 --images 1-7 --noise 7.65/255 \\
        --denoiser rk-averaged --solver fbs --out runs/accel

Writes ``records.jsonl`` (one line per case, as it comes), ``accel.json`` and ``accel.md`` to
``--out``; ``--photo`` adds the 512x512 colour ``astronaut`` case through ``pnp.deblur``.
See :mod:`benchmarks.accel`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys

__all__ = ["add_parser", "run"]


def _indices(text: str, what: str) -> list[int]:
    """``1-7`` or ``1,2,5`` (1-based images) -> 0-based indices."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise ValueError(f"--{what} must look like 1-7 or 1,2,5, got {text!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"--{what} must list numbers >= 1, got {text!r}")
    return [v - 1 for v in out]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pnp.cli.bench_deblur import _positive_int

    p = subparsers.add_parser(
        "accel", help="Anderson-accelerated vs plain PnP loops, side by side",
        description="Run each case of a deblurring protocol plain and with safeguarded Anderson "
                    "acceleration, interleaved; report iterations, wall time, PSNR of the limits "
                    "and divergences.",
    )
    p.add_argument("--protocol", default="levin10-cal2", help="shipped name or .toml (default levin10-cal2)")
    p.add_argument("--data", default=None, help="image folder (default: the protocol's)")
    p.add_argument("--images", default="1-7", help="1-based image numbers, e.g. 1-7 or 1,2 (default 1-7)")
    p.add_argument("--kernels", default=None, help="1-based kernel numbers of the protocol, e.g. 1,10 (default all; note: pnp bench deblur counts from 0)")
    p.add_argument("--noise", default="7.65/255", help="one noise level (default 7.65/255)")
    p.add_argument("--denoiser", default="rk-averaged", help="comma-separated denoisers (default rk-averaged)")
    p.add_argument("--solver", default="fbs", help="comma-separated: fbs,hqs,admm (default fbs)")
    p.add_argument("--memory", type=_positive_int, default=5, help="Anderson memory (default 5)")
    p.add_argument("--max-iter", type=_positive_int, default=None, help="override the budget")
    p.add_argument("--photo", action="store_true", help="also the 512x512 colour astronaut case")
    p.add_argument("--photo-only", action="store_true", help="only the colour astronaut case")
    p.add_argument("--quiet", action="store_true", help="no per-case lines")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.accel import accel_markdown, photo_case, run_accel, summarise
    from benchmarks.protocols import load_protocol, parse_noise
    from benchmarks.runner import environment
    from pnp.cli.bench_deblur import _names

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a directory, got existing file {str(out)!r}")
    if out.is_dir() and (out / "records.jsonl").exists():
        raise FileExistsError(f"--out {str(out)!r} already holds records.jsonl; choose a new folder")
    protocol = load_protocol(args.protocol)
    noise = parse_noise(args.noise)
    solvers = tuple(_names(args.solver))
    for s in solvers:
        if s not in ("fbs", "hqs", "admm"):
            raise ValueError(f"--solver must list fbs, hqs or admm, got {s!r}")
    denoisers = tuple(_names(args.denoiser))
    if not denoisers:
        raise ValueError("--denoiser must name at least one denoiser")
    images = tuple(_indices(args.images, "images"))
    kernels = None if args.kernels is None else tuple(_indices(args.kernels, "kernels"))

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    out.mkdir(parents=True, exist_ok=True)
    records = [] if args.photo_only else run_accel(
        protocol, denoisers=denoisers, solvers=solvers, noise=noise, images=images, kernels=kernels,
        data=args.data, memory=args.memory, max_iter=args.max_iter, out=out, log=log)
    photo = None
    if args.photo or args.photo_only:
        log("colour photo case (astronaut 512x512), plain and accelerated in alternation ...")
        photo = photo_case(memory=args.memory)
    rows = summarise(records) if records else []
    result = {
        "metadata": {"command": "pnp " + shlex.join(sys.argv[1:]),
                     "date": datetime.datetime.now().isoformat(timespec="seconds"),
                     "protocol": protocol.name, "noise": noise,
                     **environment("cpu", protocol.dtype)},
        "summary": rows,
        "records": records,
        "photo": photo,
    }
    (out / "accel.json").write_text(json.dumps(result, indent=1) + "\n")
    md = accel_markdown(rows, photo)
    (out / "accel.md").write_text(f"# Acceleration (`{result['metadata']['command']}`)\n\n" + md)
    print(md, end="")
    print(f"wrote {out / 'accel.json'} and {out / 'accel.md'}")
    return 0
