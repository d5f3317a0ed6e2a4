"""pnp: Plug-and-Play solvers with convergence guarantees read from denoiser certificates.

Quick use::

    import pnp
    result = pnp.deblur(y, "gaussian:25:1.6", noise_level=0.01, denoiser="tv", solver="fbs")
    result.x, result.converged, result.guarantee.summary()

Full control: :class:`PnPFBS`, :class:`PnPHQS`, :class:`PnPADMM` in :mod:`pnp.solvers`.
"""

from pnp.api import available_denoisers, deblur, default_parameters, get_denoiser, make_blur
from pnp.exceptions import ConvergenceWarning, GuaranteeWarning, PnPWarning
from pnp.guarantees import Guarantee, admm_guarantee, fbs_guarantee, hqs_guarantee
from pnp.io import read_image, write_image
from pnp.metrics import psnr
from pnp.solvers import (
    History,
    PnPADMM,
    PnPFBS,
    PnPHQS,
    PnPSolver,
    SolverParams,
    SolverResult,
    operator_norm,
)

__all__ = [
    "ConvergenceWarning",
    "Guarantee",
    "GuaranteeWarning",
    "History",
    "PnPADMM",
    "PnPFBS",
    "PnPHQS",
    "PnPSolver",
    "PnPWarning",
    "SolverParams",
    "SolverResult",
    "admm_guarantee",
    "available_denoisers",
    "deblur",
    "default_parameters",
    "fbs_guarantee",
    "get_denoiser",
    "hqs_guarantee",
    "make_blur",
    "operator_norm",
    "psnr",
    "read_image",
    "write_image",
]
