"""The ``pnp`` command line: ``pnp deblur|denoise|train|bench|certify``.

Each sub-command lives in its own module with ``add_parser(subparsers)`` and ``run(args)``.
Known errors, including argparse's own (unknown choice, missing or malformed argument), become
one clear line ``pnp <cmd>: error: <msg>`` on stderr and exit code 2, never a usage block or a
traceback; warnings (e.g. ``KernelWarning``) are one line ``pnp <cmd>: warning: <msg> (Category)``
without the source line that Python's default format adds. ``main(argv)`` returns the exit code
instead of raising ``SystemExit``.

Start-up is kept short (``pnp --help`` must not import torch): the sub-command modules import
only ``argparse`` and light helpers at module level, and everything heavy inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Sequence

__all__ = ["main", "CLIError"]

_COMMANDS = ("deblur", "denoise", "train", "bench", "certify")


class CLIError(Exception):
    """An error the command line reports as one line with exit code 2."""


class _UsageError(Exception):
    """An argparse error, raised by :class:`_Parser` instead of printing usage and exiting."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog
        self.message = message


class _Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors raise :class:`_UsageError` (no usage block, no exit).

    Sub-parsers inherit the class (``add_subparsers`` defaults ``parser_class`` to the parent's
    class, and we also pass it explicitly), so ``pnp bench robust`` errors are caught too.
    """

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(self.prog, message)

    def add_subparsers(self, **kwargs):  # type: ignore[override]
        kwargs.setdefault("parser_class", type(self))
        return super().add_subparsers(**kwargs)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pnp",
        description="Convergent Plug-and-Play image restoration with certified denoisers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    """Run ``pnp`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    0 on success (and for ``--help``), 2 for a usage error or a known error (one line on
    stderr), 130 on Ctrl-C; sub-commands may return other codes (``certify``: 1 if an empirical
    bound contradicts the certificate).
    """
    parser = _build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            prog = f"pnp {args.command}" if getattr(args, "command", None) else "pnp"
            raise _UsageError(prog, f"unrecognized arguments: {' '.join(extras)}")
    except _UsageError as exc:
        print(f"{exc.prog}: error: {_one_line(exc.message)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help (and any other argparse exit action): keep its code
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    prog = " ".join(["pnp", args.command, *([args.bench_kind] if getattr(args, "bench_kind", None) else [])])

    def show(message, category, filename, lineno, file=None, line=None):  # one line, no source
        print(f"{prog}: warning: {_one_line(message)} ({category.__name__})", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            rc = args.func(args)
    except KeyboardInterrupt:
        print("pnp: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, PermissionError, FileExistsError, OSError) as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
