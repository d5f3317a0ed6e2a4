"""Certified denoisers: averaged networks, classical baselines, certificates, the weight zoo."""

from denoisers.certificate import Certificate, LayerBound, compose_alpha, compose_alpha_pair, relax_alpha
from denoisers.classical import QuadraticProxDenoiser, TVDenoiser
from denoisers.checkpoint import CheckpointError
from denoisers.ensemble import GeometricEnsemble
from denoisers.implicit import ConvLinfImplicitNetwork, ImplicitCertificate, LinfImplicitNetwork
from denoisers.estimate import (
    Estimate,
    adversarial_averagedness,
    adversarial_lipschitz,
    averagedness_ratio,
    jacobian_spectral_norm,
)
from denoisers.models import (
    AveragedConfig,
    AveragedResNet,
    ExportedAveragedResNet,
    ExportedLipschitzFFNet,
    GradientStepConv,
    LipschitzFFConfig,
    LipschitzFFNet,
    count_parameters,
)
from denoisers.serialize import load_denoiser, save_denoiser
from denoisers.zoo import PerChannel, ScaledDenoiser, ZooFamily, available, load

__all__ = [
    "AveragedConfig",
    "AveragedResNet",
    "Certificate",
    "CheckpointError",
    "ConvLinfImplicitNetwork",
    "Estimate",
    "GeometricEnsemble",
    "ExportedAveragedResNet",
    "ExportedLipschitzFFNet",
    "GradientStepConv",
    "ImplicitCertificate",
    "LayerBound",
    "LinfImplicitNetwork",
    "LipschitzFFConfig",
    "LipschitzFFNet",
    "PerChannel",
    "QuadraticProxDenoiser",
    "ScaledDenoiser",
    "TVDenoiser",
    "ZooFamily",
    "adversarial_averagedness",
    "adversarial_lipschitz",
    "available",
    "averagedness_ratio",
    "compose_alpha",
    "compose_alpha_pair",
    "count_parameters",
    "jacobian_spectral_norm",
    "load",
    "load_denoiser",
    "relax_alpha",
    "save_denoiser",
]
