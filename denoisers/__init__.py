"""Certified denoisers: averaged networks, classical baselines, certificates, the weight zoo."""

from denoisers.certificate import Certificate, LayerBound, compose_alpha, compose_alpha_pair, relax_alpha
from denoisers.classical import QuadraticProxDenoiser, TVDenoiser

__all__ = ["Certificate", "LayerBound", "compose_alpha", "compose_alpha_pair", "relax_alpha",
           "QuadraticProxDenoiser", "TVDenoiser"]
