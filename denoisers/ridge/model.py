"""Learned convex (CRR) and weakly convex (WCRR) ridge regularisers with certified constants.

The regulariser of an image ``x`` (each colour channel filtered alike) at noise level ``sigma``::

    R(x, sigma) = sum_c sum_pixels psi_c((W x)_c),      lambda(sigma) R(x, sigma)  is the prior term,

with ``W`` the zero-mean multi-convolution of :mod:`denoisers.ridge.multiconv` (``||W|| <= 1``,
valid windows only) and one profile ``psi_c`` per filter, built from learned monotone linear splines
``f+_c, f-_c`` (:class:`denoisers.layers.LinearSpline`, slopes in ``[0, 1]``, ``F+-`` their
antiderivatives)::

    psi_c(t) = F+_c(kappa mu t) / (kappa mu^2)  -  F-_c(mu t) / mu^2
    psi_c'(t) = (f+_c(kappa mu t) - f-_c(mu t)) / mu
    psi_c''(t) = kappa f+_c'(kappa mu t) - f-_c'(mu t)   in  [-s-, kappa s+],

``s+-`` the largest slopes of the splines (``<= 1``) and ``mu = mu(sigma) > 0`` a learned spline
scaling that only changes the profiles' *width*, never their curvature. The splines enter through
their odd parts ``f_odd(a) = (f(a) - f(-a)) / 2`` (monotone, slopes in ``[0, 1]``), so every profile is
even with ``psi(0) = 0``. For WCRR the derivative is taken through its positive part on ``t > 0``,
``psi'(t) = sign(t) max(0, f+(kappa mu |t|) - f-(mu |t|)) / mu``, which keeps ``psi''`` in the same
interval and makes ``psi`` non-decreasing in ``|t|``: ``psi >= 0``, so ``R >= 0`` and every objective
``1/2 ||A x - y||^2 + lambda R`` is bounded below (soft-threshold-like profiles for CRR, bounded,
truncated-penalty-like profiles for WCRR).

* **CRR** (``kind="crr"``): no ``f-`` part and ``kappa = 1``: every ``psi_c`` is convex, so ``R``
  is convex, with ``Lip(grad R) <= s+ ||W||^2``.
* **WCRR** (``kind="wcrr"``): ``psi_c`` is ``s-``-weakly convex (``psi'' >= -s- >= -1``), so ``R``
  is ``rho``-weakly convex with ``rho = s- ||W||^2 <= 1``, the difference of two convex parts, and
  ``Lip(grad R) <= max(kappa s+, s-) ||W||^2``; ``kappa = exp(log_kappa)`` is learned.
  With ``minus_scale=True`` the weakly convex part has its own learned width ``nu = exp(log_nu)``:
  ``F-(nu mu t) / (nu mu)^2`` in ``psi`` (``f-(nu mu t) / (nu mu)`` in ``psi'``), whose curvature is
  ``-f-'(nu mu t)`` as before, so every constant is unchanged (``nu = 1`` is the model without it).
  It decouples where ``f-`` acts (the responses ``t`` with ``nu mu t`` on its knots) from where
  ``f+`` acts (``kappa mu t``); ``as_wcrr`` starts it at ``nu = 1``.
* **Noise conditioning**: ``lambda(sigma)`` and ``mu(sigma)`` are learned functions of
  ``log sigma`` (:class:`denoisers.ridge.noise.LogSigmaSpline`): CRR ``lambda = exp(a(sigma))``;
  WCRR ``lambda = lambda_cap * sigmoid(a(sigma))`` with ``lambda_cap < 1``, so that
  ``lambda rho <= lambda_cap < 1`` for every ``sigma`` and the denoising objective
  ``1/2 ||x - y||^2 + lambda R(x)`` is ``(1 - lambda rho)``-strongly convex.
* **Per-filter conditioning** (``channel_conditioning=True``): each filter's term is weighted and
  widened by its own functions of ``sigma``,
  ``R(x, sigma) = sum_c w_c(sigma) psi_c((W x)_c; mu(sigma) m_c(sigma))`` with
  ``w_c = exp(a_c(sigma) - max_c' a_c'(sigma))`` in ``(0, 1]`` (the overall strength stays in
  ``lambda``) and ``m_c = exp(b_c(sigma))``, ``a_c, b_c`` piecewise linear in ``log sigma``. A
  weight ``w_c <= 1`` scales ``psi_c''`` into ``[-w_c s-, w_c kappa s+]``, so every constant below
  holds unchanged; ``a = b = 0`` is the model without it (``with_channel_conditioning``).

The certified constants (``certificate``) come from upper bounds only: the certified norm bound of
the normalised kernel (float64, DFT grid plus Bernstein factor) and the largest slope of each spline
(exact: the slopes of a linear spline are finitely many numbers). ``denoisers.estimate`` has the
independent lower bounds (Hessian-vector power iteration, the convexity inequality on pairs).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from denoisers.layers.conv_bounds import conv_opnorm_upper_bound
from denoisers.layers.spline import LinearSpline
from denoisers.ridge.multiconv import MultiConv
from denoisers.contract import check_input, sigma_vector
from denoisers.ridge.noise import LogSigmaSpline

__all__ = ["RIDGE_BOUNDARIES", "RIDGE_KINDS", "RidgeCertificate", "RidgeConfig", "RidgeRegularizer"]

RIDGE_KINDS = ("crr", "wcrr")
#: how ``W`` meets the image border: ``"valid"`` (windows inside the image only), ``"reflect"``
#: (``R(P x)``, ``P`` the reflection of the image by half the composed filter size) or
#: ``"circular"`` (``W`` a circular convolution on the image's torus: ``R(P x)`` with ``P`` the
#: periodic extension, and ``||W P|| = ||W_circ|| <= sup |W_hat|``, the same certified bound as valid
#: windows: no factor in ``Lip(grad R)`` or ``rho``, so it serves wcrr too)
RIDGE_BOUNDARIES = ("valid", "reflect", "circular")
#: ``||P||^2`` of the reflection extension (each pixel appears at most twice along each axis)
REFLECT_NORM_SQ = 4.0


@dataclass(frozen=True)
class RidgeConfig:
    """Architecture of a ridge regulariser (JSON-serialisable)."""

    kind: str = "crr"
    channels: tuple[int, ...] = (1, 4, 8, 60)
    kernel_size: int = 5
    spline_knots: int = 65
    spline_range: float = 4.0
    sigma_min: float = 1.0 / 255
    sigma_max: float = 60.0 / 255
    sigma_knots: int = 8
    lambda_cap: float = 0.95
    grid: int = 256
    boundary: str = "valid"
    channel_conditioning: bool = False
    minus_scale: bool = False

    def __post_init__(self) -> None:
        if self.kind not in RIDGE_KINDS:
            raise ValueError(f"kind must be one of {RIDGE_KINDS}, got {self.kind!r}")
        if self.boundary not in RIDGE_BOUNDARIES:
            raise ValueError(f"boundary must be one of {RIDGE_BOUNDARIES}, got {self.boundary!r}")
        if self.boundary == "reflect" and self.kind != "crr":
            raise ValueError(
                "boundary='reflect' is for crr only: R(P x) is (||P||^2 rho = 4 rho)-weakly convex, "
                "which would break lambda rho < 1 for wcrr"
            )
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not (0.0 < self.lambda_cap < 1.0):
            raise ValueError(f"lambda_cap must be in (0, 1), got {self.lambda_cap!r}")
        if not (0.0 < self.sigma_min < self.sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min!r}, {self.sigma_max!r}")
        if isinstance(self.sigma_knots, bool) or not isinstance(self.sigma_knots, int) or self.sigma_knots < 2:
            raise ValueError(f"sigma_knots must be an integer >= 2, got {self.sigma_knots!r}")
        if not isinstance(self.channel_conditioning, bool):
            raise ValueError(f"channel_conditioning must be true or false, got {self.channel_conditioning!r}")
        if not isinstance(self.minus_scale, bool):
            raise ValueError(f"minus_scale must be true or false, got {self.minus_scale!r}")
        if self.minus_scale and self.kind != "wcrr":
            raise ValueError("minus_scale is the width of the weakly convex part f-: wcrr only")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RidgeConfig":
        if not isinstance(d, dict):
            raise ValueError(f"ridge config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ridge config fields {unknown}")
        return cls(**d)


@dataclass(frozen=True)
class RidgeCertificate:
    """Certified constants of a ridge regulariser ``R`` and of the prox of ``lambda(sigma) R``.

    Attributes
    ----------
    kind: ``"crr"`` or ``"wcrr"``.
    w_norm_bound: certified upper bound of ``||W||`` (every image size), and ``w_norm_method``.
    slope_plus, slope_minus: largest slopes of ``f+`` and ``f-`` (``slope_minus = 0`` for CRR).
    kappa: the curvature factor of the convex part (1 for CRR).
    lip_grad: ``Lip(grad R) <= max(kappa s+, s-) ||W||^2``.
    weak_convexity: ``rho = s- ||W||^2`` (``R + rho/2 ||.||^2`` is convex); 0 means convex.
    lambda_max: ``sup_sigma lambda(sigma)`` (exact: the maximum over the knots).
    prox_lipschitz: Lipschitz bound of ``prox_{lambda R}`` over every ``sigma``:
        ``1 / (1 - lambda_max rho)`` (1 for CRR), ``inf`` if ``lambda_max rho >= 1``.
    prox_alpha: ``1/2`` (firmly non-expansive) for CRR, ``None`` otherwise.
    """

    kind: str
    w_norm_bound: float
    w_norm_method: str
    slope_plus: float
    slope_minus: float
    kappa: float
    lip_grad: float
    weak_convexity: float
    lambda_max: float
    prox_lipschitz: float
    prox_alpha: float | None
    notes: str = ""
    boundary: str = "valid"

    @property
    def convex(self) -> bool:
        return self.weak_convexity == 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RidgeCertificate":
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict) or set(d) - names or not {"kind", "lip_grad"} <= set(d):
            raise ValueError(f"not a ridge certificate: {d!r}")
        return cls(**d)

    def summary(self) -> str:
        lines = [
            f"ridge regulariser ({self.kind.upper()}): {'convex' if self.convex else f'{self.weak_convexity:.6g}-weakly convex'}",
            f"  ||W|| <= {self.w_norm_bound:.6f} ({self.w_norm_method})",
            *([f"  boundary: R(P x), P the reflection extension, ||P||^2 = {REFLECT_NORM_SQ:g} (in Lip(grad R))"]
              if self.boundary == "reflect" else []),
            *(["  boundary: circular convolutions on the image's torus (||W_circ|| <= the same bound)"]
              if self.boundary == "circular" else []),
            f"  spline slopes: f+ <= {self.slope_plus:.6f}, f- <= {self.slope_minus:.6f}; kappa = {self.kappa:.6g}",
            f"  Lip(grad R) <= {self.lip_grad:.6g};  weak convexity rho = {self.weak_convexity:.6g}",
            f"  sup lambda(sigma) = {self.lambda_max:.6g};  lambda rho <= {self.lambda_max * self.weak_convexity:.6g}",
            f"  prox_(lambda R): Lipschitz <= {self.prox_lipschitz:.6g}"
            + (", firmly non-expansive (alpha = 1/2)" if self.prox_alpha == 0.5 else ", not averaged"),
        ]
        return "\n".join(lines)


class RidgeRegularizer(nn.Module):
    """``R(x, sigma)``, its gradient, and ``lambda(sigma)`` (see the module docstring).

    ``x`` is ``[B, C, H, W]`` with ``H, W >= `` the composed kernel size; ``sigma`` a number or a
    ``[B]`` tensor. ``energy`` returns ``[B]``, ``grad`` the shape of ``x``. Precompute the kernel
    once (``kernel = reg.kernel()``) and pass it in loops.
    """

    def __init__(self, config: RidgeConfig | None = None) -> None:
        super().__init__()
        cfg = config or RidgeConfig()
        self.config = cfg
        self.conv = MultiConv(cfg.channels, cfg.kernel_size, grid=cfg.grid)
        c = self.conv.out_channels
        self.f_plus = LinearSpline(c, knots=cfg.spline_knots, range_=cfg.spline_range, init="clip")
        self.f_minus = (
            LinearSpline(c, knots=cfg.spline_knots, range_=cfg.spline_range, init="clip") if cfg.kind == "wcrr" else None
        )
        n = cfg.sigma_knots
        z = torch.linspace(math.log(cfg.sigma_min), math.log(cfg.sigma_max), n)
        if cfg.kind == "crr":
            lam0 = torch.full((n,), math.log(5.0))
            self.log_kappa = None
        else:
            lam0 = torch.full((n,), math.log(0.9 / (cfg.lambda_cap - 0.9)) if cfg.lambda_cap > 0.9 else 0.0)
            self.log_kappa = nn.Parameter(torch.tensor(3.0))
        self.log_nu = nn.Parameter(torch.tensor(0.0)) if cfg.minus_scale else None
        self.lam = LogSigmaSpline(lam0, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
        self.mu = LogSigmaSpline(math.log(4.0) - z, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
        if cfg.channel_conditioning:
            # per-filter log-weights a_c and log-widths b_c; zero = the model without them
            self.chan_w = LogSigmaSpline(torch.zeros(c, n), sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
            self.chan_mu = LogSigmaSpline(torch.zeros(c, n), sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
        else:
            self.chan_w = self.chan_mu = None
        self._spec_cache: tuple[Any, ...] | None = None

    # ---------------------------------------------------------------- scalar functions of sigma
    @property
    def kind(self) -> str:
        return self.config.kind

    def kappa(self) -> torch.Tensor:
        if self.log_kappa is None:
            return torch.ones((), dtype=self.lam.values.dtype, device=self.lam.values.device)
        return self.log_kappa.exp()

    def nu(self) -> torch.Tensor:
        """The width factor ``nu`` of the weakly convex part (1 without ``minus_scale``)."""
        if self.log_nu is None:
            return torch.ones((), dtype=self.lam.values.dtype, device=self.lam.values.device)
        return self.log_nu.exp()

    def lambda_of(self, sigma: torch.Tensor) -> torch.Tensor:
        """``lambda(sigma)``, ``[B]`` for a ``[B]`` tensor of levels."""
        a = self.lam(sigma)
        if self.kind == "crr":
            return a.exp()
        return self.config.lambda_cap * torch.sigmoid(a)

    def mu_of(self, sigma: torch.Tensor) -> torch.Tensor:
        """``mu(sigma)``, ``[B]`` (the width shared by every filter)."""
        return self.mu(sigma).exp()

    def channel_weights(self, sigma: torch.Tensor) -> torch.Tensor | None:
        """``w_c(sigma)`` in ``(0, 1]``, ``[B, C]`` (``None`` without per-filter conditioning)."""
        if self.chan_w is None:
            return None
        a = self.chan_w(sigma)
        return torch.exp(a - a.max(dim=1, keepdim=True).values)

    def channel_mu(self, sigma: torch.Tensor) -> torch.Tensor:
        """``mu(sigma) m_c(sigma)``: ``[B, 1]`` without per-filter conditioning, else ``[B, C]``."""
        mu = self.mu_of(sigma).unsqueeze(1)
        return mu if self.chan_mu is None else mu * self.chan_mu(sigma).exp()

    def scalar_parameters(self) -> list[nn.Parameter]:
        """The parameters of the functions of ``sigma`` (and ``log_kappa``, ``log_nu``)."""
        mods = [m for m in (self.lam, self.mu, self.chan_w, self.chan_mu) if m is not None]
        return [p for m in mods for p in m.parameters()] + [p for p in (self.log_kappa, self.log_nu) if p is not None]

    def lambda_max(self) -> float:
        a = self.lam.sup()
        return math.exp(a) if self.kind == "crr" else self.config.lambda_cap / (1.0 + math.exp(-a))

    def kernel(self) -> torch.Tensor:
        return self.conv.kernel()

    # ---------------------------------------------------------------- R and grad R
    def _prepare(self, x: torch.Tensor, sigma: Any, kernel: torch.Tensor | None):
        check_input(x)
        k = self.conv.size
        # reflect: at least 2p + 2 = k + 1 pixels, so that no pixel is copied into both opposite bands
        # (each pixel then appears at most twice along an axis: ||P||^2 = 4)
        # circular: at least k pixels, so that the kernel fits on the torus (FFT path)
        kmin = k + 1 if self.config.boundary == "reflect" else k
        if x.shape[-1] < kmin or x.shape[-2] < kmin:
            raise ValueError(f"x must be at least {kmin}x{kmin} (the filter size{' + 1, reflect boundary' if kmin > k else ''}), "
                             f"got {tuple(x.shape[-2:])}")
        b, c = x.shape[:2]
        s = sigma_vector(sigma, b, x)
        kern = (kernel if kernel is not None else self.kernel()).to(x.dtype)
        cm = self.channel_mu(s).to(x.dtype)
        mu = cm.repeat_interleave(c, dim=0).view(b * c, cm.shape[1], 1, 1)
        w = self.channel_weights(s)
        if w is not None:
            w = w.to(x.dtype).repeat_interleave(c, dim=0).view(b * c, w.shape[1], 1, 1)
        xs = x.reshape(b * c, 1, *x.shape[-2:])
        if self.config.boundary == "reflect":
            p = k // 2
            xs = F.pad(xs, (p, p, p, p), mode=self.config.boundary)
        return xs, kern, mu, w

    def _spectrum(self, kern: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The torus transfer function of ``kern`` (circular boundary), cached for the last kernel
        tensor seen (by identity and version, so a changed or new kernel is recomputed) when no
        gradient flows to it."""
        if torch.is_grad_enabled() and kern.requires_grad:
            return MultiConv.torus_spectrum(kern, size)
        c = self._spec_cache
        if c is not None and c[0] is kern and c[1] == kern._version and c[2] == size:
            return c[3]
        spec = MultiConv.torus_spectrum(kern, size)
        self._spec_cache = (kern, kern._version, size, spec)
        return spec

    def _responses(self, x: torch.Tensor, sigma: Any, kernel: torch.Tensor | None):
        """``(u = W P x [N, C, h, w], mu, w, adjoint)`` with ``adjoint(v) = P^T W^T v`` in the shape of
        ``x``; ``mu`` is ``[N, 1, 1, 1]`` (``[N, C, 1, 1]`` with per-filter conditioning) and ``w`` the
        per-filter weights ``[N, C, 1, 1]`` or ``None``. Circular boundary: both by FFT on the image's
        torus (no padding)."""
        xs, kern, mu, w = self._prepare(x, sigma, kernel)
        if self.config.boundary == "circular":
            spec = self._spectrum(kern, tuple(xs.shape[-2:]))
            return (MultiConv.apply_circular(spec, xs), mu, w,
                    lambda v: MultiConv.apply_circular_adjoint(spec, v).reshape(x.shape))
        return (MultiConv.apply(kern, xs), mu, w,
                lambda v: self._unpad_adjoint(MultiConv.apply_adjoint(kern, v)).reshape(x.shape))

    def _unpad_adjoint(self, g: torch.Tensor) -> torch.Tensor:
        """``P^T`` for ``boundary="reflect"`` (identity for valid windows): the padded
        border bands of ``g`` (``[N, 1, H + 2p, W + 2p]``) are added back onto the pixels they copy."""
        if self.config.boundary == "valid":
            return g
        p = self.conv.size // 2
        t = g[..., p:-p, :].clone()
        t[..., 1 : p + 1, :] += g[..., :p, :].flip(-2)
        t[..., -p - 1 : -1, :] += g[..., -p:, :].flip(-2)
        r = t[..., p:-p].clone()
        r[..., 1 : p + 1] += t[..., :p].flip(-1)
        r[..., -p - 1 : -1] += t[..., -p:].flip(-1)
        return r

    # profiles: odd parts of the splines, f_odd(a) = (f(a) - f(-a)) / 2 (monotone, slopes <= 1),
    # evaluated as the linear splines they are (LinearSpline.odd: one table look-up, not two)
    def _g(self, a: torch.Tensor) -> torch.Tensor:
        """WCRR: ``g(a) = f+_odd(kappa a) - f-_odd(nu a) / nu`` (before the positive part)."""
        kap = self.kappa().to(a.dtype)
        if self.log_nu is None:
            return self.f_plus.odd(kap * a) - self.f_minus.odd(a)
        nu = self.nu().to(a.dtype)
        return self.f_plus.odd(kap * a) - self.f_minus.odd(nu * a) / nu

    def psi_prime(self, u: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """``psi'(u)`` for filter responses ``u = W x`` ``[N, C, h, w]``, ``mu`` ``[N, 1, 1, 1]``."""
        a = mu * u
        if self.f_minus is None:
            return self.f_plus.odd(a) / mu
        return torch.sign(a) * self._positive_part(a.abs(), integral=False)[0] / mu

    def psi(self, u: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """``psi(u)`` elementwise (``psi(0) = 0``, even, non-decreasing in ``|u|``: ``psi >= 0``)."""
        return self.psi_and_prime(u, mu)[0]

    def psi_and_prime(self, u: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(psi(u), psi'(u))`` from one piece look-up per element (what an energy-and-gradient
        evaluation needs)."""
        a = mu * u
        if self.f_minus is None:
            val, integral = self.f_plus.odd_with_integral(a)
            return integral / (mu * mu), val / mu
        h, integral = self._positive_part(a.abs())
        return integral / (mu * mu), torch.sign(a) * h / mu

    # WCRR: g (see _g) is linear between the merged knots {t_k / kappa} U {t_k / nu} (t_k >= 0) and
    # beyond the last one, so max(0, g) and its integral are tabulated per merged piece and read
    # with one look-up; the piece comes from the two uniform grids' floor indices (no search)
    def _merged_tables(self, dtype: torch.dtype, device: Any):
        """Per-piece tables ``[C, J]`` over the sorted concatenation of the two knot sets
        (``J = m+ + m- + 2``; ties give pieces of zero width, which carry their neighbour's line):
        on piece ``j`` ``max(0, g(a)) = relu(s_j a + b_j)`` and
        ``int_0^a max(0, g) = c_j + a (s_j a + 2 b_j) / 2 + e_j relu(-(s_j a + b_j))^2``
        (``e_j != 0`` only where ``g`` changes sign inside the piece).

        Formed in float64 from two evaluations of ``g`` inside each piece of the merged partition,
        never at a knot, so that the derivatives in the splines, ``kappa`` and ``nu`` are those of
        the piece (the knots themselves are detached, which is exact: on a piece ``g`` is linear in
        ``a`` and the parameters move that line). Knots closer than ``1e-9`` relative share a piece."""
        kap = self.kappa().detach().double()
        nu = self.nu().detach().double()
        tp = self.f_plus.grid(torch.float64, device)[self.f_plus.mid :]
        tm = self.f_minus.grid(torch.float64, device)[self.f_minus.mid :]
        knots = torch.sort(torch.cat([tp / kap, tm / nu])).values  # [J], starts 0, 0
        P = torch.unique(knots)
        P = P[torch.cat([P.new_ones(1, dtype=torch.bool), torch.diff(P) > 1e-9 * P[-1]])]
        w = torch.cat([torch.diff(P), P.new_ones(1)])  # the last piece: its slope from a unit width
        q = torch.cat([P + 0.25 * w, P + 0.75 * w])
        c = self.f_minus.channels
        g1, g3 = self._g(q.view(1, 1, -1).expand(1, c, -1).contiguous())[0].chunk(2, dim=1)  # [C, J']
        S = (g3 - g1) / (0.5 * w)
        G = g1 - 0.25 * w * S  # g at P from the right
        G_end = G + S * torch.where(torch.arange(P.numel(), device=device) < P.numel() - 1, w, math.inf)
        G_end = torch.where(S == 0, G, G_end)  # the unbounded piece: its sign at infinity
        piece = _positive_linear_integral(G[:, :-1], G[:, :-1] + S[:, :-1] * w[:-1], w[:-1])
        cum = torch.cat([G.new_zeros(c, 1), torch.cumsum(piece, dim=1)], dim=1)  # int_0^{P_j} max(0, g)
        neg = (G <= 0) & (G_end <= 0)
        cross = ~neg & ((G < 0) | (G_end < 0))
        zero = torch.zeros_like(S)
        s_h = torch.where(neg, zero, S)
        b_h = torch.where(neg, zero, G - S * P)
        safe = torch.where(cross, S, torch.ones_like(S))
        e_h = torch.where(cross, -0.5 / safe, zero)
        kink = torch.where(cross, G.clamp_max(0).square() * 0.5 / safe, zero)
        c_h = torch.where(neg, cum, cum - 0.5 * S * P * P - b_h * P + kink)
        # the concatenated pieces: each takes the partition piece it starts in
        idx = (torch.searchsorted(P, knots + 1e-9 * P[-1], right=True) - 1).clamp_(0, P.numel() - 1)
        return tuple(t[:, idx].to(dtype) for t in (s_h, b_h, c_h, e_h))

    def _positive_part(self, a: torch.Tensor, *, integral: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """WCRR, ``a >= 0`` ``[N, C, ...]``: ``(max(0, g(a)), int_0^a max(0, g(s)) ds)`` (the second
        ``None`` unless ``integral``), exactly, from one look-up in :meth:`_merged_tables`."""
        s_h, b_h, c_h, e_h = self._merged_tables(a.dtype, a.device)
        n, c, J = a.shape[0], s_h.shape[0], s_h.shape[1]
        ad = a.detach()
        kp = self.kappa().detach().to(a.dtype) / self.f_plus.spacing
        km = self.nu().detach().to(a.dtype) / self.f_minus.spacing
        ip = (ad * kp).floor_().nan_to_num_(0.0).clamp_(0, self.f_plus.mid)
        im = (ad * km).floor_().nan_to_num_(0.0).clamp_(0, self.f_minus.mid)
        j = ip.add_(im).add_(1.0).to(torch.long).reshape(n, c, -1)
        size = (n, c, J)
        tabs = (s_h, b_h, c_h, e_h) if integral else (s_h, b_h)
        sel = [torch.gather(tab.unsqueeze(0).expand(size), 2, j) for tab in tabs]
        av = a.reshape(n, c, -1)
        v = torch.addcmul(sel[1], sel[0], av)
        h = v.clamp_min(0.0).reshape(a.shape)
        if not integral:
            return h, None
        out = sel[2] + 0.5 * av * (v + sel[1]) + sel[3] * (-v).clamp_min(0.0).square()
        return h, out.reshape(a.shape)

    def energy(self, x: torch.Tensor, sigma: Any, *, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """``R(x, sigma)`` per image, ``[B]``, summed in float64 (objective comparisons of the
        variational solver need more than float32's 7 digits over ``10^5`` pixels)."""
        u, mu, w, _ = self._responses(x, sigma, kernel)
        p = self.psi(u, mu)
        e = (p if w is None else w * p).sum(dim=(1, 2, 3), dtype=torch.float64)
        return e.view(x.shape[0], x.shape[1]).sum(1)

    def grad(self, x: torch.Tensor, sigma: Any, *, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """``grad_x R(x, sigma) = W^T psi'(W x)``, shape of ``x``."""
        u, mu, w, adjoint = self._responses(x, sigma, kernel)
        dp = self.psi_prime(u, mu)
        return adjoint(dp if w is None else w * dp)

    def energy_and_grad(
        self, x: torch.Tensor, sigma: Any, *, kernel: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both at the cost of one forward filtering."""
        u, mu, w, adjoint = self._responses(x, sigma, kernel)
        p, dp = self.psi_and_prime(u, mu)
        if w is not None:
            p, dp = w * p, w * dp
        e = p.sum(dim=(1, 2, 3), dtype=torch.float64).view(x.shape[0], x.shape[1]).sum(1)
        return e, adjoint(dp)

    # ---------------------------------------------------------------- certified constants
    @torch.no_grad()
    def certificate(self) -> RidgeCertificate:
        """Certified constants from upper bounds (see :class:`RidgeCertificate`)."""
        nb = conv_opnorm_upper_bound(self.kernel().detach(), grid=self.config.grid)
        w = nb.bound
        sp = _odd_slope_max(self.f_plus)
        sm = _odd_slope_max(self.f_minus) if self.f_minus is not None else 0.0
        kap = float(self.kappa())
        pp = self._boundary_factor()
        lip = max(kap * sp, sm) * w * w * pp
        rho = sm * w * w * pp
        lam_max = self.lambda_max()
        if self.kind == "crr":
            prox_lip, alpha = 1.0, 0.5
            notes = "R convex: prox_(lambda R) is firmly non-expansive for every lambda > 0."
        else:
            m = 1.0 - lam_max * rho
            prox_lip = 1.0 / m if m > 0 else math.inf
            alpha = None
            notes = (
                "R rho-weakly convex: for lambda rho < 1 the denoising objective is (1 - lambda rho)-strongly convex, "
                "prox_(lambda R) is single-valued, (1 - lambda rho)-cocoercive and 1/(1 - lambda rho)-Lipschitz "
                "(not non-expansive, so no averaged-operator PnP guarantee)."
            )
        if self.config.channel_conditioning:
            notes += (" Per-filter weights w_c(sigma) = exp(a_c - max a) <= 1 scale each psi_c'' within the same bounds; "
                      "per-filter widths change no curvature.")
        return RidgeCertificate(
            kind=self.kind,
            w_norm_bound=w,
            w_norm_method=nb.method,
            boundary=self.config.boundary,
            slope_plus=sp,
            slope_minus=sm,
            kappa=kap,
            lip_grad=lip,
            weak_convexity=rho,
            lambda_max=lam_max,
            prox_lipschitz=prox_lip,
            prox_alpha=alpha,
            notes=notes,
        )

    @torch.no_grad()
    def step_constants(self) -> tuple[float, float]:
        """``(Lip(grad R), rho)`` with ``||W|| <= 1`` taken from the construction (the normalisation by
        the certified bound) instead of recomputed: cheap, for training loops. The certificate
        recomputes the norm."""
        sp = _odd_slope_max(self.f_plus)
        sm = _odd_slope_max(self.f_minus) if self.f_minus is not None else 0.0
        kap = float(self.kappa())
        pp = self._boundary_factor()
        return max(kap * sp, sm) * pp, sm * pp

    def _boundary_factor(self) -> float:
        """``||P||^2`` of the boundary extension in ``Lip(grad R)`` and ``rho`` (1 for valid windows and
        for circular convolutions, whose norm the sup of the frequency response already bounds)."""
        return REFLECT_NORM_SQ if self.config.boundary == "reflect" else 1.0

    def with_channel_conditioning(self) -> "RidgeRegularizer":
        """A copy with per-filter conditioning added at ``a = b = 0``: the same ``R``, gradient and
        certificate, with the per-filter functions free to train (a copy if it already has them)."""
        cfg = dataclasses.replace(self.config, channel_conditioning=True)
        new = RidgeRegularizer(cfg).to(device=self.lam.values.device, dtype=self.lam.values.dtype)
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        if unexpected or any(not k.startswith(("chan_w.", "chan_mu.")) for k in missing):
            raise ValueError(f"state mismatch adding per-filter conditioning: missing {missing}, unexpected {unexpected}")
        return new

    @torch.no_grad()
    def as_wcrr(self, lambda_max: float = 0.5) -> "RidgeRegularizer":
        """A WCRR that starts as this CRR: the convex model is the WCRR with ``f- = 0``.

        With ``f- = 0`` the WCRR term ``lambda_w psi_w'(t) = lambda_w f+(kappa mu_w t) / mu_w`` equals the
        CRR's ``lambda f+(mu t) / mu`` for ``kappa = K``, ``mu_w = mu / K`` and ``lambda_w = lambda / K``.
        ``K = sup lambda / lambda_max`` (at least 1) brings ``lambda_w`` under the cap, so the weakly
        convex part ``f-`` (zero, on the same knots) is then free to grow with ``lambda_w rho < 1``.
        It sees ``mu t / K``: the large (edge) responses, where ``f+`` has long saturated, fall on its
        knots, which is where a truncation of the profile acts; its width ``nu`` (``minus_scale``)
        starts at 1 and is learned.
        ``lambda_w = cap sigmoid(a)`` is matched at the knots of ``lambda(sigma)``: the two models are
        the same function of ``x`` at those noise levels and differ between them only by the
        interpolation of ``logit(lambda / (K cap))`` instead of ``log lambda``. ``Lip(grad R)`` is
        multiplied by ``K`` and ``lambda`` divided by it, so ``lambda Lip(grad R)`` is unchanged.
        """
        if self.kind != "crr":
            raise ValueError(f"as_wcrr converts a crr, got a {self.kind}")
        cap = self.config.lambda_cap
        if not (0.0 < lambda_max < cap):
            raise ValueError(f"lambda_max must be in (0, lambda_cap = {cap}), got {lambda_max!r}")
        if self.config.boundary == "reflect":
            raise ValueError("a wcrr cannot use the reflect boundary (it would multiply rho by 4); "
                             "convert the crr to valid or circular first (with_boundary)")
        cfg = dataclasses.replace(self.config, kind="wcrr", minus_scale=True)
        new = RidgeRegularizer(cfg).to(device=self.lam.values.device, dtype=self.lam.values.dtype)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(("lam.", "mu."))}
        missing, unexpected = new.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"lam.values", "mu.values", "log_kappa", "log_nu", *(
                k for k in new.state_dict() if k.startswith("f_minus."))}:
            raise ValueError(f"state mismatch converting to wcrr: missing {missing}, unexpected {unexpected}")
        lam = self.lam.values.double().exp()
        big_k = max(1.0, float(lam.max()) / lambda_max)
        ratio = lam / (big_k * cap)  # in (0, lambda_max / cap]
        new.lam.values.copy_(torch.log(ratio / (1.0 - ratio)).to(new.lam.values.dtype))
        new.mu.values.copy_((self.mu.values.double() - math.log(big_k)).to(new.mu.values.dtype))
        new.log_kappa.fill_(math.log(big_k))
        new.log_nu.zero_()  # f- sees mu_w t = mu t / K: on its knots for responses K times larger than f+'s
        new.f_minus.coefficients.zero_()
        return new

    def with_boundary(self, boundary: str) -> "RidgeRegularizer":
        """A copy with the same weights and another ``boundary`` (``RIDGE_BOUNDARIES``)."""
        cfg = dataclasses.replace(self.config, boundary=boundary)
        new = RidgeRegularizer(cfg).to(device=self.lam.values.device, dtype=self.lam.values.dtype)
        new.load_state_dict(self.state_dict(), strict=True)
        return new

    @torch.no_grad()
    def with_spline_grid(self, knots: int, range_: float) -> "RidgeRegularizer":
        """A copy whose splines live on ``knots`` uniform knots of ``[-range_, range_]``, each new spline
        the old one sampled at the new knots (linear extrapolation beyond the old grid, as evaluated).

        Exact (the same ``R``, gradient and certificate) when the new spacing equals the old one and the
        new grid contains the old: a wider grid gives the profiles room to change shape where the
        filter responses ``mu(sigma) (W x)`` actually lie, starting from the same function.
        """
        cfg = dataclasses.replace(self.config, spline_knots=int(knots), spline_range=float(range_))
        new = RidgeRegularizer(cfg).to(device=self.lam.values.device, dtype=self.lam.values.dtype)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(("f_plus.", "f_minus."))}
        missing, unexpected = new.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(("f_plus.", "f_minus.")) for k in missing):
            raise ValueError(f"state mismatch resampling splines: missing {missing}, unexpected {unexpected}")
        for old_s, new_s in zip(self.splines(), new.splines()):
            t = new_s.grid(torch.float64, old_s.coefficients.device)
            vals = copy.deepcopy(old_s).double()(t.view(1, 1, -1).expand(1, old_s.channels, -1).contiguous())[0]
            new_s.coefficients.copy_(vals.to(new_s.coefficients.dtype))
        return new

    def splines(self) -> list[LinearSpline]:
        return [s for s in (self.f_plus, self.f_minus) if s is not None]

    def tv2(self) -> torch.Tensor:
        return sum(s.tv2() for s in self.splines())

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


def _odd_slope_max(spline: LinearSpline) -> float:
    """Largest slope of the odd part ``(f(a) - f(-a)) / 2`` of a spline on a symmetric grid: the
    slope on piece ``k`` is ``(s_k + s_{K-2-k}) / 2`` (exact)."""
    s = spline.slopes().detach()
    return float((0.5 * (s + s.flip(1))).max().clamp_min(0.0))


def _positive_linear_integral(g0: torch.Tensor, g1: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``int_0^w max(0, l(s)) ds`` for the linear ``l`` with ``l(0) = g0``, ``l(w) = g1``."""
    both = 0.5 * (g0 + g1) * w
    pos = torch.maximum(g0, g1)
    neg = torch.minimum(g0, g1)
    span = (pos - neg).clamp_min(1e-30)
    tri = pos.clamp_min(0.0).square() / (2.0 * span) * w
    return torch.where(neg >= 0, both, torch.where(pos <= 0, torch.zeros_like(both), tri))
