"""Denoiser models."""

from denoisers.models.averaged import AveragedConfig, AveragedResNet, ExportedAveragedResNet
from denoisers.models.gradient_step import GradientStepConv

__all__ = ["AveragedConfig", "AveragedResNet", "ExportedAveragedResNet", "GradientStepConv"]
