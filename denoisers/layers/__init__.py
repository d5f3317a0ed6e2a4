"""Constrained layers and operator-norm bounds."""

from denoisers.layers.dense_gradient_step import DenseGradientStep, chain_certificate

from denoisers.layers.conv_bounds import (
    ConvNormBound,
    conv_opnorm_circular,
    conv_opnorm_upper_bound,
    conv_transfer_norms,
    hermitian_spectral_norms,
    sampling_factor,
)
from denoisers.layers.normalized_conv import NormalizedConv2d
from denoisers.layers.power_iteration import circular_conv2d, conv_norm_sq, conv_power_iteration
from denoisers.layers.spline import (
    LinearSpline,
    plot_activations,
    project_splines_,
    spline_report,
    tv2_penalty,
)

__all__ = [
    "DenseGradientStep",
    "chain_certificate","ConvNormBound", "conv_opnorm_circular", "conv_opnorm_upper_bound", "conv_transfer_norms", "hermitian_spectral_norms",
    "NormalizedConv2d", "circular_conv2d", "conv_norm_sq", "conv_power_iteration", "sampling_factor",
    "LinearSpline", "plot_activations", "project_splines_", "spline_report", "tv2_penalty"]
