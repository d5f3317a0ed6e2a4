"""A one-line progress display for long runs: iteration, residual, PSNR when known, ETA.

The line is rewritten in place (carriage return) on a text stream, by default ``sys.stderr``.
Whether to show it at all is the caller's choice; the command line shows it only when stderr is
a terminal and ``--quiet`` is not given (:func:`wants_progress`).

ETA. With residuals ``r_k`` the loop is expected to stop when ``r`` reaches ``tol``; from the
geometric rate ``q`` of the last few residuals the remaining iterations are about
``log(r / tol) / log(1 / q)``, capped by the iteration budget (the budget alone when the
residual is not decreasing); times the mean time per iteration so far.

    >>> import io
    >>> buf = io.StringIO()
    >>> line = ProgressLine("PnP-FBS", total=10, tol=1e-5, stream=buf)
    >>> line.update(1, 1e-2, psnr=25.0, seconds=0.5)
    >>> "it 1/10" in buf.getvalue() and "PSNR 25.00" in buf.getvalue()
    True
"""

from __future__ import annotations

import math
import sys
from typing import TextIO

__all__ = ["ProgressLine", "is_tty", "wants_progress"]


def is_tty(stream: object) -> bool:
    """``stream.isatty()`` when it has one, else ``False``."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed stream
        return False


def wants_progress(quiet: bool = False, stream: TextIO | None = None) -> bool:
    """Show progress: not ``quiet`` and ``stream`` (default ``sys.stderr``) is a terminal."""
    return not quiet and is_tty(sys.stderr if stream is None else stream)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ProgressLine:
    """Rewrites ``label it k/total  residual r  PSNR p dB  ETA t`` on ``stream``."""

    def __init__(self, label: str, *, total: int, tol: float | None = None,
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.total = int(total)
        self.tol = tol
        self.stream = stream
        self._res: list[float] = []
        self._elapsed = 0.0
        self._width = 0
        self._written = False

    def _out(self) -> TextIO:
        return sys.stderr if self.stream is None else self.stream

    def eta(self, iteration: int) -> float:
        """Seconds left (see the module docstring)."""
        if iteration <= 0:
            return math.inf
        per = self._elapsed / iteration
        left = max(self.total - iteration, 0)
        r = [v for v in self._res[-6:] if v > 0 and math.isfinite(v)]
        if self.tol is not None and len(r) >= 2 and r[-1] < r[0]:
            q = (r[-1] / r[0]) ** (1.0 / (len(r) - 1))
            need = math.log(max(r[-1] / self.tol, 1.0)) / -math.log(q)
            left = min(left, math.ceil(need))
        return left * per

    def update(self, iteration: int, residual: float, *, psnr: float | None = None,
               seconds: float = 0.0) -> None:
        self._res.append(float(residual))
        self._elapsed += float(seconds)
        text = f"{self.label} it {iteration}/{self.total}  residual {residual:.2e}"
        if psnr is not None and math.isfinite(psnr):
            text += f"  PSNR {psnr:.2f} dB"
        text += f"  ETA {_duration(self.eta(iteration))}"
        self.message(text)

    def message(self, text: str) -> None:
        """Show ``text`` as the current line."""
        pad = max(self._width - len(text), 0)
        self._width = len(text)
        out = self._out()
        out.write("\r" + text + " " * pad)
        out.flush()
        self._written = True

    def close(self) -> None:
        """End the line (a newline, if anything was written)."""
        if self._written:
            out = self._out()
            out.write("\n")
            out.flush()
            self._written = False
