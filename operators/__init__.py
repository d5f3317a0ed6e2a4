"""Forward models: FFT blur (circular, valid, reflect, replicate boundaries), blur kernels, Gaussian noise, adjoint checks and norms.

The operators are :class:`deepinv.physics.LinearPhysics` objects with an exact ``opnorm()``
(spectral norm, not squared). This package imports neither ``denoisers``, ``pnp`` nor
``benchmarks``.
"""

from operators.adjoint import AdjointCheck, check_adjoint, estimate_opnorm
from operators.blur import BOUNDARIES, FFTBlur, InexactProxWarning, NonFiniteInputError
from operators.kernels import (
    KernelWarning,
    available_kernels,
    find_shared_data,
    gaussian_kernel,
    load_kernel,
    motion_kernel,
    uniform_kernel,
    validate_kernel,
)
from operators.noise import add_gaussian_noise, numpy_gaussian_noise

__all__ = [
    "AdjointCheck",
    "BOUNDARIES",
    "FFTBlur",
    "InexactProxWarning",
    "KernelWarning",
    "NonFiniteInputError",
    "add_gaussian_noise",
    "available_kernels",
    "check_adjoint",
    "estimate_opnorm",
    "find_shared_data",
    "gaussian_kernel",
    "load_kernel",
    "motion_kernel",
    "numpy_gaussian_noise",
    "uniform_kernel",
    "validate_kernel",
]
