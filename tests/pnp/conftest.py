"""Shared fixtures for the pnp tests: a small circular-blur problem with a known answer."""

from __future__ import annotations

import pytest
import torch

from denoisers.classical import circular_laplacian_spectrum


def closed_form_minimiser(physics, y, *, gamma, sigma, weight, kind="fbs", data_weight=1.0):
    """Known fixed point of PnP with D = prox of sigma^2 (weight/2)||grad x||^2, by FFT.

    kind="fbs" (also ADMM/DRS): argmin w/2||Ax-y||^2 + sigma^2 weight/(2 gamma) ||grad x||^2.
    kind="hqs": argmin sigma^2 R + envelope of gamma f (see PnPHQS docstring).
    The spectrum of A^T A is read off A^T A applied to a delta at (0, 0): operator-agnostic.
    """
    b, c, h, w = y.shape
    dt = y.dtype
    delta = torch.zeros(1, c, h, w, dtype=dt)
    delta[..., 0, 0] = 1.0
    spec = torch.fft.rfft2(physics.A_adjoint(physics.A(delta))).real  # |K|^2
    lam = circular_laplacian_spectrum(h, w, dtype=dt)
    aty = torch.fft.rfft2(physics.A_adjoint(y))
    if kind == "fbs":
        xs = data_weight * aty / (data_weight * spec + sigma**2 * weight / gamma * lam)
    else:
        g = gamma * data_weight
        xs = g * aty / (g * spec + sigma**2 * weight * lam * (1 + g * spec))
    return torch.fft.irfft2(xs, s=(h, w))


@pytest.fixture
def problem():
    """float64 batch of 2 colour images, random 5x5 kernel, deepinv BlurFFT and our FFTBlur."""
    import deepinv as dinv

    from operators import FFTBlur

    g = torch.Generator().manual_seed(0)
    b, c, h, w = 2, 3, 20, 24
    k = torch.rand(5, 5, generator=g, dtype=torch.float64)
    k /= k.sum()
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    ours = FFTBlur(k)
    theirs = dinv.physics.BlurFFT(img_size=(c, h, w), filter=k[None, None].clone())
    y = ours.A(x) + 0.01 * torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    return {"x": x, "y": y, "kernel": k, "ours": ours, "theirs": theirs}
