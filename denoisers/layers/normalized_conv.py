"""A convolution normalised to operator norm at most 1: ``C(x) = (W / max(1, s)) * x + b``.

Zero padding ('same' size), stride 1, odd kernel. ``s`` is a scale for ``||W||`` (the operator
norm of the convolution on images of any size, see :mod:`denoisers.layers.conv_bounds`):

* **training / not frozen**: ``s = ||W u|| / f`` with ``u`` a warm-started power-iteration vector
  (buffer ``power_u``, one iteration per training forward, :mod:`denoisers.layers.power_iteration`)
  and ``f = sampling_factor(k, grid)`` the Bernstein factor by which the certified bound exceeds
  the grid maximum. ``||W u||`` is a lower bound of ``||W||``; dividing by ``f`` makes ``s`` track
  the certified bound that :meth:`freeze` will use, so freezing barely changes the function
  (without it every layer would shrink by ``f`` at freeze time: ~0.5% per 3x3 layer at grid 64).
  ``s`` is differentiable in ``W`` (the normalisation is part of the parametrisation), nothing is
  projected.
* **frozen** (:meth:`freeze`): ``s`` is the certified upper bound ``ub >= ||W||`` from
  :func:`conv_opnorm_upper_bound`, stored in the buffer ``norm_frozen`` rounded *up* in its dtype,
  so ``||W / max(1, s)|| <= ub / max(1, s) <= 1`` holds exactly (in exact arithmetic with the
  stored ``W`` and ``s``). :meth:`normalized_norm_bound` returns that certified bound.

The bias does not change the Lipschitz constant. Example::

    >>> conv = NormalizedConv2d(1, 8)
    >>> y = conv(torch.rand(2, 1, 16, 16))
    >>> conv.freeze(); conv.normalized_norm_bound() <= 1.0
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from denoisers.layers.conv_bounds import conv_opnorm_upper_bound, sampling_factor
from denoisers.layers.power_iteration import conv_norm_sq, conv_power_iteration

__all__ = ["NormalizedConv2d"]


class NormalizedConv2d(nn.Module):
    """``x -> conv(x, W / max(1, s)) + b`` with ``||W / max(1, s)|| <= 1`` once frozen.

    Parameters
    ----------
    in_channels, out_channels: channels of the input and output.
    kernel_size: odd, positive; zero 'same' padding.
    bias: learn a bias.
    power_size: side of the circular grid of the power iteration (>= kernel_size).
    power_init_iters: power iterations run at construction, so that the first forward already
        uses a sensible scale.
    grid: DFT grid of the certified bound used by :meth:`freeze` (and for the training margin).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        bias: bool = True,
        power_size: int = 32,
        power_init_iters: int = 30,
        grid: int = 64,
    ) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("power_size", power_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
        if power_size < kernel_size:
            raise ValueError(f"power_size ({power_size}) must be >= kernel_size ({kernel_size})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size
        self.grid = int(grid)
        self.margin = sampling_factor((kernel_size, kernel_size), grid=self.grid)
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        u = torch.randn(1, in_channels, power_size, power_size)
        self.register_buffer("power_u", u / u.norm())
        self.register_buffer("norm_estimate", torch.tensor(float("nan")))
        self.register_buffer("norm_frozen", torch.tensor(float("nan")))
        if power_init_iters > 0:
            self.power_iteration(power_init_iters)

    # ----------------------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return bool(torch.isfinite(self.norm_frozen))

    @torch.no_grad()
    def power_iteration(self, iters: int = 1) -> None:
        """Advance the warm-started power iteration on ``W^T W`` by ``iters`` steps."""
        self.power_u.copy_(conv_power_iteration(self.weight, self.power_u, iters))

    def scale(self) -> torch.Tensor:
        """The scale ``s`` in use (frozen bound, or the margin-inflated estimate; see module doc).

        In training mode this advances the power iteration by one step."""
        if self.frozen:
            return self.norm_frozen.to(self.weight.dtype)
        if self.training:
            self.power_iteration(1)
        s = conv_norm_sq(self.weight, self.power_u).clamp_min(1e-30).sqrt() / self.margin
        self.norm_estimate.copy_(s.detach())
        return s

    def normalized_weight(self) -> torch.Tensor:
        """``W / max(1, s)`` (differentiable in ``W``; one power step in training mode)."""
        return self.weight / self.scale().clamp_min(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.normalized_weight().to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.conv2d(x, w, b, padding=self.kernel_size // 2)

    # ----------------------------------------------------------------------------------------
    def norm_upper_bound(self, *, grid: int | None = None) -> float:
        """Certified upper bound of ``||W||`` (raw weight) for every image size and zero padding."""
        grid = self.grid if grid is None else int(grid)
        key = (self.weight.data_ptr(), self.weight._version, grid)
        cached = getattr(self, "_ub_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        ub = conv_opnorm_upper_bound(self.weight, grid=grid).bound
        self._ub_cache = (key, ub)
        return ub

    def normalized_norm_bound(self, *, grid: int | None = None) -> float:
        """Certified upper bound of ``||W / max(1, s)||`` with the scale ``s`` in use (frozen bound,
        or, when not frozen, the current estimate: then the bound may exceed 1)."""
        ub = self.norm_upper_bound(grid=grid)
        if self.frozen:
            s = float(self.norm_frozen)
        else:
            with torch.no_grad():
                was = self.training
                self.eval()
                s = float(self.scale())
                self.train(was)
        return ub / max(1.0, s)

    @torch.no_grad()
    def freeze(self, *, grid: int | None = None) -> None:
        """Fix ``s`` to the certified upper bound ``ub`` of ``||W||``, rounded up in the buffer's
        dtype (so ``ub / max(1, s) <= 1`` exactly)."""
        ub = self.norm_upper_bound(grid=grid)
        s = torch.tensor(ub, dtype=self.norm_frozen.dtype)
        if float(s) < ub:
            s = torch.nextafter(s, torch.tensor(math.inf, dtype=s.dtype))
        self.norm_frozen.copy_(s)

    @torch.no_grad()
    def unfreeze(self) -> None:
        self.norm_frozen.fill_(float("nan"))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}, frozen={self.frozen}")
