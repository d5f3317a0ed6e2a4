"""Constrained layers and operator-norm bounds."""

from denoisers.layers.dense_gradient_step import DenseGradientStep, chain_certificate

from denoisers.layers.conv_bounds import (
    ConvNormBound,
    conv_opnorm_circular,
    conv_opnorm_upper_bound,
    conv_transfer_norms,
    hermitian_spectral_norms,
)

__all__ = [
    "DenseGradientStep",
    "chain_certificate","ConvNormBound", "conv_opnorm_circular", "conv_opnorm_upper_bound", "conv_transfer_norms", "hermitian_spectral_norms"]
