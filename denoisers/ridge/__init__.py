"""Learned convex (CRR) and weakly convex (WCRR) ridge regularisers and their prox denoisers.

``R(x, sigma) = sum psi_c((W x)_c)``: a zero-mean multi-convolution ``W`` (``||W|| <= 1`` certified),
learned spline profiles ``psi_c`` (convex, or 1-weakly convex as a difference of convex parts) and
learned functions of the noise level. ``RidgeDenoiser`` is ``prox_{lambda(sigma) R}``; the
variational solver in ``pnp.solvers`` minimises ``1/2 ||A x - y||^2 + lambda R(x)`` directly.
"""

from denoisers.ridge.model import RIDGE_BOUNDARIES, RIDGE_KINDS, RidgeCertificate, RidgeConfig, RidgeRegularizer
from denoisers.ridge.multiconv import MultiConv, compose_kernels
from denoisers.ridge.noise import LogSigmaSpline
from denoisers.ridge.prox import ProxConvergenceWarning, ProxInfo, ProxSearchSurrogate, RidgeDenoiser, ridge_prox

__all__ = [
    "RIDGE_BOUNDARIES",
    "RIDGE_KINDS",
    "LogSigmaSpline",
    "MultiConv",
    "ProxConvergenceWarning",
    "ProxInfo",
    "ProxSearchSurrogate",
    "RidgeCertificate",
    "RidgeConfig",
    "RidgeDenoiser",
    "RidgeRegularizer",
    "compose_kernels",
    "ridge_prox",
]
