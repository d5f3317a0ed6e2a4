"""l-inf contractive implicit (equilibrium) networks with certified Lipschitz bounds."""

from denoisers.implicit.certificate import ImplicitCertificate
from denoisers.implicit.exceptions import ConvergenceWarning
from denoisers.implicit.fixed_point import FixedPointConfig, FixedPointInfo, average_iteration, implicit_fixed_point
from denoisers.implicit.measures import (
    average_step,
    conv_kernel_measure_1,
    conv_kernel_measure_inf,
    conv_kernel_norm_1,
    conv_kernel_norm_inf,
    conv_linf_contractive_kernel,
    conv_matrix_measure_inf,
    linf_contractive_matrix,
    materialize_conv,
    matrix_measure_1,
    matrix_measure_inf,
    norm_1,
    norm_2_to_inf,
    norm_inf,
)
from denoisers.implicit.networks import IMPLICIT_ACTIVATIONS, ConvLinfImplicitNetwork, LinfImplicitNetwork

__all__ = [
    "ImplicitCertificate",
    "ConvergenceWarning",
    "FixedPointConfig",
    "FixedPointInfo",
    "average_iteration",
    "implicit_fixed_point",
    "average_step",
    "conv_kernel_measure_1",
    "conv_kernel_measure_inf",
    "conv_kernel_norm_1",
    "conv_kernel_norm_inf",
    "conv_linf_contractive_kernel",
    "conv_matrix_measure_inf",
    "linf_contractive_matrix",
    "materialize_conv",
    "matrix_measure_1",
    "matrix_measure_inf",
    "norm_1",
    "norm_2_to_inf",
    "norm_inf",
    "IMPLICIT_ACTIVATIONS",
    "ConvLinfImplicitNetwork",
    "LinfImplicitNetwork",
]
