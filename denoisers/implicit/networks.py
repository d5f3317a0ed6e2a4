"""l-inf contractive implicit (equilibrium) networks, dense and convolutional.

Model::

    x = Phi(A x + B u + b)          (state, the unique fixed point)
    y = C x + D u + c               (output)

with ``Phi`` elementwise, monotone, slopes in ``[0, 1]`` (ReLU by default) and ``A`` parametrised
so that ``mu_{inf,eta}(A) <= gamma < 1`` for every value of the free parameters (see
:mod:`denoisers.implicit.measures`). Then the fixed point exists, is unique, the average
iteration converges to it from every start (step ``a = 1 / (1 - min_i min(a_ii, 0))``, factor
``rho = 1 - a (1 - mu^+)``), gradients come from the adjoint fixed point (implicit
differentiation, :mod:`denoisers.implicit.fixed_point`), and the input-output Lipschitz constants
are certified (:mod:`denoisers.implicit.certificate`).

Example::

    >>> import torch
    >>> net = LinfImplicitNetwork(64, 32, 10, gamma=0.5)
    >>> y = net(torch.rand(5, 64))
    >>> y.shape, net.last_forward_info.converged
    (torch.Size([5, 10]), True)
    >>> net.certificate.lipschitz_linf > 0
    True

When the forward solve stops without converging (budget ``solver.max_iter`` exhausted, or a
non-finite residual) the network warns with :class:`~denoisers.implicit.exceptions.ConvergenceWarning`
and ``last_forward_info.converged`` is False; the returned state is the last iterate.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from denoisers.implicit.certificate import ImplicitCertificate
from denoisers.implicit.exceptions import ConvergenceWarning
from denoisers.implicit.fixed_point import FixedPointConfig, FixedPointInfo, implicit_fixed_point
from denoisers.implicit.measures import (
    _check_gamma,
    average_step,
    conv_kernel_measure_1,
    conv_kernel_measure_inf,
    conv_kernel_norm_1,
    conv_kernel_norm_inf,
    conv_linf_contractive_kernel,
    linf_contractive_matrix,
    matrix_measure_1,
    matrix_measure_inf,
    norm_2_to_inf,
    norm_inf,
)

__all__ = ["LinfImplicitNetwork", "ConvLinfImplicitNetwork", "IMPLICIT_ACTIVATIONS"]

IMPLICIT_ACTIVATIONS = ("relu", "leaky_relu", "tanh")


def _make_phi(name: str, negative_slope: float) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "relu":
        return torch.relu
    if name == "leaky_relu":
        if not (0.0 <= negative_slope <= 1.0):
            raise ValueError(f"negative_slope must be in [0, 1], got {negative_slope!r}")
        return lambda v: F.leaky_relu(v, negative_slope)
    if name == "tanh":
        return torch.tanh
    raise ValueError(f"activation must be one of {IMPLICIT_ACTIVATIONS}, got {name!r}")


def _check_values(name: str, t: torch.Tensor) -> None:
    """``t`` (already shape-checked) must be non-empty and finite."""
    if t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty batch, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t.detach()).all()):
        bad = int((~torch.isfinite(t.detach())).sum())
        raise ValueError(f"{name} must be finite, got {bad} non-finite value(s) (NaN or Inf) in shape {tuple(t.shape)}")


def _not_converged_message(owner: str, info: FixedPointInfo, config: FixedPointConfig) -> str:
    if math.isfinite(info.residual):
        why = f"budget exhausted after {info.iterations} iterations (max_iter={config.max_iter})"
    else:
        why = f"non-finite residual after {info.iterations} iterations (max_iter={config.max_iter})"
    return (f"{owner}: forward fixed-point solve did not converge: {why}, "
            f"l-inf residual {info.residual:.3e} > tol {config.tol:.3e}; returning the last iterate")


def _check_positive_int(name: str, v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return v


class _ImplicitBase(nn.Module):
    def _setup_common(self, gamma: float, activation: str, negative_slope: float,
                      solver: FixedPointConfig) -> None:
        self.gamma = _check_gamma(gamma)
        self.activation = activation
        self.negative_slope = float(negative_slope)
        self.phi = _make_phi(activation, negative_slope)
        if not isinstance(solver, FixedPointConfig):
            raise TypeError(f"solver must be a FixedPointConfig, got {type(solver).__name__}")
        self.solver = solver
        self.last_info: dict[str, FixedPointInfo] = {}

    @property
    def last_forward_info(self) -> FixedPointInfo | None:
        """Iterations / residual / convergence of the last forward solve."""
        return self.last_info.get("forward")

    @property
    def last_backward_info(self) -> FixedPointInfo | None:
        """Iterations / residual of the last adjoint solve (after ``backward``)."""
        return self.last_info.get("backward")


class LinfImplicitNetwork(_ImplicitBase):
    """Dense implicit network ``x = Phi(A x + B u + b)``, ``y = C x + D u + c``.

    Parameters
    ----------
    in_features, state_features, out_features: ``m``, ``n``, ``p``.
    gamma: bound of the (weighted) l-inf matrix measure of ``A``, in ``[0, 1)``.
    weighted: learn positive weights ``eta = exp(log_eta)`` and use the weighted measure
        ``mu_{inf,eta}(A) = max_i (a_ii + sum_{j != i} |a_ij| eta_j / eta_i)`` (a larger well-posed set).
    activation: "relu" (default), "leaky_relu" or "tanh" (monotone, slopes in [0, 1]).
    skip: include the direct term ``D u``.
    solver: :class:`FixedPointConfig` (tolerance on ``||f(x) - x||_inf``, budget, Anderson memory).

    Shapes: ``u`` is ``[N, m]`` (float32 or float64), the output ``[N, p]``.
    """

    def __init__(
        self,
        in_features: int,
        state_features: int,
        out_features: int,
        *,
        gamma: float = 0.5,
        weighted: bool = False,
        activation: str = "relu",
        negative_slope: float = 0.01,
        skip: bool = True,
        solver: FixedPointConfig = FixedPointConfig(),
        init_scale: float = 0.5,
    ) -> None:
        super().__init__()
        m = _check_positive_int("in_features", in_features)
        n = _check_positive_int("state_features", state_features)
        p = _check_positive_int("out_features", out_features)
        self._setup_common(gamma, activation, negative_slope, solver)
        self.in_features, self.state_features, self.out_features = m, n, p
        self.T = nn.Parameter(torch.randn(n, n) * (init_scale / n))
        lin_b = nn.Linear(m, n)
        lin_c = nn.Linear(n, p)
        self.B = nn.Parameter(lin_b.weight.detach().clone())
        self.b = nn.Parameter(lin_b.bias.detach().clone())
        self.C = nn.Parameter(lin_c.weight.detach().clone())
        self.c = nn.Parameter(lin_c.bias.detach().clone())
        # small random D (a zero matrix has a degenerate SVD: NaN gradients of ||D||_2)
        self.D = nn.Parameter(nn.Linear(m, p).weight.detach().clone() * 0.1) if skip else None
        self.log_eta = nn.Parameter(torch.zeros(n)) if weighted else None

    @property
    def eta(self) -> torch.Tensor | None:
        return None if self.log_eta is None else self.log_eta.exp()

    @property
    def A(self) -> torch.Tensor:
        """``gamma I + T - diag(|T| eta / eta)`` (``mu_{inf,eta}(A) <= gamma``)."""
        return linf_contractive_matrix(self.T, gamma=self.gamma, eta=self.eta)

    def _check_input(self, u: torch.Tensor) -> None:
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"u must be a torch.Tensor, got {type(u).__name__}")
        if u.ndim != 2 or u.shape[1] != self.in_features:
            raise ValueError(f"u must have shape [N, {self.in_features}], got {tuple(u.shape)}")
        if not u.is_floating_point():
            raise TypeError(f"u must be a floating-point tensor, got {u.dtype}")
        _check_values("u", u)

    def equilibrium(self, u: torch.Tensor, *, x0: torch.Tensor | None = None) -> torch.Tensor:
        """The state ``x*`` (``[N, n]``), differentiable by implicit differentiation.

        ``x0`` is the start of the iteration (zeros by default); the limit does not depend on it.
        ``u`` and ``x0`` must be non-empty and finite (``ValueError``). Warns with
        :class:`ConvergenceWarning` when the solve stops before ``||f(x) - x||_inf <= solver.tol``.
        """
        self._check_input(u)
        A = self.A.to(u.dtype)
        z = u @ self.B.to(u.dtype).T + self.b.to(u.dtype)
        step = float(average_step(torch.diagonal(A.detach())))
        if x0 is None:
            x0 = torch.zeros(u.shape[0], self.state_features, dtype=u.dtype, device=u.device)
        elif x0.shape != (u.shape[0], self.state_features):
            raise ValueError(f"x0 must have shape {(u.shape[0], self.state_features)}, got {tuple(x0.shape)}")
        else:
            _check_values("x0", x0)
        phi = self.phi

        def fn(x, zz, params):
            return phi(x @ params[0].T + zz)

        x, sink = implicit_fixed_point(fn, z, (A,), x0=x0, step=step, config=self.solver)
        self.last_info = sink
        if not sink["forward"].converged:
            warnings.warn(_not_converged_message(type(self).__name__, sink["forward"], self.solver),
                          ConvergenceWarning, stacklevel=2)
        return x

    def readout(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        y = x @ self.C.to(u.dtype).T + self.c.to(u.dtype)
        if self.D is not None:
            y = y + u @ self.D.to(u.dtype).T
        return y

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.readout(self.equilibrium(u), u)

    def lipschitz_bounds(self, *, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Differentiable bounds (tensors): ``linf``, ``l2_to_linf``, ``l2``, and ``mu``, ``mu_1``.

        Usable as training regularisers; :attr:`certificate` evaluates them in float64
        (``dtype=torch.float64``: parameters are cast before any arithmetic).
        """
        dt = dtype or self.T.dtype
        T, B, C = self.T.to(dt), self.B.to(dt), self.C.to(dt)
        eta = None if self.log_eta is None else self.log_eta.to(dt).exp()
        A = linf_contractive_matrix(T, gamma=self.gamma, eta=eta)
        if eta is None:
            Ap, Bp, Cp = A, B, C
        else:
            Ap = A * eta[None, :] / eta[:, None]
            Bp = B / eta[:, None]
            Cp = C * eta[None, :]
        mu = matrix_measure_inf(Ap)
        mu1 = matrix_measure_1(Ap)
        D = self.D.to(dt) if self.D is not None else torch.zeros(self.out_features, self.in_features,
                                                                 dtype=dt, device=A.device)
        g = 1.0 / (1.0 - mu)
        linf = norm_inf(Cp) * norm_inf(Bp) * g + norm_inf(D)
        l2inf = norm_inf(Cp) * norm_2_to_inf(Bp) * g + norm_2_to_inf(D)
        conv_b = math.sqrt(self.out_features) * l2inf
        if float(mu1.detach()) < 1.0:
            interp = (torch.linalg.matrix_norm(Cp, ord=2) * torch.linalg.matrix_norm(Bp, ord=2)
                      / torch.sqrt((1.0 - mu) * (1.0 - mu1)) + torch.linalg.matrix_norm(D, ord=2))
            l2 = torch.minimum(conv_b, interp)
        else:
            interp = None
            l2 = conv_b
        out = {"linf": linf, "l2_to_linf": l2inf, "l2": l2, "l2_conversion": conv_b, "mu": mu, "mu_1": mu1}
        if interp is not None:
            out["l2_interpolation"] = interp
        return out

    @property
    def certificate(self) -> ImplicitCertificate:
        """Certified bounds of the current weights (read-only; see :meth:`compute_certificate`)."""
        return self.compute_certificate()

    @torch.no_grad()
    def compute_certificate(self) -> ImplicitCertificate:
        """Certified bounds from the current weights, evaluated in float64 (upper bounds by construction)."""
        bd = self.lipschitz_bounds(dtype=torch.float64)
        mu = float(bd["mu"])
        eta = None if self.log_eta is None else self.log_eta.double().exp()
        A = linf_contractive_matrix(self.T.double(), gamma=self.gamma, eta=eta)
        step = float(average_step(torch.diagonal(A)))
        rho = 1.0 - step * (1.0 - max(mu, 0.0))
        interp = bd.get("l2_interpolation")
        method_l2 = ("interpolation ||M||_2 <= sqrt(||M||_1 ||M||_inf)"
                     if interp is not None and float(interp) <= float(bd["l2_conversion"])
                     else "norm conversion ||y||_2 <= sqrt(p) ||y||_inf, ||u||_inf <= ||u||_2")
        weighted = self.log_eta is not None
        return ImplicitCertificate(
            lipschitz_linf=float(bd["linf"]),
            lipschitz_l2=float(bd["l2"]),
            lipschitz_l2_to_linf=float(bd["l2_to_linf"]),
            gamma=self.gamma,
            mu=mu,
            mu_1=float(bd["mu_1"]),
            step=step,
            contraction=rho,
            method=("||C'||_inf ||B'||_inf / (1 - mu) + ||D||_inf with mu = mu_inf"
                    + (",eta" if weighted else "") + "(A) computed in float64 from the materialised A"),
            method_l2=method_l2,
            notes="bounds of the exact equilibrium; the computed one is within residual / (1 - mu^+) in l-inf",
            exact=False,
        )


class ConvLinfImplicitNetwork(_ImplicitBase):
    """Convolutional implicit network on feature maps: ``A``, ``B``, ``C``, ``D`` are
    ``k x k`` convolutions (stride 1, same size).

    ``A``'s kernel is :func:`conv_linf_contractive_kernel` of a free kernel, so the materialised
    operator has ``mu_inf <= gamma`` at every image size (zero padding: boundary rows lose terms;
    circular padding: images must be at least ``k x k``). The l-inf bound uses kernel row sums,
    valid for every size; the l2 bound uses the interpolation inequality with
    ``||K||_2 <= sqrt(||K||_1 ||K||_inf)`` per convolution (size independent) and needs
    ``mu_1 < 1`` (otherwise ``lipschitz_l2`` is None).

    Shapes: ``u`` is ``[N, C_in, H, W]``, the output ``[N, C_out, H, W]``.
    """

    def __init__(
        self,
        in_channels: int,
        state_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        gamma: float = 0.5,
        padding: Literal["zeros", "circular"] = "zeros",
        activation: str = "relu",
        negative_slope: float = 0.01,
        skip: bool = True,
        solver: FixedPointConfig = FixedPointConfig(),
        init_scale: float = 0.5,
    ) -> None:
        super().__init__()
        ci = _check_positive_int("in_channels", in_channels)
        cs = _check_positive_int("state_channels", state_channels)
        co = _check_positive_int("out_channels", out_channels)
        k = _check_positive_int("kernel_size", kernel_size)
        if k % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {k}")
        if padding not in ("zeros", "circular"):
            raise ValueError(f"padding must be 'zeros' or 'circular', got {padding!r}")
        self._setup_common(gamma, activation, negative_slope, solver)
        self.in_channels, self.state_channels, self.out_channels = ci, cs, co
        self.kernel_size, self.padding = k, padding
        self.T = nn.Parameter(torch.randn(cs, cs, k, k) * (init_scale / (cs * k * k)))
        conv_b = nn.Conv2d(ci, cs, k)
        conv_c = nn.Conv2d(cs, co, k)
        self.B = nn.Parameter(conv_b.weight.detach().clone())
        self.b = nn.Parameter(conv_b.bias.detach().clone())
        self.C = nn.Parameter(conv_c.weight.detach().clone())
        self.c = nn.Parameter(conv_c.bias.detach().clone())
        self.D = nn.Parameter(nn.Conv2d(ci, co, k).weight.detach().clone() * 0.1) if skip else None

    @property
    def A(self) -> torch.Tensor:
        """The kernel of ``A`` (``[C_s, C_s, k, k]``), interior row measure ``<= gamma``."""
        return conv_linf_contractive_kernel(self.T, gamma=self.gamma)

    def _conv(self, x: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size // 2
        if self.padding == "zeros":
            return F.conv2d(x, K, padding=p)
        return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), K)

    def _check_input(self, u: torch.Tensor) -> None:
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"u must be a torch.Tensor, got {type(u).__name__}")
        if u.ndim != 4 or u.shape[1] != self.in_channels:
            raise ValueError(f"u must have shape [N, {self.in_channels}, H, W], got {tuple(u.shape)}")
        if not u.is_floating_point():
            raise TypeError(f"u must be a floating-point tensor, got {u.dtype}")
        if self.padding == "circular" and min(u.shape[-2:]) < self.kernel_size:
            raise ValueError(
                f"circular padding needs H, W >= kernel_size={self.kernel_size}, got {tuple(u.shape[-2:])}"
            )
        _check_values("u", u)

    def equilibrium(self, u: torch.Tensor, *, x0: torch.Tensor | None = None) -> torch.Tensor:
        """The state ``x*`` (``[N, C_s, H, W]``), differentiable by implicit differentiation.

        ``x0`` is the start of the iteration (zeros by default); the limit does not depend on it.
        ``u`` and ``x0`` must be non-empty and finite (``ValueError``). Warns with
        :class:`ConvergenceWarning` when the solve stops before ``||f(x) - x||_inf <= solver.tol``.
        """
        self._check_input(u)
        K = self.A.to(u.dtype)
        z = self._conv(u, self.B.to(u.dtype)) + self.b.to(u.dtype)[None, :, None, None]
        ctr = self.kernel_size // 2
        step = float(average_step(torch.diagonal(K.detach()[:, :, ctr, ctr])))
        if x0 is None:
            x0 = torch.zeros_like(z)
        elif x0.shape != z.shape:
            raise ValueError(f"x0 must have shape {tuple(z.shape)}, got {tuple(x0.shape)}")
        else:
            _check_values("x0", x0)
        phi, conv = self.phi, self._conv

        def fn(x, zz, params):
            return phi(conv(x, params[0]) + zz)

        x, sink = implicit_fixed_point(fn, z, (K,), x0=x0, step=step, config=self.solver)
        self.last_info = sink
        if not sink["forward"].converged:
            warnings.warn(_not_converged_message(type(self).__name__, sink["forward"], self.solver),
                          ConvergenceWarning, stacklevel=2)
        return x

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = self.equilibrium(u)
        y = self._conv(x, self.C.to(u.dtype)) + self.c.to(u.dtype)[None, :, None, None]
        if self.D is not None:
            y = y + self._conv(u, self.D.to(u.dtype))
        return y

    def lipschitz_bounds(self, *, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Differentiable size-independent bounds (``linf``, ``l2_to_linf``, ``l2`` if ``mu_1 < 1``)."""
        dt = dtype or self.T.dtype
        K = conv_linf_contractive_kernel(self.T.to(dt), gamma=self.gamma)
        B, C = self.B.to(dt), self.C.to(dt)
        mu = conv_kernel_measure_inf(K)
        mu1 = conv_kernel_measure_1(K)
        D = self.D.to(dt) if self.D is not None else torch.zeros(
            self.out_channels, self.in_channels, self.kernel_size, self.kernel_size, dtype=dt, device=B.device)
        g = 1.0 / (1.0 - mu)
        linf = conv_kernel_norm_inf(C) * conv_kernel_norm_inf(B) * g + conv_kernel_norm_inf(D)

        def row_l2(W: torch.Tensor) -> torch.Tensor:
            return W.pow(2).sum(dim=(1, 2, 3)).sqrt().max()

        l2inf = conv_kernel_norm_inf(C) * row_l2(B) * g + row_l2(D)
        out = {"linf": linf, "l2_to_linf": l2inf, "mu": mu, "mu_1": mu1}
        if float(mu1.detach()) < 1.0:
            def schur(W: torch.Tensor) -> torch.Tensor:
                return torch.sqrt(conv_kernel_norm_1(W) * conv_kernel_norm_inf(W))

            out["l2"] = schur(C) * schur(B) / torch.sqrt((1.0 - mu) * (1.0 - mu1)) + schur(D)
        return out

    @property
    def certificate(self) -> ImplicitCertificate:
        """Certified size-independent bounds of the current weights (read-only; see :meth:`compute_certificate`)."""
        return self.compute_certificate()

    @torch.no_grad()
    def compute_certificate(self) -> ImplicitCertificate:
        """Certified bounds from the current kernels, evaluated in float64 (every image size)."""
        bd = self.lipschitz_bounds(dtype=torch.float64)
        mu = float(bd["mu"])
        ctr = self.kernel_size // 2
        K = conv_linf_contractive_kernel(self.T.double(), gamma=self.gamma)
        step = float(average_step(torch.diagonal(K[:, :, ctr, ctr])))
        l2 = bd.get("l2")
        return ImplicitCertificate(
            lipschitz_linf=float(bd["linf"]),
            lipschitz_l2=None if l2 is None else float(l2),
            lipschitz_l2_to_linf=float(bd["l2_to_linf"]),
            gamma=self.gamma,
            mu=mu,
            mu_1=float(bd["mu_1"]),
            step=step,
            contraction=1.0 - step * (1.0 - max(mu, 0.0)),
            method="kernel row sums (upper bounds of the materialised operator's, every image size)",
            method_l2=("interpolation ||M||_2 <= sqrt(||M||_1 ||M||_inf) per convolution"
                       if l2 is not None else "none: mu_1(A) >= 1"),
            notes="bounds of the exact equilibrium; the computed one is within residual / (1 - mu^+) in l-inf",
            exact=False,
        )
