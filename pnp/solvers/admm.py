"""PnP-ADMM in Douglas-Rachford form."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, TextIO

from torch import Tensor

from pnp.guarantees import Guarantee, admm_guarantee
from pnp.solvers.base import PnPSolver

__all__ = ["PnPADMM"]


class PnPADMM(PnPSolver):
    r"""PnP-ADMM written as Douglas-Rachford splitting on the governing variable ``z``.

    Iteration, with ``f(x) = w/2 ||A x - y||^2``, ``P_f = prox_{gamma f}`` and denoiser ``D``
    (``(I + D)/2`` when ``firm=True``)::

        v_k     = P_f(z_k)                       (one FFT division for circular blur)
        x_{k+1} = D(2 v_k - z_k, sigma)           (the returned iterate)
        z_{k+1} = z_k + x_{k+1} - v_k

    This is ADMM ``v = P_f(x - u); x = D(v + u); u = u + v - x`` with ``z = x - u``. The state
    is ``(z, x)``; ``x0`` initialises both (default ``A^T y``). ``gamma=None`` gives
    ``gamma = 1 / (w ||A||^2)`` (same default as FBS, so for a true prox both solvers share their
    fixed point). The residual is measured on ``x``. ``acceleration="anderson"`` accelerates
    the map on ``z`` under a safeguard that keeps the guarantee (:mod:`pnp.solvers.anderson`).

    Convergence (see :func:`pnp.guarantees.admm_guarantee`): ``z <- (I + R_D R_F)/2 z`` with
    reflections ``R = 2P - I`` is 1/2-averaged when ``R_D`` is non-expansive, i.e. when the
    denoiser is firmly non-expansive (``alpha_D <= 1/2``). With a larger ``alpha`` no guarantee
    applies (the result says so); ``firm=True`` runs with ``(I + D)/2``, ``alpha_D/2``-averaged.

    Fixed point for a true prox ``D(., sigma) = prox_{sigma^2 R}`` (``R`` convex, ``firm=False``):
    ``x`` minimises ``gamma f(x) + sigma^2 R(x)``, i.e. ``w/2 ||Ax-y||^2 + (sigma^2/gamma) R(x)``.
    """

    name: ClassVar[str] = "admm"
    residual_on_state: ClassVar[bool] = False

    def __init__(
        self,
        physics: Any,
        y: Tensor,
        denoiser: Callable[..., Tensor],
        *,
        sigma: float,
        gamma: float | None = None,
        firm: bool = False,
        data_weight: float = 1.0,
        max_iter: int = 200,
        tol: float = 1e-5,
        x0: Tensor | None = None,
        x_true: Tensor | None = None,
        progress: bool | TextIO = False,
        acceleration: str = "none",
        anderson_memory: int = 5,
    ) -> None:
        if not hasattr(physics, "prox_l2"):
            raise TypeError(f"physics of type {type(physics).__name__} has no prox_l2")
        if not isinstance(firm, bool):
            raise TypeError(f"firm must be a bool, got {type(firm).__name__}")
        super().__init__(
            physics, y, denoiser, sigma=sigma, gamma=gamma, data_weight=data_weight,
            relaxation=1.0, firm=firm, max_iter=max_iter, tol=tol, x0=x0,
            x_true=x_true, progress=progress, acceleration=acceleration,
            anderson_memory=anderson_memory,
        )

    def _make_guarantee(self) -> Guarantee:
        return admm_guarantee(
            gamma=self.gamma, certificate=self.certificate, firm=self.firm,
            data_weight=self.data_weight, prox_inexact=self._prox_inexact(),
        )

    @property
    def z(self) -> Tensor:
        """The governing variable (with acceleration: the last point evaluated)."""
        return self._state if self._anderson is None else self._anderson.points(None)

    def _evaluate(self, s: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        v = self._prox_f(s, rows)
        x = self._denoise(2.0 * v - s)
        return s + x - v, x
