"""Constrained layers and operator-norm bounds."""

from denoisers.layers.conv_bounds import (
    ConvNormBound,
    conv_opnorm_circular,
    conv_opnorm_upper_bound,
    conv_transfer_norms,
    hermitian_spectral_norms,
)

__all__ = ["ConvNormBound", "conv_opnorm_circular", "conv_opnorm_upper_bound", "conv_transfer_norms", "hermitian_spectral_norms"]
