"""PnP solvers: forward-backward (PGD), half-quadratic splitting, ADMM/Douglas-Rachford."""

from pnp.solvers.admm import PnPADMM
from pnp.solvers.base import History, PnPSolver, SolverParams, SolverResult, operator_norm
from pnp.solvers.fbs import PnPFBS
from pnp.solvers.hqs import PnPHQS

__all__ = [
    "History",
    "PnPADMM",
    "PnPFBS",
    "PnPHQS",
    "PnPSolver",
    "SolverParams",
    "SolverResult",
    "operator_norm",
]
