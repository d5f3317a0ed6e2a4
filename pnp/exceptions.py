"""Warning classes of the pnp package (always raised with ``stacklevel=2``)."""

from __future__ import annotations

__all__ = ["PnPWarning", "ConvergenceWarning", "GuaranteeWarning"]


class PnPWarning(UserWarning):
    """Base class of the warnings raised by :mod:`pnp`."""


class ConvergenceWarning(PnPWarning):
    """A solver stopped without converging (non-finite values, budget exhausted)."""


class GuaranteeWarning(PnPWarning):
    """A convergence guarantee could not be established or was only estimated."""
