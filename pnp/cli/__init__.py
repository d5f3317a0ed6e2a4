"""The ``pnp`` command line: ``pnp deblur|denoise|train|bench|certify``.

Each sub-command lives in its own module with ``add_parser(subparsers)`` and ``run(args)``.
Known errors become one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

__all__ = ["main", "CLIError"]

_COMMANDS = ("deblur", "denoise", "train", "bench", "certify")


class CLIError(Exception):
    """An error the command line reports as one line with exit code 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pnp",
        description="Convergent Plug-and-Play image restoration with certified denoisers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"pnp.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pnp.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("pnp: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, PermissionError, FileExistsError, OSError) as exc:
        print(f"pnp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
