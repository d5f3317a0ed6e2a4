"""PnP half-quadratic splitting."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, TextIO

from torch import Tensor

from pnp.guarantees import Guarantee, hqs_guarantee
from pnp.solvers.base import PnPSolver

__all__ = ["PnPHQS"]


class PnPHQS(PnPSolver):
    r"""PnP half-quadratic splitting with fixed parameters.

    Iteration, with ``f(x) = w/2 ||A x - y||^2``::

        z_k     = prox_{gamma f}(x_k) = (w A^T A + I / gamma)^{-1} (w A^T y + x_k / gamma)
        x_{k+1} = D(z_k, sigma)

    The data step is ``physics.prox_l2(x, y, gamma * w)``: one FFT division for circular blur
    (:class:`operators.FFTBlur`, deepinv's ``BlurFFT``), deepinv's iterative least squares for
    other operators (and preconditioned CG for :class:`operators.FFTBlur` with a non-circular
    boundary; the guarantee then says the prox is inexact). ``gamma=None`` gives ``gamma = 1 / (w ||A||^2)`` (same default as FBS).

    Convergence (see :func:`pnp.guarantees.hqs_guarantee`): ``prox_{gamma f}`` is firmly
    non-expansive for every ``gamma > 0``, so with a certified ``alpha_D``-averaged denoiser
    (``alpha_D < 1``) the iteration is averaged and converges to a fixed point if one exists.
    ``acceleration="anderson"`` keeps this guarantee (:mod:`pnp.solvers.anderson`).

    Fixed point for a true prox ``D(., sigma) = prox_{sigma^2 R}`` (``R`` convex): ``x = prox_g o
    prox_h (x)`` with ``g = sigma^2 R``, ``h = gamma f`` is a forward-backward fixed point for
    ``g + env_h`` (``env_h`` the Moreau envelope of ``h`` with parameter 1, ``grad env_h =
    I - prox_h``), so ``x`` minimises::

        sigma^2 R(x) + 1/2 (Ax - y)^T [gamma w (I + gamma w A A^T)^{-1}] (Ax - y)

    For circular blur with transfer function ``k`` and ``R = (c/2)||grad x||^2`` this is, per
    frequency, ``x^ = (g k^* y^) / (g |k|^2 + sigma^2 c Lambda (1 + g |k|^2))`` with
    ``g = gamma w`` and ``Lambda`` the Laplacian eigenvalues.
    """

    name: ClassVar[str] = "hqs"

    def __init__(
        self,
        physics: Any,
        y: Tensor,
        denoiser: Callable[..., Tensor],
        *,
        sigma: float,
        gamma: float | None = None,
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
        super().__init__(
            physics, y, denoiser, sigma=sigma, gamma=gamma, data_weight=data_weight,
            relaxation=1.0, firm=False, max_iter=max_iter, tol=tol, x0=x0,
            x_true=x_true, progress=progress, acceleration=acceleration,
            anderson_memory=anderson_memory,
        )

    def _make_guarantee(self) -> Guarantee:
        return hqs_guarantee(
            gamma=self.gamma, certificate=self.certificate, data_weight=self.data_weight,
            prox_inexact=self._prox_inexact(),
        )

    def _evaluate(self, s: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        x = self.denoiser(self._prox_f(s, rows), self.sigma)
        return x, x
