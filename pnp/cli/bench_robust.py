"""``pnp bench robust --out OUTDIR [--epochs N] [--seed S] [--quick]``.

Trains the l-inf implicit network, an unconstrained MLP and an averaged gradient-step classifier
on scikit-learn's 8x8 digits (CPU, offline), and writes certified / PGD-attacked accuracies at
several l-inf and l2 radii to ``OUTDIR`` (results.json, results.csv, results.md,
accuracy_vs_radius.png). See :mod:`benchmarks.robust` for the protocol.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "robust",
        help="certified robust classification on 8x8 digits (implicit l-inf net, MLP, gradient-step net)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="training epochs per model (default: 40, or 4 with --quick)")
    p.add_argument("--seed", type=_int, default=0, help="seed of initialisation and batch order (default 0)")
    p.add_argument("--quick", action="store_true",
                   help="small models, 120 test images, 5-step PGD with 1 restart (seconds)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.robust import RobustConfig, markdown_table, run_robust_benchmark, write_outputs

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a directory, got existing file {str(out)!r}")
    if args.quick:
        cfg = RobustConfig.quick_config(seed=args.seed, **({} if args.epochs is None else {"epochs": args.epochs}))
    else:
        cfg = RobustConfig(seed=args.seed, **({} if args.epochs is None else {"epochs": args.epochs}))
    result = run_robust_benchmark(cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    paths = write_outputs(result, out)
    print(markdown_table(result), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
