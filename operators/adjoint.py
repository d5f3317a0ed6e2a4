r"""Adjoint test and power-iteration norm estimate for any linear operator with ``A``/``A_adjoint``.

The adjoint test draws ``x`` and ``y`` i.i.d. standard normal and reports the relative error

.. math::

    \varepsilon = \frac{|\langle A x, y\rangle - \langle x, A^\top y\rangle|}
                       {\|A\|\,\|x\|\,\|y\|}

(the worst over ``trials`` draws), which is scale-free: round-off alone gives about the unit
round-off of ``dtype`` times a small factor (float64: ~1e-16).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["AdjointCheck", "check_adjoint", "estimate_opnorm"]

_DEFAULT_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@dataclass(frozen=True)
class AdjointCheck:
    """Result of :func:`check_adjoint`.

    :ivar relative_error: worst ``|<Ax,y> - <x,A^T y>| / (||A|| ||x|| ||y||)`` over the trials.
    :ivar passed: ``relative_error < tolerance``.
    :ivar tolerance: threshold used (float64: 1e-10, float32: 1e-5 by default).
    :ivar opnorm: the ``||A||`` used in the denominator.
    :ivar opnorm_source: ``"opnorm"`` (the operator's own ``opnorm()``) or ``"power_iteration"``.
    :ivar trials: number of random pairs.
    :ivar shape: input shape tested.
    :ivar dtype: dtype tested, e.g. ``"torch.float64"``.
    """

    relative_error: float
    passed: bool
    tolerance: float
    opnorm: float
    opnorm_source: str
    trials: int
    shape: tuple[int, ...]
    dtype: str


def _default_device(op: Any) -> torch.device:
    if isinstance(op, torch.nn.Module):
        for t in list(op.buffers()) + list(op.parameters()):
            return t.device
    return torch.device("cpu")


def _operator_norm(op: Any, shape: tuple[int, ...]) -> float | None:
    fn = getattr(op, "opnorm", None)
    if not callable(fn):
        return None
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    value = fn(image_size=tuple(shape[-2:])) if "image_size" in params else fn()
    return float(value)


def estimate_opnorm(
    op: Any,
    shape: tuple[int, ...],
    *,
    iters: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> float:
    """Power iteration on ``A^T A`` from a seeded random start; returns ``sqrt`` of the last
    Rayleigh quotient, an estimate of ``||A||_2`` that is a **lower bound** (up to round-off):
    never use it alone where an upper bound is needed (step-size certificates).
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters!r}")
    device = torch.device(device) if device is not None else _default_device(op)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    v = torch.randn(tuple(shape), generator=gen, dtype=dtype).to(device)
    v = v / v.norm()
    value = 0.0
    for _ in range(int(iters)):
        w = op.A_adjoint(op.A(v))
        value = float((v * w).sum())
        nrm = w.norm()
        if float(nrm) == 0.0:
            return 0.0
        v = w / nrm
    return max(value, 0.0) ** 0.5


def check_adjoint(
    op: Any,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    trials: int = 3,
    tol: float | None = None,
    device: torch.device | str | None = None,
) -> AdjointCheck:
    """Dot-product test of ``op.A_adjoint`` against ``op.A`` on inputs of ``shape``.

    ``||A||`` is ``op.opnorm(image_size=shape[-2:])`` (or ``op.opnorm()``) when the operator has
    one, else a power-iteration estimate (:func:`estimate_opnorm`, 50 iterations).

    >>> import torch
    >>> from operators import FFTBlur, check_adjoint
    >>> check_adjoint(FFTBlur(torch.ones(4, 4) / 16), (2, 3, 17, 16)).passed
    True
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials!r}")
    shape = tuple(int(s) for s in shape)
    device = torch.device(device) if device is not None else _default_device(op)
    tolerance = float(tol) if tol is not None else _DEFAULT_TOL.get(dtype, 1e-2)
    norm = _operator_norm(op, shape)
    source = "opnorm"
    if norm is None:
        norm = estimate_opnorm(op, shape, iters=50, seed=seed, dtype=dtype, device=device)
        source = "power_iteration"
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    worst = 0.0
    for _ in range(int(trials)):
        x = torch.randn(shape, generator=gen, dtype=dtype).to(device)
        ax: Tensor = op.A(x)
        y = torch.randn(tuple(ax.shape), generator=gen, dtype=dtype).to(device)
        aty: Tensor = op.A_adjoint(y)
        lhs = (ax * y).sum()
        rhs = (x * aty).sum()
        denom = norm * float(x.norm()) * float(y.norm())
        err = float((lhs - rhs).abs()) / denom if denom > 0 else float((lhs - rhs).abs())
        worst = max(worst, err)
    return AdjointCheck(
        relative_error=worst,
        passed=worst < tolerance,
        tolerance=tolerance,
        opnorm=float(norm),
        opnorm_source=source,
        trials=int(trials),
        shape=shape,
        dtype=str(dtype),
    )
