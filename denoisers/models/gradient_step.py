"""Gradient-step blocks: explicit Runge-Kutta steps of the gradient flow of a convex potential.

The potential is ``phi(x) = sum_j Psi(W x + b)_j`` with ``Psi' = sigma`` monotone and
``L_sigma``-Lipschitz, so ``grad phi(x) = W^T sigma(W x + b)`` is ``L_sigma ||W||^2``-Lipschitz
and co-coercive (Baillon-Haddad). The flow is ``x' = -W^T sigma(W x + b)``.

Explicit Euler, ``x <- x - h W^T sigma(W x + b)``: with ``beta = L_sigma ||W||^2`` and
``h beta < 2`` the map ``I - h grad phi`` is ``alpha``-averaged with ``alpha = h beta / 2``
(``I - (2/beta) grad phi`` is non-expansive by co-coercivity, and
``I - h grad phi = (1 - alpha) I + alpha (I - (2/beta) grad phi)``).

Heun and RK4 steps are non-expansive when ``h beta <= 2`` (their circle-contractivity radius is 1);
we certify them as non-expansive only (``alpha = 1``) and rely on the network's final
relaxation for averagedness.

Spectral-norm enforcement during training (adaptive step, no projection of the weights): a
warm-started power iteration on ``W^T W`` (circular padding on a ``power_size`` grid; the
singular vector persists between steps as a buffer) estimates ``||W||^2``; the step is
``h = 2 alpha_target / (L_sigma * estimate)``, differentiable in ``W``. After training,
:meth:`GradientStepConv.freeze` re-derives ``h`` from a certified *upper bound* of ``||W||``
(:func:`conv_opnorm_upper_bound`), so the frozen block is certified.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from denoisers.layers.conv_bounds import compose_kernels, conv_opnorm_upper_bound
from denoisers.layers.power_iteration import circular_conv2d, conv_norm_sq, conv_power_iteration
from denoisers.layers.spline import LinearSpline

__all__ = ["GradientStepConv", "make_activation", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "leaky_relu", "spline", "odd_spline")
INTEGRATORS = ("euler", "heun", "rk4")


def make_activation(
    name: str,
    *,
    negative_slope: float = 0.01,
    channels: int | None = None,
    spline_knots: int = 33,
    spline_range: float = 1.0,
    spline_init: str = "relu",
) -> tuple[nn.Module, float]:
    """Return ``(sigma, L_sigma)`` for a monotone Lipschitz activation.

    ``"spline"``: a learnable per-channel :class:`~denoisers.layers.spline.LinearSpline`
    (``channels`` required; ``spline_knots`` odd knots on ``[-spline_range, spline_range]``,
    initialised as ``spline_init``) whose slopes are projected into ``[0, 1]`` in every forward
    pass, so ``L_sigma = 1`` whatever its parameters. ``"odd_spline"``: the odd part
    ``(f(x) - f(-x)) / 2`` of such a spline (:class:`OddLinearSpline`), whose slopes
    ``(f'(x) + f'(-x)) / 2`` are in ``[0, 1]`` too: a soft-threshold-like profile, as in the convex
    ridge regularisers."""
    if name == "relu":
        return nn.ReLU(), 1.0
    if name == "leaky_relu":
        if not (0.0 <= negative_slope <= 1.0):
            raise ValueError(f"negative_slope must be in [0, 1], got {negative_slope!r}")
        return nn.LeakyReLU(negative_slope), 1.0
    if name in ("spline", "odd_spline"):
        if channels is None:
            raise ValueError(f"activation {name!r} needs channels= (one spline per channel)")
        cls = LinearSpline if name == "spline" else OddLinearSpline
        return cls(channels, knots=spline_knots, range_=spline_range, init=spline_init), 1.0
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


class OddLinearSpline(LinearSpline):
    """The odd part ``x -> (f(x) - f(-x)) / 2`` of a monotone 1-Lipschitz :class:`LinearSpline`
    ``f``: monotone and 1-Lipschitz as well (its slopes are means of two slopes in ``[0, 1]``).
    The TV(2) penalty and the projection act on ``f``'s coefficients, as for the plain spline."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.odd(x)

    def integral(self, x: torch.Tensor) -> torch.Tensor:
        return self.odd_integral(x)


class GradientStepConv(nn.Module):
    """One Runge-Kutta step ``x <- x - h W^T sigma(W x + b)`` with a 3x3 (or k x k) convolution.

    Parameters
    ----------
    channels: state channels ``C`` (input and output).
    hidden: channels of ``W x`` (``W: C -> hidden``).
    kernel_size: odd kernel size; zero padding keeps the size, and ``W^T`` is the exact adjoint
        (``conv_transpose2d`` with the same padding).
    alpha_target: per-step averagedness the step size aims for (Euler), in (0, 1).
    integrator: "euler", "heun" or "rk4".
    noise_conditional: if True, ``b = b0 + sigma * b1``: the noise level shifts biases only, so the
        certificate holds for every noise level.
    activation: "relu", "leaky_relu" or "spline" (:func:`make_activation`; a spline has one
        function per hidden channel, ``spline_knots`` knots on ``[-spline_range, spline_range]``,
        initialised as ``spline_init``; its slopes are in ``[0, 1]`` by construction: ``L_sigma = 1``).
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        *,
        kernel_size: int = 3,
        alpha_target: float = 0.95,
        activation: str = "relu",
        integrator: Literal["euler", "heun", "rk4"] = "euler",
        noise_conditional: bool = False,
        power_size: int = 32,
        constrained: bool = True,
        spline_knots: int = 33,
        spline_range: float = 1.0,
        spline_init: str = "relu",
        factors: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size!r}")
        if not (0.0 < alpha_target < 1.0):
            raise ValueError(f"alpha_target must be in (0, 1), got {alpha_target!r}")
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
        self.channels = int(channels)
        self.hidden = int(hidden)
        self.kernel_size = int(kernel_size)
        self.alpha_target = float(alpha_target)
        self.integrator = integrator
        self.activation_name = activation
        self.act, self.lip_act = make_activation(
            activation, channels=self.hidden, spline_knots=spline_knots, spline_range=spline_range,
            spline_init=spline_init,
        )
        self.noise_conditional = bool(noise_conditional)
        self.power_size = int(power_size)
        if isinstance(factors, bool) or not isinstance(factors, int) or factors < 1:
            raise ValueError(f"factors must be a positive integer, got {factors!r}")
        self.factors = int(factors)
        if self.factors == 1:
            fan_in = channels * kernel_size * kernel_size
            self.weight = nn.Parameter(torch.randn(hidden, channels, kernel_size, kernel_size) / math.sqrt(fan_in))
        else:
            # multi-convolution: W = C_F o ... o C_1 (channels -> hidden -> ... -> hidden), used as
            # the single convolution with the composed kernel (``effective_kernel_size`` wide)
            shapes = [(hidden, channels)] + [(hidden, hidden)] * (self.factors - 1)
            self.weight_factors = nn.ParameterList(
                nn.Parameter(torch.randn(o, i, kernel_size, kernel_size) / math.sqrt(i * kernel_size * kernel_size))
                for o, i in shapes
            )
        self.has_bias = bool(bias)
        if self.has_bias:
            self.bias = nn.Parameter(torch.zeros(hidden))
        else:
            if noise_conditional:
                raise ValueError("noise_conditional shifts the biases: it needs bias=True")
            self.register_buffer("bias", torch.zeros(hidden))
        if self.noise_conditional:
            self.bias_sigma = nn.Parameter(torch.zeros(hidden))
        # Warm-started power iteration vector (persists between steps and in checkpoints).
        u = torch.randn(1, channels, power_size, power_size)
        self.register_buffer("power_u", u / u.norm())
        self.register_buffer("norm_sq_estimate", torch.tensor(float("nan")))
        # Frozen step size (NaN while training: step derived from the estimate).
        self.register_buffer("h_frozen", torch.tensor(float("nan")))
        self.constrained = bool(constrained)
        if not self.constrained:
            if integrator != "euler":
                raise ValueError("an unconstrained block supports only the euler integrator")
            # baseline without the constraint: a free step, initialised at the constrained value
            self.power_iteration(30)
            h0 = 2.0 * self.alpha_target / (self.lip_act * float(self.norm_sq_current().detach()))
            self.log_h = nn.Parameter(torch.tensor(math.log(h0)))

    # ----------------------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return bool(torch.isfinite(self.h_frozen))

    @property
    def effective_kernel_size(self) -> int:
        return self.factors * (self.kernel_size - 1) + 1

    def kernel(self) -> torch.Tensor:
        """The convolution ``W`` (``[hidden, channels, K, K]``): the weight, or the composed
        kernel of the factors (differentiable in them)."""
        if self.factors == 1:
            return self.weight
        return compose_kernels(list(self.weight_factors))

    def _kernel_key(self) -> tuple:
        ps = [self.weight] if self.factors == 1 else list(self.weight_factors)
        return tuple((p.data_ptr(), p._version) for p in ps)

    def _circ(self, x: torch.Tensor, weight: torch.Tensor, transpose: bool) -> torch.Tensor:
        return circular_conv2d(x, weight, adjoint=transpose)

    @torch.no_grad()
    def power_iteration(self, iters: int = 1, kernel: torch.Tensor | None = None) -> None:
        """Advance the warm-started power iteration on ``W^T W`` by ``iters`` steps (``kernel``: ``W``
        when the caller has it already)."""
        w = self.kernel() if kernel is None else kernel
        self.power_u.copy_(conv_power_iteration(w.detach(), self.power_u, iters))

    def norm_sq_current(self, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """``||W u||^2`` with the current (detached) singular vector: differentiable in ``W``."""
        return conv_norm_sq(self.kernel() if kernel is None else kernel, self.power_u)

    def step_size(self, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """The step ``h`` in use: frozen, or ``2 alpha_target / (L_sigma * estimate)``."""
        if self.frozen:
            return self.h_frozen.to(self.bias.dtype)
        if not self.constrained:
            return self.log_h.exp()
        if self.training:
            self.power_iteration(1, kernel)
        nsq = self.norm_sq_current(kernel)
        self.norm_sq_estimate.copy_(nsq.detach())
        return 2.0 * self.alpha_target / (self.lip_act * nsq)

    # ----------------------------------------------------------------------------------------
    def grad_potential(self, x: torch.Tensor, sigma: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
        p = weight.shape[-1] // 2
        b = self.bias.to(x.dtype).view(1, -1, 1, 1)
        if self.noise_conditional:
            if sigma is None:
                raise ValueError("this block is noise-conditional: sigma is required")
            b = b + sigma.to(x.dtype).view(-1, 1, 1, 1) * self.bias_sigma.to(x.dtype).view(1, -1, 1, 1)
        z = self.act(F.conv2d(x, weight, padding=p) + b)
        return F.conv_transpose2d(z, weight, padding=p)

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor | None = None, *, step: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """One step. ``step = (h, W)`` reuses a step size and kernel computed once (a block
        applied several times in one forward pass: :meth:`step_and_kernel`)."""
        h, w = self.step_and_kernel() if step is None else step
        h = h.to(x.dtype)
        w = w.to(x.dtype)
        g = lambda v: self.grad_potential(v, sigma, w)  # noqa: E731
        if self.integrator == "euler":
            return x - h * g(x)
        if self.integrator == "heun":
            k1 = g(x)
            k2 = g(x - h * k1)
            return x - 0.5 * h * (k1 + k2)
        k1 = g(x)
        k2 = g(x - 0.5 * h * k1)
        k3 = g(x - 0.5 * h * k2)
        k4 = g(x - h * k3)
        return x - (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    def step_and_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, W)`` for one forward pass (advances the power iteration once when training)."""
        w = self.kernel()
        return self.step_size(w), w

    # ----------------------------------------------------------------------------------------
    def norm_upper_bound(self, *, grid: int = 64) -> float:
        """Certified upper bound of ``||W||`` for every image size (zero or circular padding);
        for a multi-convolution, the bound of the composed kernel's frequency response."""
        key = (self._kernel_key(), grid)
        cached = getattr(self, "_ub_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            ub = conv_opnorm_upper_bound(self.kernel().detach(), grid=grid).bound
        self._ub_cache = (key, ub)
        return ub

    @torch.no_grad()
    def freeze(self, *, grid: int = 64) -> None:
        """Fix ``h = 2 alpha_target / (L_sigma * ub^2)`` from the certified upper bound ``ub``.

        An unconstrained block keeps its learned step (its certificate then says what it is).
        A spline activation is projected (:meth:`LinearSpline.project_`): the stored coefficients
        become those of the function evaluated."""
        if isinstance(self.act, LinearSpline):
            self.act.project_()
        if not self.constrained:
            self.h_frozen.copy_(self.log_h.detach().exp())
            return
        ub = self.norm_upper_bound(grid=grid)
        h = 2.0 * self.alpha_target / (self.lip_act * ub * ub)
        # store in float32 rounded *down* so that h * beta <= 2 alpha_target holds exactly
        h32 = torch.tensor(h, dtype=torch.float32)
        if float(h32) > h:
            h32 = torch.nextafter(h32, torch.tensor(0.0, dtype=torch.float32))
        self.h_frozen.copy_(h32)

    @torch.no_grad()
    def unfreeze(self) -> None:
        self.h_frozen.fill_(float("nan"))

    def step_alpha(self, *, grid: int = 64) -> tuple[float, float, float]:
        """Certified ``(alpha, ||W|| upper bound, h)`` of this step with the step size in use.

        Euler: ``alpha = h L ub^2 / 2`` (averaged when < 1; when ``h L ub^2 >= 2`` the step is only
        ``(h L ub^2 - 1)``-Lipschitz, which :meth:`lipschitz_bound` reports). Heun/RK4: ``alpha = 1``
        (non-expansive) when ``h L ub^2 <= 2``, else ``inf``.
        """
        ub = self.norm_upper_bound(grid=grid)
        if self.frozen:
            h = float(self.h_frozen)
        else:
            with torch.no_grad():
                was = self.training
                self.eval()
                h = float(self.step_size())
                self.train(was)
        prod = h * self.lip_act * ub * ub
        if self.integrator == "euler":
            return prod / 2.0, ub, h
        return (1.0 if prod <= 2.0 else float("inf")), ub, h

    def lipschitz_bound(self, *, grid: int = 64) -> float:
        """Upper bound of the step's Lipschitz constant. Euler: the Jacobian
        ``I - h W^T diag(sigma') W`` has eigenvalues in ``[1 - h L ||W||^2, 1]`` (symmetric), so the
        bound is ``max(1, h L ub^2 - 1)``. Heun/RK4: 1 when ``h L ub^2 <= 2``, else ``inf``."""
        a, ub, h = self.step_alpha(grid=grid)
        prod = h * self.lip_act * ub * ub
        if self.integrator == "euler":
            return max(1.0, prod - 1.0)
        return 1.0 if prod <= 2.0 else float("inf")
