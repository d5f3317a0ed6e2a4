"""Learned scalar functions of the noise level: piecewise linear in ``log sigma``.

``f(sigma) = v_k + (z - z_k) (v_{k+1} - v_k) / dz`` with ``z = clamp(log sigma, z_0, z_{n-1})`` on
``n`` uniform knots ``z_k`` of ``[log sigma_min, log sigma_max]``: continuous, constant outside the
range (no extrapolation beyond the levels seen in training), exactly ``v_k`` at a knot, and its
supremum over every ``sigma > 0`` is ``max_k v_k`` (a piecewise-linear function attains its
extremes at the knots), which is what the certificates use.

``values`` of shape ``[n]`` give one function (``forward`` returns ``[B]``); ``[C, n]`` give ``C``
functions on the same knots (one per channel; ``forward`` returns ``[B, C]``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["LogSigmaSpline"]


class LogSigmaSpline(nn.Module):
    """A learned scalar function of ``sigma`` (see the module docstring); ``values`` at the knots."""

    def __init__(self, values: torch.Tensor, *, sigma_min: float, sigma_max: float) -> None:
        super().__init__()
        if not (0 < sigma_min < sigma_max and math.isfinite(sigma_max)):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min!r}, {sigma_max!r}")
        values = torch.as_tensor(values, dtype=torch.get_default_dtype())
        if values.ndim not in (1, 2):
            raise ValueError(f"values must be [n] or [C, n], got shape {tuple(values.shape)}")
        if values.shape[-1] < 2:
            raise ValueError(f"need at least 2 knots, got {values.shape[-1]}")
        self.values = nn.Parameter(values.clone())
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)

    @property
    def knots(self) -> torch.Tensor:
        """The knots ``sigma_k`` (not their logarithms), ``[n]``, float64."""
        n = self.values.shape[-1]
        return torch.exp(torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), n, dtype=torch.float64))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        n = self.values.shape[-1]
        z0, z1 = math.log(self.sigma_min), math.log(self.sigma_max)
        dz = (z1 - z0) / (n - 1)
        pos = ((sigma.log().clamp(z0, z1) - z0) / dz).to(self.values.dtype)
        k = pos.detach().floor().clamp(0, n - 2).long()
        frac = pos - k.to(pos.dtype)
        v = self.values
        if v.ndim == 2:  # [C, n] -> [B, C]
            a, b = v[:, k].transpose(0, 1), v[:, k + 1].transpose(0, 1)
            return a + frac.unsqueeze(-1) * (b - a)
        return v[k] + frac * (v[k + 1] - v[k])

    def sup(self) -> float:
        """``sup_sigma f(sigma) = max_k v_k`` (exact)."""
        return float(self.values.detach().max())

    def extra_repr(self) -> str:
        c = f"channels={self.values.shape[0]}, " if self.values.ndim == 2 else ""
        return f"{c}knots={self.values.shape[-1]}, sigma in [{self.sigma_min:.5g}, {self.sigma_max:.5g}] (log-uniform)"
