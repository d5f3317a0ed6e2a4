"""``pnp bench KIND``: benchmark runners (deblur, denoise, speed, robust).

Each kind lives in ``pnp/cli/bench_<kind>.py`` with ``add_parser(subparsers)``; the heavy
lifting is in the ``benchmarks`` package.
"""

from __future__ import annotations

import argparse
import importlib

_KINDS = ("deblur", "denoise", "speed", "robust", "accel")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run benchmarks (deblur, denoise, speed, robust, accel)")
    kinds = parser.add_subparsers(dest="bench_kind", metavar="KIND")
    kinds.required = True
    for kind in _KINDS:
        try:
            module = importlib.import_module(f"pnp.cli.bench_{kind}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pnp.cli.bench_{kind}":
                raise
            continue
        module.add_parser(kinds)
