"""PnP solvers: forward-backward (PGD), half-quadratic splitting, ADMM/Douglas-Rachford, the
safeguarded Anderson acceleration they share (:mod:`pnp.solvers.anderson`), and the variational
solver for explicit ridge priors (:mod:`pnp.solvers.variational`)."""

from pnp.solvers.admm import PnPADMM
from pnp.solvers.anderson import AccelerationStats, Anderson, AndersonConfig
from pnp.solvers.base import History, PnPSolver, SolverParams, SolverResult, operator_norm
from pnp.solvers.fbs import PnPFBS
from pnp.solvers.hqs import PnPHQS
from pnp.solvers.variational import VariationalResult, VariationalRidge

__all__ = [
    "AccelerationStats",
    "Anderson",
    "AndersonConfig",
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
