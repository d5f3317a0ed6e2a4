"""Warning classes of :mod:`denoisers.implicit` (always raised with ``stacklevel=2``).

``denoisers`` must not import ``pnp`` (dependency direction), so this package defines its own
:class:`ConvergenceWarning`; it has the same name and meaning as ``pnp.ConvergenceWarning`` but is
a different class (filter on both, or on ``UserWarning``, to silence every solver).
"""

from __future__ import annotations

__all__ = ["ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """A fixed-point solve stopped without converging (budget exhausted or non-finite residual)."""
