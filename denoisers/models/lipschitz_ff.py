"""A feed-forward 1-Lipschitz denoiser: ``D = (1 - theta) I + theta N``.

``N = C_L o sigma o C_{L-1} o ... o sigma o C_1`` is a plain CNN (in the style of 1-Lipschitz
spline networks): ``C_1: image_channels -> F``, ``C_2 .. C_{L-1}: F -> F``,
``C_L: F -> image_channels``, each a ``k x k`` convolution with bias and zero padding
(:class:`denoisers.layers.NormalizedConv2d`: the weight is used as ``W / max(1, s)``), and
``sigma`` an activation with Lipschitz constant ``L_sigma = 1``: ReLU, leaky ReLU, or a learnable
linear spline whose slopes are projected on ``[0, 1]`` (monotone, default) or, with
``spline_slope_min=-1``, on ``[-1, 1]`` (not monotone; allows the ``"absolute"`` initialisation
``|x|``). Unlike the Runge-Kutta blocks (where ``sigma`` must be the derivative of a convex
potential, hence monotone), this certificate only uses ``L_sigma``: a continuous piecewise-linear
function whose slopes all have ``|s| <= 1`` is 1-Lipschitz, monotone or not.

Certificate. Biases do not change Lipschitz constants, so

    Lip(N) <= prod_i ||C_i|| * L_sigma^(L-1) <= prod_i ub_i / max(1, s_i),

with ``ub_i`` the certified upper bound of the convolution norm
(:func:`denoisers.layers.conv_bounds.conv_opnorm_upper_bound`, valid for zero padding and every
image size) and ``s_i`` the frozen scale (``>= ub_i``), hence ``Lip(N) <= 1`` once frozen.
Averagedness, one line: ``N`` non-expansive means ``D = (1 - theta) I + theta N`` is by definition
``theta``-averaged (``alpha = theta``; ``theta = 1`` gives non-expansive only), and
``Lip(D) <= (1 - theta) + theta Lip(N) <= 1``. Unlike :class:`AveragedResNet`, ``N`` itself is
not averaged, so ``theta < 1`` is what makes ``D`` averaged (default 0.99).

During training each ``s_i`` follows a warm-started power-iteration estimate (one iteration per
training forward, inflated by the Bernstein sampling factor of the bound so that freezing barely
changes the function, see :mod:`denoisers.layers.normalized_conv`); :meth:`LipschitzFFNet.freeze`
replaces it by the certified bound.

Size. ``count_parameters`` of ``LipschitzFFNet(LipschitzFFConfig(features=64, depth=5))`` is
112,001 (grey images, ReLU), close to the zoo's ``AveragedConfig(channels=32, hidden=32,
depth=12)`` (110,976); hence the defaults ``features=64, depth=5``. A spline activation adds
``features * spline_knots`` parameters per activation (``4 * 64 * 33 = 8,448`` with the defaults).

The network is blind (not noise-conditional): ``sigma`` is checked but unused; other levels are
served by rescaling (:class:`denoisers.zoo.ScaledDenoiser`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from deepinv.models import Denoiser
from torch import nn

from denoisers.certificate import Certificate, LayerBound
from denoisers.layers.normalized_conv import NormalizedConv2d
from denoisers.layers.spline import LinearSpline, check_spline_args
from denoisers.models import gradient_step
from denoisers.models.averaged import _sigma_tensor, check_image

__all__ = ["LipschitzFFConfig", "LipschitzFFNet", "ExportedLipschitzFFNet", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (``nn.Parameter`` entries; buffers not counted)."""
    return int(sum(p.numel() for p in model.parameters()))


@dataclass(frozen=True)
class LipschitzFFConfig:
    """Architecture of a :class:`LipschitzFFNet` (serialised into checkpoints).

    ``depth`` is the number of convolutions ``L`` (>= 2), ``features`` the width ``F`` of the
    hidden layers; ``spline_*`` are used only with ``activation="spline"``. ``spline_slope_min``
    is the lower slope bound of the splines: ``0`` (default, monotone, slopes in ``[0, 1]``) or
    ``-1`` (slopes in ``[-1, 1]``, needed by ``spline_init="absolute"``); checkpoints written
    before the field existed load with the default.
    """

    family: ClassVar[str] = "lipschitz-ff"
    #: the network is blind: the noise level does not enter it (read by the zoo and the trainer)
    noise_conditional: ClassVar[bool] = False

    image_channels: int = 1
    features: int = 64
    depth: int = 5
    kernel_size: int = 3
    activation: str = "relu"
    spline_knots: int = 33
    spline_range: float = 1.0
    spline_init: str = "relu"
    spline_slope_min: float = 0.0
    theta: float = 0.99
    power_size: int = 32

    def __post_init__(self) -> None:
        for name in ("image_channels", "features", "depth", "kernel_size", "power_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.depth < 2:
            raise ValueError(f"depth must be >= 2 (number of convolutions), got {self.depth!r}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size!r}")
        if self.power_size < self.kernel_size:
            raise ValueError(f"power_size ({self.power_size}) must be >= kernel_size ({self.kernel_size})")
        # validated for every activation (only "spline" uses them), as in AveragedConfig
        check_spline_args(self.spline_knots, self.spline_range, self.spline_init, self.spline_slope_min)
        object.__setattr__(self, "spline_range", float(self.spline_range))
        object.__setattr__(self, "spline_slope_min", float(self.spline_slope_min))
        if self.activation not in gradient_step.ACTIVATIONS:
            raise ValueError(f"activation must be one of {gradient_step.ACTIVATIONS}, got {self.activation!r}")
        if not isinstance(self.theta, (int, float)) or isinstance(self.theta, bool) or not (0.0 < self.theta <= 1.0):
            raise ValueError(f"theta must be in (0, 1], got {self.theta!r}")
        object.__setattr__(self, "theta", float(self.theta))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LipschitzFFConfig":
        if not isinstance(d, dict):
            raise ValueError("architecture config must be a JSON object")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown architecture keys: {sorted(unknown)}")
        return cls(**d)


def _activation(cfg: LipschitzFFConfig) -> tuple[nn.Module, float]:
    if cfg.activation == "spline":
        # built here, not by gradient_step.make_activation: that one serves the Runge-Kutta
        # blocks and only makes monotone splines (slope_min = 0)
        spline = LinearSpline(
            cfg.features, knots=cfg.spline_knots, range_=cfg.spline_range, init=cfg.spline_init,
            slope_min=cfg.spline_slope_min,
        )
        return spline, 1.0
    return gradient_step.make_activation(cfg.activation)


def _activation_method(cfg: LipschitzFFConfig, lip: float) -> str:
    """Why the activation's Lipschitz bound holds (the certificate's layer text)."""
    if cfg.activation == "spline":
        if cfg.spline_slope_min < 0:
            return (
                f"spline: slopes projected into [{cfg.spline_slope_min:g}, 1] in every forward (not monotone); "
                f"continuous piecewise linear with |slope| <= 1, so Lipschitz constant {lip:g}"
            )
        return f"spline: slopes projected into [0, 1] in every forward: monotone, Lipschitz constant {lip:g}"
    return f"{cfg.activation}: monotone, Lipschitz constant {lip:g}"


class LipschitzFFNet(Denoiser):
    """Certified feed-forward denoiser ``(1 - theta) x + theta N(x)`` (see module docstring).

    ``forward(x, sigma)``: ``x`` of shape ``[B, image_channels, H, W]`` (float32 or float64),
    ``sigma`` a float, a ``[B]`` tensor or ``None`` (checked, unused).

    >>> net = LipschitzFFNet(LipschitzFFConfig(features=8, depth=3))
    >>> y = net(torch.rand(1, 1, 16, 16), 0.1)
    >>> cert = net.freeze(); cert.lipschitz_bound <= 1 and cert.alpha == 0.99
    True
    """

    def __init__(self, config: LipschitzFFConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = LipschitzFFConfig(**kwargs)
        elif kwargs:
            raise TypeError(f"pass either config or keyword arguments, not both: {sorted(kwargs)}")
        if not isinstance(config, LipschitzFFConfig):
            raise TypeError(f"config must be a LipschitzFFConfig, got {type(config).__name__}")
        self.config = config
        c, f, k = config.image_channels, config.features, config.kernel_size
        widths = [c] + [f] * (config.depth - 1) + [c]
        self.convs = nn.ModuleList(
            NormalizedConv2d(widths[i], widths[i + 1], kernel_size=k, power_size=config.power_size)
            for i in range(config.depth)
        )
        acts = [_activation(config) for _ in range(config.depth - 1)]
        self.acts = nn.ModuleList(a for a, _ in acts)
        self.act_lipschitz = [float(lip) for _, lip in acts]
        self.metadata: dict[str, Any] = {}
        self._cert_cache: tuple[int, Certificate] | None = None

    # ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        cfg = self.config
        check_image(x, cfg.image_channels)
        if sigma is not None:
            _sigma_tensor(sigma, x.shape[0], x)
        z = x
        for i, conv in enumerate(self.convs):
            z = conv(z)
            if i < len(self.acts):
                z = self.acts[i](z)
        if cfg.theta != 1.0:
            z = (1.0 - cfg.theta) * x + cfg.theta * z
        return z

    # ----------------------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return all(c.frozen for c in self.convs)

    @torch.no_grad()
    def freeze(self, *, grid: int = 64) -> Certificate:
        """Project spline coefficients, fix every scale to its certified bound; returns the
        certificate."""
        for m in self.modules():
            project = getattr(m, "project_", None)
            if callable(project):
                project()
        for c in self.convs:
            c.freeze(grid=grid)
        self._cert_cache = None
        return self.certificate

    def unfreeze(self) -> None:
        for c in self.convs:
            c.unfreeze()
        self._cert_cache = None

    def _param_version(self) -> int:
        # the estimate buffer is rewritten by every (eval) scale computation: not part of the key
        tensors = [*self.parameters(), *(b for n, b in self.named_buffers() if not n.endswith("norm_estimate"))]
        return hash(tuple((t.data_ptr(), t._version) for t in tensors))

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
        layers: list[LayerBound] = []
        lip_n = 1.0
        for i, conv in enumerate(self.convs):
            ub = conv.norm_upper_bound(grid=grid)
            b = conv.normalized_norm_bound(grid=grid)
            s = float(conv.norm_frozen) if conv.frozen else float(conv.norm_estimate)
            layers.append(LayerBound(
                name=f"convs.{i}",
                norm_bound=b,
                method=f"sup-frequency bound of ||W|| ({grid}x{grid} grid + Bernstein factor) = {ub:.6g}, "
                f"divided by max(1, s) with s={s:.6g} ({'frozen bound' if conv.frozen else 'power-iteration estimate'})",
            ))
            lip_n *= b
            if i < len(self.acts):
                lip_a = self.act_lipschitz[i]
                layers.append(LayerBound(
                    name=f"acts.{i}", norm_bound=lip_a,
                    method=_activation_method(cfg, lip_a),
                ))
                lip_n *= lip_a
        theta = cfg.theta
        if lip_n <= 1.0:
            alpha: float | None = theta
            lip = min(1.0, (1.0 - theta) + theta * lip_n)
            how = (
                f"N = {cfg.depth} normalised convolutions and {cfg.depth - 1} activations: "
                f"Lip(N) <= prod of certified layer bounds = {lip_n:.6g} <= 1; "
                f"D = (1 - theta) I + theta N is theta-averaged, theta={theta:g}"
            )
        else:
            alpha = None
            lip = (1.0 - theta) + theta * lip_n
            how = (
                f"Lip(N) <= prod of certified layer bounds = {lip_n:.6g} > 1: not certified averaged; "
                "Lipschitz bound (1 - theta) + theta Lip(N)"
            )
        notes = "zero padding; biases do not change Lipschitz constants"
        if cfg.activation == "spline":
            notes += (
                f"; learned spline activations, slopes projected into [{cfg.spline_slope_min:g}, 1] "
                "in every forward (L_sigma = 1)"
            )
        if not self.frozen:
            notes += "; NOT frozen: scales come from a power-iteration estimate"
        return Certificate(
            lipschitz_bound=lip if math.isfinite(lip) else 1e300,
            alpha=alpha,
            method=how,
            layers=tuple(layers),
            notes=notes,
            exact=alpha is not None and self.frozen,
        )

    # ----------------------------------------------------------------------------------------
    def export(self) -> "ExportedLipschitzFFNet":
        """Plain-layer copy for fast inference (normalisation folded into the weights)."""
        if not self.frozen:
            raise ValueError("export() needs a frozen network: call freeze() first")
        return ExportedLipschitzFFNet(self)


class ExportedLipschitzFFNet(Denoiser):
    """Inference copy of a frozen :class:`LipschitzFFNet`: plain convolutions with the weights
    ``W / max(1, s)`` folded in, the same activations and relaxation (same outputs and certificate)."""

    def __init__(self, net: LipschitzFFNet) -> None:
        super().__init__()
        self.config = net.config
        self.certificate = net.certificate
        self.metadata = dict(net.metadata)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        with torch.no_grad():
            for conv in net.convs:
                w = conv.normalized_weight().detach().clone()
                self.weights.append(nn.Parameter(w, requires_grad=False))
                self.biases.append(nn.Parameter(conv.bias.detach().clone(), requires_grad=False))
        self.acts = copy.deepcopy(net.acts)
        for p in self.acts.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        cfg = self.config
        check_image(x, cfg.image_channels)
        if sigma is not None:
            _sigma_tensor(sigma, x.shape[0], x)
        p = cfg.kernel_size // 2
        z = x
        for i in range(len(self.weights)):
            z = F.conv2d(z, self.weights[i].to(x.dtype), self.biases[i].to(x.dtype), padding=p)
            if i < len(self.acts):
                z = self.acts[i](z)
        if cfg.theta != 1.0:
            z = (1.0 - cfg.theta) * x + cfg.theta * z
        return z
