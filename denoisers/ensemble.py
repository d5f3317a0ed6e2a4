"""Geometric self-ensemble: the mean of a denoiser over the 8 symmetries of the square.

``E(x) = (1/|G|) sum_{g in G} T_g^{-1} D(T_g x)`` where ``G`` is the dihedral group of the
square (4 rotations by multiples of 90 degrees, each with or without a horizontal flip; only the
identity and the 180 degree rotation with their flips when the image is not square, so that
every ``T_g`` maps the image onto itself). Each ``T_g`` permutes the pixels, so it is orthogonal.

Certificate (exact, no new bound needed). If ``D = (1 - alpha) I + alpha R`` with ``R``
non-expansive, then ``T_g^{-1} D T_g = (1 - alpha) I + alpha T_g^{-1} R T_g`` and
``T_g^{-1} R T_g`` is non-expansive, so every term is ``alpha``-averaged; the mean of
``alpha``-averaged maps is ``(1 - alpha) I + alpha * mean_g(T_g^{-1} R T_g)``, and a mean of
non-expansive maps is non-expansive. Hence ``E`` is ``alpha``-averaged, and ``Lip(E) <= Lip(D)``
by the triangle inequality. The cost is ``|G|`` evaluations of ``D``.

>>> import torch
>>> from denoisers.classical import QuadraticProxDenoiser
>>> e = GeometricEnsemble(QuadraticProxDenoiser())
>>> e(torch.rand(1, 1, 8, 8), 0.1).shape
torch.Size([1, 1, 8, 8])
"""

from __future__ import annotations

from typing import Any

import torch
from deepinv.models import Denoiser
from torch import nn

from denoisers.certificate import Certificate

__all__ = ["GeometricEnsemble", "dihedral_transforms"]


def dihedral_transforms(height: int, width: int) -> list[tuple[int, bool]]:
    """``(quarter_turns, flip)`` pairs of the symmetries that map an ``height x width`` grid onto
    itself: all 8 for a square, the 4 with an even number of quarter turns otherwise."""
    turns = (0, 1, 2, 3) if height == width else (0, 2)
    return [(k, f) for k in turns for f in (False, True)]


def _forward(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def _inverse(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if k:
        x = torch.rot90(x, -k, dims=(-2, -1))
    return x.flip(-1) if flip else x


class GeometricEnsemble(Denoiser):
    """Mean of ``denoiser`` over the symmetries of the grid (see module docstring); keeps the
    wrapped denoiser's certificate (``alpha`` and Lipschitz bound) exactly."""

    def __init__(self, denoiser: nn.Module) -> None:
        super().__init__()
        if not callable(denoiser):
            raise TypeError(f"denoiser must be callable, got {type(denoiser).__name__}")
        self.denoiser = denoiser
        self.metadata = dict(getattr(denoiser, "metadata", {}))
        self.metadata["ensemble"] = "dihedral (8 symmetries; 4 on non-square images)"

    @property
    def certificate(self) -> Certificate:
        cert = getattr(self.denoiser, "certificate", None)
        if cert is None:
            raise AttributeError("the wrapped denoiser has no certificate")
        return Certificate(
            lipschitz_bound=cert.lipschitz_bound,
            alpha=cert.alpha,
            method=cert.method + "; mean over the pixel permutations of the dihedral group (keeps alpha)",
            layers=cert.layers,
            notes=cert.notes,
            exact=cert.exact,
        )

    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        from denoisers.contract import check_input

        check_input(x)
        group = dihedral_transforms(x.shape[-2], x.shape[-1])
        acc = None
        for k, flip in group:
            y = _inverse(self.denoiser(_forward(x, k, flip), sigma), k, flip)
            acc = y if acc is None else acc + y
        return acc / len(group)
