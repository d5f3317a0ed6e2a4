"""Denoiser models."""

from denoisers.models.averaged import AveragedConfig, AveragedResNet, ExportedAveragedResNet
from denoisers.models.gradient_step import GradientStepConv
from denoisers.models.lipschitz_ff import (
    ExportedLipschitzFFNet,
    LipschitzFFConfig,
    LipschitzFFNet,
    count_parameters,
)

__all__ = [
    "AveragedConfig",
    "AveragedResNet",
    "ExportedAveragedResNet",
    "ExportedLipschitzFFNet",
    "GradientStepConv",
    "LipschitzFFConfig",
    "LipschitzFFNet",
    "count_parameters",
]
