"""The certified averaged denoiser: a ResNet of gradient-step blocks.

``D(x) = (1 - theta) x + theta * N(x)``, ``N = P o B_m o ... o B_1 o E`` where

* ``E`` lifts ``C_img`` channels to ``C`` state channels by zero padding (an isometry); with
  ``pixel_unshuffle = r > 1`` it first zero-pads the image to a multiple of ``r`` (an isometry)
  and rearranges every ``r x r`` cell into channels (space-to-depth, a permutation of the pixels,
  so orthogonal): the blocks then run on ``C_img r^2`` channels at ``1/r`` of the resolution,
  ``r^2`` times the parameters and twice the receptive field for the same arithmetic per pixel,
* ``B_i`` are :class:`GradientStepConv` blocks (``alpha_i``-averaged Euler steps, or
  non-expansive Heun/RK4 steps),
* ``P`` keeps the first ``C_img r^2`` channels (norm <= 1), rearranges them back
  (depth-to-space) and crops the padding: ``P = E^T``.

If ``B = B_m o ... o B_1`` is ``alpha``-averaged, ``B = (1 - alpha) I + alpha R``, then
``P B E = (1 - alpha) I + alpha (P R E)`` with ``P R E`` non-expansive (``P E = I``), so ``N``
is ``alpha``-averaged too. The chain is averaged by Combettes-Yamada:
``alpha_B = m / (m - 1 + 1 / max_i alpha_i)``. The relaxation gives ``alpha_D = theta * alpha_N``
(``theta`` times 1 for non-expansive ``N``). The Lipschitz bound is ``1``.

The denoiser is ``deepinv.models.Denoiser``-compatible: ``D(x, sigma)`` with ``sigma`` a float or
a ``[B]`` tensor; with ``noise_conditional=True`` the noise level shifts biases only, which keeps
the certificate for every level. Otherwise ``sigma`` is checked but unused (the network was
trained for ``metadata['sigma']``; see :class:`denoisers.zoo.ScaledDenoiser` for other levels).

Variants (``AveragedConfig``; defaults give the network above):

* ``factors = F > 1``: each ``W_i`` is a *multi-convolution* ``C_F o ... o C_1`` of ``k x k``
  convolutions (``channels -> hidden -> ... -> hidden``), applied as the one zero-padded
  convolution with the composed ``(F (k - 1) + 1)``-wide kernel; its norm is certified from the
  composed kernel's frequency response, not as a product of the factors' norms.
* ``bias = False``: no biases (``W x`` enters the activation directly; with ``"odd_spline"``
  activations each block is the gradient step of an even potential, as in ridge regularisers).
* ``anchor = True``: blocks anchored to the input ``y``: ``z <- (1 - c_i) B_i(z) + c_i E y`` with a
  learned ``c_i in (0, 1)``; for Euler blocks this is ``z <- z - h'((z - E y) mu + W^T sigma(W z))``
  with ``h' = (1 - c) h`` and ``mu = c / h'``: a step on ``1/2 ||z - E y||^2 mu + R_i(z)``. The map
  ``y -> z_k`` is ``phi_k``-averaged with ``phi_0 = 0`` and
  ``phi_{k+1} = (1 - c_k) * CY(alpha_k, phi_k)``, ``CY(a, b) = (a + b - 2ab) / (1 - ab)`` the
  Combettes-Yamada averagedness of a composition: ``B_k o Phi_k`` is ``CY``-averaged, and
  ``(1 - c)((1 - b) I + b R) + c I = (1 - (1 - c) b) I + (1 - c) b R``. ``P (.) E`` keeps it.
* ``tied = True``: one block applied ``depth`` times (weight sharing; with ``anchor`` an
  unrolled proximal-gradient scheme), its step computed once per forward pass.

Activations: ReLU, leaky ReLU, or learned per-channel linear splines (``activation="spline"``,
:class:`denoisers.layers.spline.LinearSpline`), whose slopes are projected into ``[0, 1]`` in
every forward pass, so ``L_sigma = 1`` and the certificate above holds for any spline parameters.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from deepinv.models import Denoiser
from torch import nn

from denoisers.certificate import Certificate, LayerBound, compose_alpha
from denoisers.layers.spline import check_spline_args
from denoisers.models.gradient_step import ACTIVATIONS, GradientStepConv

__all__ = ["AveragedResNet", "AveragedConfig", "ExportedAveragedResNet"]


@dataclass(frozen=True)
class AveragedConfig:
    """Architecture of an :class:`AveragedResNet` (serialised into checkpoints)."""

    image_channels: int = 1
    channels: int = 32
    hidden: int = 32
    depth: int = 10
    kernel_size: int = 3
    alpha_block: float = 0.95
    activation: str = "relu"
    integrator: str = "euler"
    noise_conditional: bool = False
    theta: float = 1.0
    power_size: int = 32
    constrained: bool = True
    spline_knots: int = 33
    spline_range: float = 1.0
    spline_init: str = "relu"
    pixel_unshuffle: int = 1
    factors: int = 1
    bias: bool = True
    anchor: bool = False
    tied: bool = False

    def __post_init__(self) -> None:
        for name in ("image_channels", "channels", "hidden", "depth", "kernel_size", "power_size", "pixel_unshuffle",
                     "factors"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.channels < self.lifted_channels:
            raise ValueError(
                f"channels ({self.channels}) must be >= image_channels * pixel_unshuffle^2 "
                f"({self.image_channels} * {self.pixel_unshuffle}^2 = {self.lifted_channels})"
            )
        if not (0.0 < self.theta <= 1.0):
            raise ValueError(f"theta must be in (0, 1], got {self.theta!r}")
        if not (0.0 < self.alpha_block < 1.0):
            raise ValueError(f"alpha_block must be in (0, 1), got {self.alpha_block!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        for name in ("bias", "anchor", "tied"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.noise_conditional and not self.bias:
            raise ValueError("noise_conditional shifts the biases: it needs bias=True")
        if self.anchor and not self.constrained:
            raise ValueError("anchor needs constrained=True (its certificate composes certified steps)")
        # validated for every activation (they are only used by "spline"); old checkpoints
        # without these keys get the defaults through from_dict
        check_spline_args(self.spline_knots, self.spline_range, self.spline_init)
        object.__setattr__(self, "spline_range", float(self.spline_range))

    @property
    def lifted_channels(self) -> int:
        """Channels of the image after space-to-depth (``image_channels * pixel_unshuffle^2``)."""
        return self.image_channels * self.pixel_unshuffle**2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AveragedConfig":
        if not isinstance(d, dict):
            raise ValueError("architecture config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown architecture keys: {sorted(unknown)}")
        return cls(**d)


def _cy(a: float, b: float) -> float:
    """Combettes-Yamada: the composition of an ``a``- and a ``b``-averaged map is
    ``(a + b - 2ab) / (1 - ab)``-averaged (``a, b in [0, 1]``, not both 1; 1 when one is 1)."""
    if a >= 1.0 or b >= 1.0:
        return 1.0
    return (a + b - 2.0 * a * b) / (1.0 - a * b)


def anchored_alpha(alphas: list[float], anchors: list[float]) -> float:
    """Averagedness of ``y -> z_m`` for ``z_0 = y``, ``z_(k+1) = (1 - c_k) B_k(z_k) + c_k y`` with
    ``B_k`` ``alpha_k``-averaged (``alpha_k = 1``: non-expansive): ``phi_(k+1) = (1 - c_k)
    CY(alpha_k, phi_k)``, ``phi_0 = 0``. Rounded up by one ulp per step."""
    if len(alphas) != len(anchors):
        raise ValueError("one anchor weight per block")
    phi = 0.0
    for a, c in zip(alphas, anchors):
        if not (0.0 <= c < 1.0):
            raise ValueError(f"anchor weights must be in [0, 1), got {c!r}")
        phi = math.nextafter((1.0 - c) * _cy(a, phi), math.inf)
    return min(phi, 1.0)


def _sigma_tensor(sigma: Any, batch: int, like: torch.Tensor) -> torch.Tensor:
    if isinstance(sigma, torch.Tensor):
        s = sigma.detach().to(device=like.device, dtype=like.dtype).flatten()
        if s.numel() == 1:
            s = s.expand(batch)
        elif s.numel() != batch:
            raise ValueError(f"sigma must be a float or a [B] tensor with B={batch}, got shape {tuple(sigma.shape)}")
    else:
        try:
            s = torch.full((batch,), float(sigma), device=like.device, dtype=like.dtype)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"sigma must be a float or a tensor, got {type(sigma).__name__}") from exc
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"sigma must be finite and >= 0, got {s.tolist()}")
    return s


def lift(x: torch.Tensor, cfg: AveragedConfig) -> torch.Tensor:
    """``E x``: zero-pad to a multiple of ``r`` (bottom/right), space-to-depth, zero channels.

    Every step is an isometry, so ``||E x|| = ||x||`` and ``E^T E = I`` (:func:`project`)."""
    r = cfg.pixel_unshuffle
    z = x
    if r > 1:
        ph, pw = (-x.shape[-2]) % r, (-x.shape[-1]) % r
        if ph or pw:
            z = torch.nn.functional.pad(z, (0, pw, 0, ph))
        z = torch.nn.functional.pixel_unshuffle(z, r)
    c = z.shape[1]
    if cfg.channels > c:
        z = torch.cat([z, z.new_zeros(z.shape[0], cfg.channels - c, *z.shape[2:])], dim=1)
    return z


def project(z: torch.Tensor, cfg: AveragedConfig, shape: torch.Size) -> torch.Tensor:
    """``E^T z`` for an image of ``shape``: first channels, depth-to-space, crop."""
    r = cfg.pixel_unshuffle
    out = z[:, : cfg.lifted_channels]
    if r > 1:
        out = torch.nn.functional.pixel_shuffle(out, r)[..., : shape[-2], : shape[-1]]
    return out


def check_image(x: Any, channels: int) -> None:
    """The denoiser input contract (:func:`denoisers.contract.check_input`) with ``channels``."""
    from denoisers.contract import check_input

    check_input(x, channels=channels)


class AveragedResNet(Denoiser):
    """Certified averaged denoiser (see module docstring).

    >>> net = AveragedResNet(AveragedConfig(channels=8, hidden=8, depth=2))
    >>> y = net(torch.rand(1, 1, 16, 16), 0.1)
    >>> net.freeze(); net.certificate.alpha < 1
    True
    """

    def __init__(self, config: AveragedConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = AveragedConfig(**kwargs)
        elif kwargs:
            raise TypeError(f"pass either config or keyword arguments, not both: {sorted(kwargs)}")
        self.config = config
        self.blocks = nn.ModuleList(
            GradientStepConv(
                config.channels,
                config.hidden,
                kernel_size=config.kernel_size,
                alpha_target=config.alpha_block,
                activation=config.activation,
                integrator=config.integrator,  # type: ignore[arg-type]
                noise_conditional=config.noise_conditional,
                power_size=config.power_size,
                constrained=config.constrained,
                spline_knots=config.spline_knots,
                spline_range=config.spline_range,
                spline_init=config.spline_init,
                factors=config.factors,
                bias=config.bias,
            )
            for _ in range(1 if config.tied else config.depth)
        )
        if config.anchor:
            # c_i = sigmoid(a_i), initialised at 0.05
            self.anchor_logits = nn.Parameter(torch.full((config.depth,), math.log(0.05 / 0.95)))
        self.metadata: dict[str, Any] = {}
        self._cert_cache: tuple[int, Certificate] | None = None

    # ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        cfg = self.config
        check_image(x, cfg.image_channels)
        s = None
        if sigma is not None:
            s = _sigma_tensor(sigma, x.shape[0], x)
        elif cfg.noise_conditional:
            raise ValueError("sigma is required: this denoiser is noise-conditional")
        z = lift(x, cfg)
        y = z
        c = self.anchor_weights() if cfg.anchor else None
        shared = self.blocks[0].step_and_kernel() if cfg.tied else None
        for i, block in enumerate(self.sequence()):
            zn = block(z, s, step=shared)
            z = zn if c is None else (1.0 - c[i]).to(z.dtype) * zn + c[i].to(z.dtype) * y
        out = project(z, cfg, x.shape)
        if cfg.theta != 1.0:
            out = (1.0 - cfg.theta) * x + cfg.theta * out
        return out

    @torch.no_grad()
    def conjugate_scale_(self, c: float) -> "AveragedResNet":
        """Turn the network, in place, into ``x -> N(c x) / c`` (``c > 0``), exactly.

        Every block is ``v <- v - h W^T act(W v + b)`` (each Runge-Kutta stage too) and the lifting, anchoring
        and relaxation are linear, so with a positively homogeneous ``act`` (ReLU, leaky ReLU)
        ``N(c x) / c`` is the same network with every bias divided by ``c``: the weights, steps and certificate
        do not change. This is how a network trained at level ``s0`` serves ``s`` (``c = s0 / s``,
        :class:`denoisers.zoo.ScaledDenoiser`); ``pnp train --init`` starts a fine-tune to a new level from it.
        Refused for spline activations (not homogeneous) and noise-conditional networks (the level enters
        the biases).
        """
        c = float(c)
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"c must be a finite number > 0, got {c!r}")
        cfg = self.config
        if cfg.activation not in ("relu", "leaky_relu"):
            raise ValueError(f"conjugate_scale_ needs a positively homogeneous activation (relu, leaky_relu), "
                             f"not {cfg.activation!r}")
        if cfg.noise_conditional:
            raise ValueError("conjugate_scale_ does not apply to a noise-conditional network (sigma shifts its biases)")
        for b in self.blocks:
            if b.has_bias:
                b.bias.div_(c)
        return self

    def sequence(self) -> list[GradientStepConv]:
        """The blocks in the order applied (``depth`` of them; one block repeated when tied)."""
        return [self.blocks[0]] * self.config.depth if self.config.tied else list(self.blocks)

    def anchor_weights(self) -> torch.Tensor:
        """The anchor weights ``c_i = sigmoid(a_i)`` in ``(0, 1)`` (``anchor=True`` only)."""
        return torch.sigmoid(self.anchor_logits)

    # ----------------------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return all(b.frozen for b in self.blocks)

    def freeze(self, *, grid: int = 64) -> Certificate:
        """Re-derive every step size from certified upper bounds (and project spline
        activations, :meth:`GradientStepConv.freeze`); returns the certificate."""
        for b in self.blocks:
            b.freeze(grid=grid)
        self._cert_cache = None
        return self.certificate

    def unfreeze(self) -> None:
        for b in self.blocks:
            b.unfreeze()
        self._cert_cache = None

    def _param_version(self) -> int:
        return hash(tuple((p.data_ptr(), p._version) for p in self.parameters())) ^ hash(
            tuple(float(b.h_frozen) for b in self.blocks)
        )

    @property
    def certificate(self) -> Certificate:
        """Certificate from upper bounds of every layer (cached until parameters change)."""
        key = self._param_version()
        if self._cert_cache is not None and self._cert_cache[0] == key:
            return self._cert_cache[1]
        cert = self.compute_certificate()
        self._cert_cache = (key, cert)
        return cert

    def compute_certificate(self, *, grid: int = 64) -> Certificate:
        cfg = self.config
        layers = []
        alphas = []
        ok = True
        for i, b in enumerate(self.blocks):
            a, ub, h = b.step_alpha(grid=grid)
            kind = "sup-frequency bound" if b.factors == 1 else f"sup-frequency bound of the {b.factors}-factor composed kernel"
            layers.append(
                LayerBound(
                    name=f"blocks.{i}.weight",
                    norm_bound=ub,
                    method=f"{kind} ({grid}x{grid} grid + sampling slack); h={h:.6g}, "
                    f"{cfg.integrator} step alpha={a:.6g}",
                )
            )
            alphas.append(a)
        if cfg.tied:
            alphas = alphas * cfg.depth
        if cfg.anchor:
            if all(a <= 1.0 for a in alphas):
                cs = [float(v) for v in self.anchor_weights().detach().to(torch.float64)]
                alpha_chain = anchored_alpha(alphas, cs)
                how = (
                    f"{cfg.depth} {cfg.integrator} steps anchored to the input, z <- (1 - c_i) B_i(z) + c_i E y "
                    f"(c_i in [{min(cs):.4g}, {max(cs):.4g}]); alpha_i of B_i from certified upper bounds of ||W_i||; "
                    "the map y -> z_k is phi_k-averaged, phi_0 = 0, phi_(k+1) = (1 - c_k) CY(alpha_k, phi_k)"
                )
            else:
                ok = False
                alpha_chain = None
                how = "some step is not averaged/non-expansive: the anchored chain is not certified"
        elif cfg.integrator == "euler":
            if all(a < 1.0 for a in alphas):
                alpha_chain = compose_alpha(alphas)
                how = (
                    f"{cfg.depth} Euler gradient steps, alpha_i = h_i L ||W_i||^2 / 2 with certified "
                    "upper bounds of ||W_i||; chain alpha by Combettes-Yamada m/(m-1+1/max alpha_i)"
                )
            else:
                ok = False
                alpha_chain = None
                how = (
                    "some Euler step has h L ||W||^2 >= 2: not averaged; Lipschitz bound is the "
                    "product of max(1, h_i L ||W_i||^2 - 1)"
                )
        else:
            if all(a <= 1.0 for a in alphas):
                alpha_chain = 1.0
                how = f"{cfg.depth} {cfg.integrator} steps with h L ||W||^2 <= 2: non-expansive"
            else:
                ok = False
                alpha_chain = None
                how = f"some {cfg.integrator} step has h L ||W||^2 > 2: not certified"
        alpha = None if alpha_chain is None else cfg.theta * alpha_chain
        if alpha is not None and cfg.theta < 1.0:
            how += f"; final relaxation theta={cfg.theta} gives alpha = theta * alpha_N"
        lip = 1.0
        if not ok:
            lip = 1.0
            cs = [float(v) for v in self.anchor_weights().detach()] if cfg.anchor else [0.0] * cfg.depth
            for b, ci in zip(self.sequence(), cs):
                lip = (1.0 - ci) * b.lipschitz_bound(grid=grid) * lip + ci
            lip = (1.0 - cfg.theta) + cfg.theta * lip
        notes = "lifting by zero channels (isometry) and projection on the first channels (norm 1)"
        if cfg.pixel_unshuffle > 1:
            notes += (
                f"; space-to-depth by {cfg.pixel_unshuffle} after zero padding to a multiple of it "
                "(a permutation: orthogonal) and its inverse after the blocks"
            )
        if not self.frozen:
            notes += "; NOT frozen: steps come from a power-iteration estimate"
        if cfg.activation in ("spline", "odd_spline"):
            notes += "; learned spline activations, slopes projected into [0, 1] in every forward (L_sigma = 1)"
        if cfg.tied:
            notes += f"; one block applied {cfg.depth} times (tied weights)"
        if not cfg.constrained:
            notes += "; UNCONSTRAINED baseline: free step sizes, certificate only reports what they give"
        return Certificate(
            lipschitz_bound=lip if math.isfinite(lip) else 1e300,
            alpha=alpha if (alpha is not None and alpha <= 1.0) else None,
            method=how,
            layers=tuple(layers),
            notes=notes,
            exact=ok and self.frozen,
        )

    # ----------------------------------------------------------------------------------------
    def export(self) -> "ExportedAveragedResNet":
        """Plain-layer copy for fast inference (no power iteration, step folded into weights)."""
        if not self.frozen:
            raise ValueError("export() needs a frozen network: call freeze() first")
        return ExportedAveragedResNet(self)


class ExportedAveragedResNet(Denoiser):
    """Inference-only network with ``h`` folded in: ``x - (h W)^T sigma(W x + b)``.

    Each block keeps its own activation (a frozen copy: learned splines differ per block)."""

    def __init__(self, net: AveragedResNet) -> None:
        super().__init__()
        self.config = net.config
        self.certificate = net.certificate
        self.metadata = dict(net.metadata)
        self.weights = nn.ParameterList()
        self.scaled = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.bias_sigmas = nn.ParameterList()
        for b in net.blocks:
            w = b.kernel().detach().clone()
            self.weights.append(nn.Parameter(w, requires_grad=False))
            self.scaled.append(nn.Parameter(w * b.h_frozen, requires_grad=False))
            self.biases.append(nn.Parameter(b.bias.detach().clone(), requires_grad=False))
            if b.noise_conditional:
                self.bias_sigmas.append(nn.Parameter(b.bias_sigma.detach().clone(), requires_grad=False))
        self.h = [float(b.h_frozen) for b in net.blocks]
        self.acts = nn.ModuleList(copy.deepcopy(b.act) for b in net.blocks)
        self.acts.requires_grad_(False)
        # the order the blocks are applied in (one block repeated when tied), and the anchors
        self.order = [0] * self.config.depth if self.config.tied else list(range(len(self.weights)))
        self.anchors = [float(c) for c in net.anchor_weights().detach()] if self.config.anchor else None

    @torch.no_grad()
    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        import torch.nn.functional as F

        cfg = self.config
        check_image(x, cfg.image_channels)
        s = _sigma_tensor(sigma, x.shape[0], x) if sigma is not None else None
        if cfg.noise_conditional and s is None:
            raise ValueError("sigma is required: this denoiser is noise-conditional")
        z = lift(x, cfg)
        y = z
        for k, i in enumerate(self.order):
            w = self.weights[i].to(x.dtype)
            p = w.shape[-1] // 2
            ws = self.scaled[i].to(x.dtype)
            b = self.biases[i].to(x.dtype).view(1, -1, 1, 1)
            if cfg.noise_conditional:
                b = b + s.view(-1, 1, 1, 1) * self.bias_sigmas[i].to(x.dtype).view(1, -1, 1, 1)
            act = self.acts[i]
            if cfg.integrator == "euler":
                z = z - F.conv_transpose2d(act(F.conv2d(z, w, padding=p) + b), ws, padding=p)
            else:
                h = self.h[i]
                g = lambda v: F.conv_transpose2d(act(F.conv2d(v, w, padding=p) + b), w, padding=p)  # noqa: E731
                if cfg.integrator == "heun":
                    k1 = g(z)
                    k2 = g(z - h * k1)
                    z = z - 0.5 * h * (k1 + k2)
                else:
                    k1 = g(z)
                    k2 = g(z - 0.5 * h * k1)
                    k3 = g(z - 0.5 * h * k2)
                    k4 = g(z - h * k3)
                    z = z - (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
            if self.anchors is not None:
                z = (1.0 - self.anchors[k]) * z + self.anchors[k] * y
        out = project(z, cfg, x.shape)
        if cfg.theta != 1.0:
            out = (1.0 - cfg.theta) * x + cfg.theta * out
        return out
