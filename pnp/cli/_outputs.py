"""Outputs planned before any work starts, and written all together, atomically, at the end.

A command declares each output file (``plan.add("--out", path)``) before it computes anything;
:meth:`OutputPlan.add` checks the path (the folder exists and is writable, the path is no folder,
it does not exist unless ``--force``, and no two outputs are the same file). At the end the
command *stages* every output (written to a hidden temporary file beside its target) and
:meth:`OutputPlan.commit` renames them into place. A failure before the commit removes the
temporary files, so a failed run leaves nothing new behind and overwrites nothing.

Usage::

    with OutputPlan(force=args.force) as plan:
        out = plan.add("--out", args.out, suffixes=IMAGE_SUFFIXES)
        ...                                   # read inputs, compute
        plan.stage("--out", lambda tmp: write_image(tmp, x, overwrite=True))
        plan.commit()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["OutputPlan"]


class OutputPlan:
    """The output files of one command (module docstring)."""

    def __init__(self, *, force: bool = False) -> None:
        self.force = bool(force)
        self._paths: dict[str, Path] = {}
        self._staged: dict[str, Path] = {}
        self._committed = False

    # ------------------------------------------------------------------ planning
    def add(self, flag: str, path: str | os.PathLike[str], *, suffixes: Sequence[str] | None = None) -> Path:
        """Check ``path`` as the output of ``flag`` and reserve it; returns it as a ``Path``.

        :raises ValueError: a wrong suffix, or the same file as another output.
        :raises FileExistsError: it exists and ``force`` is off.
        :raises IsADirectoryError: it is a folder.
        :raises FileNotFoundError / NotADirectoryError: its folder does not exist / is a file.
        :raises PermissionError: its folder is not writable.
        """
        p = Path(path).expanduser()
        text = str(path)
        if not text or p.name in ("", ".", ".."):
            raise ValueError(f"{flag} must be a file path, got {text!r}")
        if suffixes is not None and p.suffix.lower() not in suffixes:
            raise ValueError(f"{flag} {text!r} must end with one of {', '.join(suffixes)}")
        if p.is_dir():
            raise IsADirectoryError(f"{flag} {text!r} is a directory")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.exists():
            raise FileNotFoundError(f"{flag} {text!r}: directory {str(parent)!r} does not exist")
        if not parent.is_dir():
            raise NotADirectoryError(f"{flag} {text!r}: {str(parent)!r} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(f"{flag} {text!r}: directory {str(parent)!r} is not writable")
        if (p.exists() or p.is_symlink()) and not self.force:
            raise FileExistsError(f"{flag} {text!r} exists (use --force to overwrite)")
        key = parent.resolve() / p.name
        for other, q in self._paths.items():
            if (q.parent.resolve() / q.name) == key:
                raise ValueError(f"{flag} {text!r} is the same file as {other} (give distinct paths)")
        self._paths[flag] = p
        return p

    def path(self, flag: str) -> Path:
        return self._paths[flag]

    def __contains__(self, flag: str) -> bool:
        return flag in self._paths

    # ------------------------------------------------------------------ writing
    def stage(self, flag: str, write: Callable[[Path], object]) -> None:
        """Write the output of ``flag`` with ``write(tmp)`` to a temporary file beside its target
        (same suffix, so that writers choosing a format by suffix do the right thing)."""
        target = self._paths[flag]
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
        self._staged[flag] = tmp
        write(tmp)
        if not tmp.is_file():
            raise OSError(f"{flag}: nothing was written to {str(tmp)!r}")

    def commit(self) -> list[Path]:
        """Move every staged output into place (all outputs must be staged); returns their paths."""
        missing = [f for f in self._paths if f not in self._staged]
        if missing:
            raise RuntimeError(f"outputs not written: {', '.join(missing)}")  # a bug, not user input
        done: list[Path] = []
        for flag, tmp in self._staged.items():
            target = self._paths[flag]
            os.replace(tmp, target)
            try:
                os.chmod(target, 0o666 & ~_umask())
            except OSError:  # pragma: no cover - e.g. a file system without modes
                pass
            done.append(target)
        self._staged.clear()
        self._committed = True
        return done

    def abort(self) -> None:
        """Remove the temporary files of staged outputs (targets are left untouched)."""
        for tmp in self._staged.values():
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        self._staged.clear()

    def __enter__(self) -> "OutputPlan":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            self.abort()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
