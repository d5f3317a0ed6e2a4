"""``pnp bench speed``: loop overhead vs deepinv, and time / peak memory per iteration vs size.

Example::

    pnp bench speed --sizes 128,256,512 --denoiser quadratic --out runs/speed

Writes ``speed.json`` and ``speed.md`` to ``--out``. Default sizes: 128..2048 on a GPU,
128..512 on a CPU. See :mod:`benchmarks.speed`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

__all__ = ["add_parser", "run"]


def _default_denoiser() -> str:
    try:
        import pnp

        return "rk-averaged" if "rk-averaged" in pnp.available_denoisers() else "quadratic"
    except Exception:  # a broken zoo must not break the command line
        return "quadratic"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pnp.cli.bench_deblur import _positive_int

    p = subparsers.add_parser(
        "speed", help="per-iteration overhead vs deepinv; time and memory per iteration vs size",
        description="Overhead of our PnP-FBS loop against deepinv's PGD (same problem, side by "
                    "side) and time / peak memory per iteration from small to large images.",
    )
    p.add_argument("--sizes", default=None, help="image sizes, e.g. 128,256,512 (default: 128..2048 on GPU, 128..512 on CPU)")
    p.add_argument("--denoiser", default=None, help="tv, quadratic or a zoo name (default: rk-averaged if shipped, else quadratic)")
    p.add_argument("--kernel", default="gaussian:25:1.6", help="kernel spec (default gaussian:25:1.6)")
    p.add_argument("--iterations", type=_positive_int, default=10, help="timed iterations per size (default 10)")
    p.add_argument("--overhead-size", type=_positive_int, default=256, help="image size of the overhead comparison")
    p.add_argument("--overhead-iterations", type=_positive_int, default=30)
    p.add_argument("--repeats", type=_positive_int, default=5, help="repeats of the overhead comparison")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--in-process", action="store_true",
                   help="measure every size in this process (default on CPU: a fresh process per size)")
    p.add_argument("--out", required=True, help="output directory (speed.json, speed.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import datetime
    from pathlib import Path

    from benchmarks.runner import environment
    from benchmarks.speed import measure_speed, speed_markdown
    from pnp.cli.bench_deblur import _ints

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a directory, got existing file {str(out)!r}")
    sizes = None if args.sizes is None else tuple(_ints(args.sizes, "sizes"))
    if args.iterations < 2:
        raise ValueError(f"--iterations must be >= 2, got {args.iterations}")
    denoiser = args.denoiser or _default_denoiser()
    from benchmarks.runner import check_denoisers

    check_denoisers([denoiser], allow_closed_form=False)  # before any measurement
    result = measure_speed(sizes=sizes, denoiser=denoiser, kernel=args.kernel, iterations=args.iterations,
                           overhead_size=args.overhead_size, overhead_iterations=args.overhead_iterations,
                           repeats=args.repeats, device=args.device,
                           isolate=False if args.in_process else None)
    dev = result["scaling"]["device"]
    result["metadata"] = {"command": "pnp " + shlex.join(sys.argv[1:]),
                          "date": datetime.datetime.now().isoformat(timespec="seconds"),
                          **environment(dev, "float32")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(result, indent=1) + "\n")
    md = speed_markdown(result)
    (out / "speed.md").write_text(f"# Speed (`{result['metadata']['command']}`)\n\n" + md)
    print(md, end="")
    print(f"wrote {out / 'speed.json'} and {out / 'speed.md'}")
    return 0
