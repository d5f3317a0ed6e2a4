"""Learnable 1-Lipschitz activations (monotone by default): per-channel linear splines on a uniform grid.

Each channel ``j`` of :class:`LinearSpline` is a continuous piecewise-linear function ``f_j`` with
``K`` (odd) uniform knots ``t_k = (k - (K-1)/2) T``, ``k = 0..K-1``, ``T = 2R/(K-1)``, on
``[-R, R]`` (the grid contains ``0``), extended *linearly* outside ``[-R, R]`` with the boundary
slopes. The stored parameter is the raw coefficient matrix ``c[C, K]`` (values at the knots).

Constraint by construction. The forward pass never evaluates the raw ``c``; it evaluates the
projected coefficients ``P(c)``:

* slopes ``s_k = clamp((c_{k+1} - c_k) / T, l, 1)``, ``k = 0..K-2``, with the lower slope bound
  ``l = slope_min``: ``0`` (default) or ``-1``;
* re-integration anchored at the value at ``0`` (the middle knot ``m = (K-1)/2``):
  ``P(c)_k = c_m + T (S_k - S_m)`` with ``S_k = s_0 + ... + s_{k-1}``.

So every function actually evaluated has slopes in ``[l, 1]``, after any optimiser step, whatever
the raw parameters. With ``l = 0`` (default) it is monotone and 1-Lipschitz (``L_sigma = 1``): the
requirement of the Runge-Kutta gradient-step blocks (``sigma`` is the derivative of a convex
potential). With ``l = -1`` it is 1-Lipschitz but not monotone (a continuous piecewise-linear
function with every ``|s_k| <= 1``): enough for the feed-forward family
(:mod:`denoisers.models.lipschitz_ff`, ``Lip(N) <= prod ||C_i|| * 1``), and the only range that
admits the ``"absolute"`` initialisation ``|x|`` (slopes ``-1`` then ``+1``). Anchoring at ``f(0)``
(rather than at the mean of the coefficients) keeps ``P`` exact on feasible coefficients whose
left part is flat: the ReLU initialisation stays exactly ``0`` on the negative side. ``P`` is the
identity on feasible coefficients (up to round-off), so :meth:`LinearSpline.project_` (write
``P(c)`` back into the parameter) is idempotent.

Gradients. Inside ``(l, 1)`` the clamp's derivative is 1 and the gradient is the exact gradient
of the evaluated spline. At and beyond the bounds the backward pass keeps the components of the
gradient that move a slope back into ``[l, 1]`` (descent decreases a slope ``>= 1``, increases a
slope ``<= l``) and zeroes those that would push it further out: the projection of the gradient
onto the tangent cone of the box. PyTorch's own ``clamp`` derivative is 0 *at* the bounds, and
the ReLU / identity / absolute-value initialisations have every slope exactly on a bound: with
it they would never learn; a plain straight-through gradient would keep pushing saturated slopes outwards and drag
their neighbours with them. With :func:`project_splines_` after each optimiser step (what
:func:`denoisers.train.train` does) training is projected gradient descent on ``{slopes in [l, 1]}``.

Evaluation: ``f_j(x) = s_{j,k} x + b_{j,k}`` with ``k = clamp(floor(x / T) + m, 0, K-2)`` (so the
two outer pieces continue beyond ``[-R, R]``) and intercepts ``b_k = P(c)_k - s_k t_k``:
``torch.gather`` on the piece index, no loop over channels. With a dyadic spacing ``T`` (e.g.
``K = 33, R = 1``: ``T = 1/16``) the knots are exact in every float format and the ``"relu"`` / ``"identity"``
initialisations are *bitwise* ``torch.relu`` / the identity, and ``"absolute"`` is bitwise
``torch.abs`` (every slope is ``+-1`` and every intercept ``|t_k| - (+-t_k)`` is exactly 0); with
any other ``T`` they are exact up to round-off of the knot values, stored in the default dtype at
construction (a few ulps away from 0; the ReLU's zero side is exact).

Regularisation: ``tv2() = sum_j sum_k |P(c)_{j,k+1} - 2 P(c)_{j,k} + P(c)_{j,k-1}| / T =
sum_j sum_k |s_{j,k} - s_{j,k-1}|``, the second-order total variation (total jump of the
derivative) of the splines; penalising it removes knots (Unser's TV(2) / DeepSpline framework).

Default grid ``K = 33, R = 1`` (``T = 1/16``): inputs are pre-activations ``W x + b`` of images
in ``[0, 1]``. In the shipped ReLU networks (``rk-averaged-s25`` and ``-s50`` on a noisy
128x128 ``camera``) they lie in ``[-1.07, 0.58]``, 98% of them in ``[-0.42, 0.23]``. ``R = 1``
covers them (beyond, the spline is linear, which is what a network whose pre-activations drift
out would want anyway), ``T = 1/16`` puts ~10 pieces over the bulk of the values (a knot grid
finer than the noise level 25/255 ~ 0.1), and the dyadic spacing makes the initialisations exact.

Example::

    >>> act = LinearSpline(4, init="relu")
    >>> x = torch.randn(2, 4, 8, 8)
    >>> bool(torch.equal(act(x), torch.relu(x)))
    True
    >>> bool(((act.slopes() >= 0) & (act.slopes() <= 1)).all())
    True
    >>> absval = LinearSpline(4, init="absolute", slope_min=-1.0)  # not monotone: FF family only
    >>> bool(torch.equal(absval(x), torch.abs(x)))
    True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "LinearSpline",
    "SLOPE_MINS",
    "SPLINE_INITS",
    "SPLINE_INITS_SIGNED",
    "check_spline_args",
    "plot_activations",
    "project_splines_",
    "spline_modules",
    "spline_report",
    "tv2_penalty",
]

#: initialisations a monotone 1-Lipschitz spline can take (slopes in [0, 1])
SPLINE_INITS = ("relu", "identity", "zero", "clip")
#: initialisations of a (non-monotone) 1-Lipschitz spline, slopes in [-1, 1]
SPLINE_INITS_SIGNED = SPLINE_INITS + ("absolute",)
#: allowed lower slope bounds: 0 (monotone, default) or -1 (1-Lipschitz only)
SLOPE_MINS = (0.0, -1.0)


def check_spline_args(knots: Any, range_: Any, init: Any, slope_min: Any = 0.0) -> None:
    """Validate a spline grid, initialisation and lower slope bound; ``ValueError`` naming the
    argument otherwise. ``"absolute"`` (slope -1 on ``x < 0``) needs ``slope_min = -1``."""
    if isinstance(knots, bool) or not isinstance(knots, int) or knots < 3 or knots % 2 != 1:
        raise ValueError(f"spline_knots must be an odd integer >= 3 (the grid must contain 0), got {knots!r}")
    if isinstance(range_, bool) or not isinstance(range_, (int, float)) or not (math.isfinite(range_) and range_ > 0):
        raise ValueError(f"spline_range must be a finite number > 0, got {range_!r}")
    if isinstance(slope_min, bool) or not isinstance(slope_min, (int, float)) or float(slope_min) not in SLOPE_MINS:
        raise ValueError(
            f"spline_slope_min (slope_min) must be 0 (monotone, slopes in [0, 1]) or -1 (slopes in [-1, 1]), "
            f"got {slope_min!r}"
        )
    if init == "absolute" and float(slope_min) != -1.0:
        raise ValueError(
            f"spline_init='absolute' needs spline_slope_min (slope_min) = -1, got {slope_min!r}: |x| has "
            "slope -1 on x < 0, and with slope_min=0 the slopes are constrained to [0, 1] (monotone, "
            "1-Lipschitz, as the Runge-Kutta gradient-step blocks require); "
            f"use one of {SPLINE_INITS}, or slope_min=-1 where a non-monotone activation is allowed "
            "(the feed-forward family)"
        )
    allowed = SPLINE_INITS_SIGNED if float(slope_min) == -1.0 else SPLINE_INITS
    if init not in allowed:
        raise ValueError(f"spline_init must be one of {allowed}, got {init!r}")


class _ClampSlopes(torch.autograd.Function):
    """``clamp(d, lo, 1)`` in the forward pass; in the backward pass the gradient is kept except
    where it would push a slope at or beyond a bound further out (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, d: torch.Tensor, lo: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(d)
        ctx.lo = lo
        return d.clamp(lo, 1.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (d,) = ctx.saved_tensors
        outward = ((d >= 1.0) & (grad < 0)) | ((d <= ctx.lo) & (grad > 0))
        return grad.masked_fill(outward, 0.0), None


class LinearSpline(nn.Module):
    """Per-channel 1-Lipschitz linear spline, monotone by default (see the module docstring).

    Parameters
    ----------
    channels: number of channels ``C`` (dimension 1 of the input).
    knots: odd number ``K >= 3`` of uniform knots on ``[-range_, range_]`` (contains 0).
    range_: half-width ``R > 0`` of the knot grid; linear extrapolation outside.
    init: ``"relu"``, ``"identity"``, ``"zero"``, ``"clip"`` (``clamp(x, -1, 1)``: slope 1 on
        ``[-1, 1]``, 0 outside; the derivative of the Huber function, an odd soft-threshold-like
        profile) or, only with ``slope_min=-1``, ``"absolute"`` (every channel the same function).
    slope_min: lower slope bound ``l``: ``0`` (default; slopes in ``[0, 1]``: monotone and
        1-Lipschitz, as the gradient-step blocks require) or ``-1`` (slopes in ``[-1, 1]``:
        1-Lipschitz, not monotone; the feed-forward family only).

    Input ``[B, C, H, W]`` or ``[B, C]`` (any ``[B, C, ...]``), any float dtype and device; output
    of the same shape. ``L_sigma = 1`` for every value of the parameter.
    """

    def __init__(
        self, channels: int, *, knots: int = 33, range_: float = 1.0, init: str = "relu", slope_min: float = 0.0
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        check_spline_args(knots, range_, init, slope_min)
        self.channels = int(channels)
        self.knots = int(knots)
        self.range = float(range_)
        self.spacing = 2.0 * self.range / (self.knots - 1)
        self.init = init
        self.slope_min = float(slope_min)
        t = self.grid(torch.float64)
        if init == "relu":
            c = t.clamp_min(0.0)
        elif init == "identity":
            c = t
        elif init == "absolute":
            c = t.abs()
        elif init == "clip":
            c = t.clamp(-1.0, 1.0)
        else:
            c = torch.zeros_like(t)
        self.coefficients = nn.Parameter(c.to(torch.get_default_dtype()).repeat(self.channels, 1))

    @property
    def mid(self) -> int:
        """Index of the knot at 0."""
        return (self.knots - 1) // 2

    def grid(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """The knots ``t_k = (k - m) T``, shape ``[K]`` (default: the parameter's dtype)."""
        if dtype is None:
            dtype = self.coefficients.dtype
        return (torch.arange(self.knots, dtype=dtype, device=device) - self.mid) * self.spacing

    @property
    def monotone(self) -> bool:
        """True when the slopes are constrained to ``[0, 1]`` (``slope_min = 0``)."""
        return self.slope_min >= 0.0

    # ----------------------------------------------------------------------------------------
    def _projection(
        self, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(P(c), s)``: projected coefficients ``[C, K]`` and slopes ``[C, K-1]``."""
        c = self.coefficients.to(dtype=dtype or self.coefficients.dtype, device=device or self.coefficients.device)
        s = _ClampSlopes.apply(torch.diff(c, dim=1) / self.spacing, self.slope_min)
        # S_k = s_0 + ... + s_{k-1} (S_0 = 0); S_k - S_m is an integer for the ReLU / identity /
        # absolute initialisations, so P(c) = c_m + (S - S_m) T reproduces their knots exactly
        S = torch.cat([c.new_zeros(c.shape[0], 1), torch.cumsum(s, dim=1)], dim=1)
        m = self.mid
        return c[:, m : m + 1] + (S - S[:, m : m + 1]) * self.spacing, s

    def projected_coefficients(self) -> torch.Tensor:
        """``P(c)``: the values at the knots of the function actually evaluated, ``[C, K]``."""
        return self._projection()[0]

    def slopes(self) -> torch.Tensor:
        """Slopes of the evaluated function on the ``K - 1`` pieces, ``[C, K-1]``, all in
        ``[slope_min, 1]``."""
        return self._projection()[1]

    @torch.no_grad()
    def project_(self) -> None:
        """Write ``P(c)`` into the parameter (stored weights = evaluated function)."""
        self.coefficients.copy_(self.projected_coefficients())

    def tv2(self) -> torch.Tensor:
        """``sum_j sum_k |P(c)_{k+1} - 2 P(c)_k + P(c)_{k-1}| / T`` (total jump of the slopes)."""
        return torch.diff(self.slopes(), dim=1).abs().sum()

    @torch.no_grad()
    def effective_knots(self, tol: float = 1e-3) -> torch.Tensor:
        """Per channel, the number of interior knots where the slope changes by more than ``tol``
        (``[C]``, int64). ReLU, absolute value: 1; identity: 0."""
        if not tol >= 0:
            raise ValueError(f"tol must be >= 0, got {tol!r}")
        return (torch.diff(self.slopes(), dim=1).abs() > tol).sum(dim=1)

    # ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.evaluate(x, *self._projection(x.dtype, x.device))

    def integral(self, x: torch.Tensor) -> torch.Tensor:
        """The antiderivative ``F_j(x) = int_0^x f_j(t) dt`` (``F_j(0) = 0``), elementwise, same
        shape as ``x``: a continuous piecewise-quadratic function, convex when ``f_j`` is monotone.

        On piece ``k`` (``t_k <= x <= t_{k+1}``, the outer pieces extended) ``F(x) = C_k +
        s_k (x^2 - t_k^2) / 2 + b_k (x - t_k)`` with ``C_k = F(t_k)`` accumulated exactly over the
        pieces between ``0`` and ``t_k``. Differentiable in ``x`` (``dF/dx = f(x)``) and in the
        coefficients."""
        self._check(x)
        return self.evaluate_integral(x, *self._projection(x.dtype, x.device))

    # odd part: (f(x) - f(-x)) / 2 is itself a linear spline on the same (symmetric) grid, with knot
    # values (P(c)_k - P(c)_{K-1-k}) / 2 and slopes (s_k + s_{K-2-k}) / 2 (in [l, 1] again), and its
    # outer pieces continue linearly like f's: one evaluation instead of two
    def odd_projection(
        self, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values at the knots [C, K], slopes [C, K-1])`` of the odd part ``(f(x) - f(-x)) / 2``,
        differentiable in the coefficients."""
        proj, s = self._projection(dtype, device)
        return 0.5 * (proj - proj.flip(1)), 0.5 * (s + s.flip(1))

    def odd(self, x: torch.Tensor) -> torch.Tensor:
        """The odd part ``(f(x) - f(-x)) / 2``, elementwise (one table look-up per element)."""
        self._check(x)
        return self.evaluate(x, *self.odd_projection(x.dtype, x.device))

    def odd_integral(self, x: torch.Tensor) -> torch.Tensor:
        """``int_0^x (f(t) - f(-t)) / 2 dt = (F(x) + F(-x)) / 2``, elementwise (even, ``>= 0`` when
        ``f`` is monotone, up to round-off)."""
        self._check(x)
        return self.evaluate_integral(x, *self.odd_projection(x.dtype, x.device))

    # ----------------------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape [B, {self.channels}, ...] (channels in dim 1), got {tuple(x.shape)}")

    def _index(self, x: torch.Tensor) -> torch.Tensor:
        """Piece index ``[B, C, N]`` from ``x / T`` (sign-exact near 0), clamped: the outer pieces
        extrapolate."""
        m = self.mid
        k = torch.floor(x.detach() / self.spacing).nan_to_num_(0.0).clamp_(-m, m - 1).add_(m).to(torch.long)
        return k.reshape(x.shape[0], self.channels, math.prod(x.shape[2:]))

    def _select(self, k: torch.Tensor, *tables: torch.Tensor) -> list[torch.Tensor]:
        """Per-element entries of ``[C, K-1]`` tables at the piece index ``k``: a gather on a
        batch-expanded table (about 3x faster than advanced indexing on CPU)."""
        n = (k.shape[0], self.channels, self.knots - 1)
        return [torch.gather(tab.unsqueeze(0).expand(n), 2, k) for tab in tables]

    def evaluate(self, x: torch.Tensor, proj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The linear spline on this grid with knot values ``proj [C, K]`` and slopes ``s [C, K-1]``
        (those of :meth:`_projection` or :meth:`odd_projection`), at ``x`` (checked by the caller)."""
        b = self._intercepts(proj, s, x.device).to(x.dtype)
        k = self._index(x)
        s_sel, b_sel = self._select(k, s, b)
        return (s_sel * x.reshape(k.shape) + b_sel).reshape(x.shape)

    def _intercepts(self, proj: torch.Tensor, s: torch.Tensor, device: Any) -> torch.Tensor:
        """``b_k = P_k - s_k t_k`` (the spline is ``s_k x + b_k`` on piece ``k``), ``[C, K-1]``, float64."""
        return proj[:, :-1].double() - s.double() * self.grid(torch.float64, device)[:-1]

    def _integral_tables(self, proj: torch.Tensor, s: torch.Tensor, dtype: torch.dtype, device: Any):
        """Per-piece tables ``[C, K-1]``: on piece ``k`` the spline is ``s_k x + b_k`` and its
        antiderivative (``0`` at ``0``) is ``c_k + x (s_k x / 2 + b_k)``, with
        ``c_k = F(t_k) - s_k t_k^2 / 2 - b_k t_k`` (``F`` at the knots accumulated exactly over the
        pieces from ``0``; the tables are formed in float64)."""
        t = self.grid(torch.float64, device)
        p64, s64 = proj.double(), s.double()
        b = p64[:, :-1] - s64 * t[:-1]  # = _intercepts
        m = self.mid
        # F at the knots: F(t_m) = 0; the integral over piece k is T (P(c)_k + P(c)_{k+1}) / 2
        piece = self.spacing * (p64[:, :-1] + p64[:, 1:]) / 2.0  # [C, K-1]
        cum = torch.cat([p64.new_zeros(p64.shape[0], 1), torch.cumsum(piece, dim=1)], dim=1)  # int_{t_0}^{t_k}
        knots_F = cum - cum[:, m : m + 1]  # [C, K]
        c = knots_F[:, :-1] - s64 * t[:-1] * t[:-1] / 2.0 - b * t[:-1]
        return b.to(dtype), c.to(dtype)

    def _value_and_integral(self, x: torch.Tensor, proj: torch.Tensor, s: torch.Tensor):
        """The spline of :meth:`evaluate` and its antiderivative (``0`` at ``0``) at ``x``, from one
        piece look-up: ``v = s_k x + b_k`` and ``c_k + x (v + b_k) / 2``."""
        k = self._index(x)
        s_sel, b_sel, c_sel = self._select(k, s, *self._integral_tables(proj, s, x.dtype, x.device))
        xv = x.reshape(k.shape)
        val = s_sel * xv + b_sel
        return val.reshape(x.shape), (c_sel + 0.5 * xv * (val + b_sel)).reshape(x.shape)

    def evaluate_integral(self, x: torch.Tensor, proj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The antiderivative (``0`` at ``0``) of the spline of :meth:`evaluate`."""
        return self._value_and_integral(x, proj, s)[1]

    def odd_with_integral(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(odd(x), odd_integral(x))`` from one piece look-up (the pair a value-and-gradient
        evaluation of an energy ``sum odd_integral`` needs)."""
        self._check(x)
        return self._value_and_integral(x, *self.odd_projection(x.dtype, x.device))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, knots={self.knots}, range={self.range}, init={self.init!r}, "
            f"slope_min={self.slope_min}"
        )


# --------------------------------------------------------------------------------------------
def spline_modules(module: nn.Module) -> list[tuple[str, LinearSpline]]:
    """``(name, spline)`` for every :class:`LinearSpline` inside ``module`` (in module order)."""
    return [(n, m) for n, m in module.named_modules() if isinstance(m, LinearSpline)]


def tv2_penalty(module: nn.Module) -> torch.Tensor:
    """Sum of :meth:`LinearSpline.tv2` over all splines in ``module``; ``0`` when there are none."""
    total: torch.Tensor | None = None
    for _, m in spline_modules(module):
        v = m.tv2()
        total = v if total is None else total + v
    if total is None:
        p = next(module.parameters(), None)
        return torch.zeros((), dtype=p.dtype if p is not None else None, device=p.device if p is not None else None)
    return total


@torch.no_grad()
def project_splines_(module: nn.Module) -> int:
    """:meth:`LinearSpline.project_` on every spline in ``module``; returns how many."""
    mods = spline_modules(module)
    for _, m in mods:
        m.project_()
    return len(mods)


@torch.no_grad()
def spline_report(model: nn.Module, *, tol: float = 1e-3) -> list[dict[str, Any]]:
    """One entry per spline: module name, channels, knots, range, lower slope bound, effective
    knots per channel (slope changes larger than ``tol``) and their mean, and the TV(2) value."""
    out = []
    for name, m in spline_modules(model):
        eff = m.effective_knots(tol).tolist()
        out.append(
            {
                "name": name,
                "channels": m.channels,
                "knots": m.knots,
                "range": m.range,
                "slope_min": m.slope_min,
                "effective_knots": eff,
                "mean_effective_knots": float(sum(eff)) / len(eff),
                "tv2": float(m.tv2()),
            }
        )
    return out


@torch.no_grad()
def plot_activations(model: nn.Module, path: str | Path, *, points: int = 301) -> Path | None:
    """Plot every learned spline on ``[-1.5 R, 1.5 R]``: one panel per spline module (all its
    channels overlaid), the knot range ``[-R, R]`` dashed. Returns the path, or ``None`` (nothing
    written) when ``model`` has no spline. Uses matplotlib's Agg backend (headless)."""
    mods = spline_modules(model)
    if not mods:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(mods)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, m) in zip(axes.flat, mods):
        p = m.coefficients
        x = torch.linspace(-1.5 * m.range, 1.5 * m.range, points, dtype=p.dtype, device=p.device)
        y = m(x.view(-1, 1).expand(points, m.channels).contiguous()).cpu()
        ax.plot(x.cpu().numpy(), y.numpy(), lw=0.8)
        for r in (-m.range, m.range):
            ax.axvline(r, color="0.6", ls="--", lw=0.6)
        eff = m.effective_knots().float().mean().item()
        ax.set_title(f"{name} ({m.channels} ch, {eff:.1f} knots)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
