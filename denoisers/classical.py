"""Training-free denoisers with a certificate: a closed-form quadratic prox and TV.

Both follow one convention, the MAP denoiser of a Gaussian noise of standard deviation
``sigma`` under the prior ``exp(-R)``::

    D(x, sigma) = prox_{sigma^2 R}(x) = argmin_u  1/2 ||u - x||^2 + sigma^2 R(u)

so that inside a PnP loop with step ``gamma`` the effective regularisation weight is
``sigma^2 / gamma`` (see the solvers' docstrings for the exact fixed point of each solver).

Both are proximal operators of convex functions, hence firmly non-expansive
(``alpha = 1/2``, Lipschitz 1). The quadratic one is exact (one FFT division); the TV one uses an
inner iterative solver stopped at a tolerance, so its certificate is marked ``exact=False``.

Both follow the ``deepinv.models.Denoiser`` contract: ``denoiser(x, sigma)`` with ``x`` of
shape ``[B, C, H, W]`` (any ``C``, ``B``, float32/float64, any device), ``sigma`` a float or a
``[B]`` tensor; the input is never modified.
"""

from __future__ import annotations

import math

import torch
from deepinv.models import Denoiser
from deepinv.models import TVDenoiser as _DeepinvTV
from torch import Tensor

from denoisers.certificate import Certificate

__all__ = ["QuadraticProxDenoiser", "TVDenoiser", "circular_laplacian_spectrum"]


def _check_input(x: Tensor) -> None:
    from denoisers.contract import check_input

    check_input(x)


def _sigma_per_image(sigma: float | Tensor, x: Tensor) -> Tensor:
    """``sigma`` as a ``[B, 1, 1, 1]`` tensor in ``x``'s dtype and device (values >= 0)."""
    batch = x.shape[0]
    if isinstance(sigma, Tensor):
        s = sigma.detach().to(device=x.device, dtype=x.dtype).reshape(-1)
        if s.numel() == 1:
            s = s.expand(batch)
        elif s.numel() != batch:
            raise ValueError(
                f"sigma must be a float or a tensor of shape [B]={batch}, got shape "
                f"{tuple(sigma.shape)}"
            )
    elif isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
        s = torch.full((batch,), float(sigma), device=x.device, dtype=x.dtype)
    else:
        raise TypeError(f"sigma must be a float or a [B] tensor, got {type(sigma).__name__}")
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    return s.reshape(batch, 1, 1, 1)


def circular_laplacian_spectrum(
    height: int, width: int, *, dtype: torch.dtype = torch.float64, device=None
) -> Tensor:
    """Eigenvalues of ``L = grad^T grad`` (circular forward differences) on the rfft2 grid.

    ``Lambda[k, l] = 4 sin^2(pi k / H) + 4 sin^2(pi l / W)`` for ``k < H``, ``l <= W // 2``;
    shape ``[H, W // 2 + 1]``. ``Lambda[0, 0] = 0`` (constants are in the kernel of ``grad``).
    """
    k = torch.arange(height, dtype=dtype, device=device)
    l = torch.arange(width // 2 + 1, dtype=dtype, device=device)
    lk = 4.0 * torch.sin(math.pi * k / height) ** 2
    ll = 4.0 * torch.sin(math.pi * l / width) ** 2
    return lk[:, None] + ll[None, :]


class QuadraticProxDenoiser(Denoiser):
    r"""The exact proximal operator of a quadratic gradient penalty, by one FFT division.

    With ``R(u) = (weight / 2) ||grad u||^2`` (circular forward differences,
    ``grad u = (u[i+1, j] - u[i, j], u[i, j+1] - u[i, j])`` with wrap-around), per channel::

        D(x, sigma) = argmin_u 1/2 ||u - x||^2 + sigma^2 R(u)
                    = (I + sigma^2 * weight * L)^{-1} x,     L = grad^T grad,

    computed as ``irfft2(rfft2(x) / (1 + sigma^2 * weight * Lambda))`` with ``Lambda`` from
    :func:`circular_laplacian_spectrum`.

    Certificate: the prox of a convex function is firmly non-expansive: ``alpha = 1/2``,
    Lipschitz 1, exact. Because it is a true prox, PnP with this denoiser has a known fixed
    point (the minimiser of a convex quadratic, closed form for circular blur); the tests use it.

    Example::

        >>> d = QuadraticProxDenoiser(weight=1.0)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> d(x, 0.1).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        weight = float(weight)
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(f"weight must be finite and > 0, got {weight!r}")
        self.weight = weight
        self._cache: dict[tuple, Tensor] = {}

    @property
    def certificate(self) -> Certificate:
        return Certificate(
            lipschitz_bound=1.0,
            alpha=0.5,
            method="proximal operator of a convex quadratic (firmly non-expansive), closed form",
            notes="(I + sigma^2 w L)^{-1} has eigenvalues in (0, 1]; exact FFT solve",
            exact=True,
        )

    def _spectrum(self, h: int, w: int, x: Tensor) -> Tensor:
        key = (h, w, x.device, x.dtype)
        spec = self._cache.get(key)
        if spec is None:
            spec = circular_laplacian_spectrum(h, w, dtype=x.dtype, device=x.device)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = spec
        return spec

    def regularizer(self, u: Tensor) -> Tensor:
        """``R(u) = (weight / 2) ||grad u||^2`` per image, shape ``[B]``."""
        _check_input(u)
        dh = torch.roll(u, shifts=-1, dims=-2) - u
        dw = torch.roll(u, shifts=-1, dims=-1) - u
        return 0.5 * self.weight * (dh.pow(2) + dw.pow(2)).flatten(1).sum(1)

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        _check_input(x)
        s = _sigma_per_image(sigma, x)
        h, w = x.shape[-2:]
        spec = self._spectrum(h, w, x)
        denom = 1.0 + (s * s * self.weight) * spec  # [B, 1, H, W//2+1]
        return torch.fft.irfft2(torch.fft.rfft2(x) / denom, s=(h, w))


class TVDenoiser(Denoiser):
    r"""Isotropic total-variation prox (deepinv's Chambolle-Pock solver), MAP-scaled.

    ``D(x, sigma) = argmin_u 1/2 ||u - x||^2 + sigma^2 * weight * TV(u)``, with
    ``TV(u) = ||grad u||_{1,2}`` as in :class:`deepinv.models.TVDenoiser`; that is, deepinv's
    threshold is ``ths = weight * sigma^2`` (per image when ``sigma`` is a ``[B]`` tensor).
    ``weight`` is the TV prior weight (``p(u) ~ exp(-weight TV(u))``), so ``sigma`` keeps its
    meaning of a noise standard deviation, as for :class:`QuadraticProxDenoiser`.

    Certificate: the prox of a convex function is firmly non-expansive (``alpha = 1/2``,
    Lipschitz 1), but it is computed by an inner iterative solver stopped at relative tolerance
    ``crit`` after at most ``n_it_max`` iterations, with deepinv's warm restart between calls,
    so the certificate holds for the exact prox only: ``exact=False``.

    Parameters
    ----------
    weight:
        TV prior weight ``w > 0``.
    n_it_max, crit:
        Inner solver budget and relative tolerance.
    """

    def __init__(self, weight: float = 10.0, *, n_it_max: int = 200, crit: float = 1e-5) -> None:
        super().__init__()
        weight = float(weight)
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(f"weight must be finite and > 0, got {weight!r}")
        if int(n_it_max) < 1:
            raise ValueError(f"n_it_max must be >= 1, got {n_it_max!r}")
        if not (float(crit) > 0.0):
            raise ValueError(f"crit must be > 0, got {crit!r}")
        self.weight = weight
        self.n_it_max = int(n_it_max)
        self.crit = float(crit)
        self._tv = _DeepinvTV(n_it_max=self.n_it_max, crit=self.crit)
        self._last_key: tuple | None = None

    @property
    def certificate(self) -> Certificate:
        return Certificate(
            lipschitz_bound=1.0,
            alpha=0.5,
            method="proximal operator of a convex function (TV), firmly non-expansive",
            notes=(
                f"computed by deepinv's Chambolle-Pock inner solver (at most {self.n_it_max} "
                f"iterations, relative tolerance {self.crit:g}, warm restart); the certificate "
                "is that of the exact prox"
            ),
            exact=False,
        )

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        _check_input(x)
        s = _sigma_per_image(sigma, x)
        key = (tuple(x.shape), x.dtype, x.device)
        if key != self._last_key:  # warm restart only with matching shape, dtype and device
            self._tv.restart = True
            self._last_key = key
        ths = (self.weight * s * s).reshape(-1)
        with torch.no_grad():
            return self._tv(x, ths=ths)
