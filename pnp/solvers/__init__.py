"""PnP solvers: forward-backward (PGD), half-quadratic splitting, ADMM/Douglas-Rachford; and the
variational solver for explicit ridge priors."""

from pnp.solvers.admm import PnPADMM
from pnp.solvers.base import History, PnPSolver, SolverParams, SolverResult, operator_norm
from pnp.solvers.fbs import PnPFBS
from pnp.solvers.hqs import PnPHQS
from pnp.solvers.variational import VariationalResult, VariationalRidge

__all__ = [
    "History",
    "PnPADMM",
    "PnPFBS",
    "PnPHQS",
    "PnPSolver",
    "SolverParams",
    "SolverResult",
    "VariationalResult",
    "VariationalRidge",
    "operator_norm",
]
