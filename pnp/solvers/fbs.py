"""PnP forward-backward splitting (PnP-PGD) with optional Krasnoselskii-Mann relaxation."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, TextIO

from torch import Tensor

from pnp.guarantees import Guarantee, fbs_guarantee
from pnp.solvers.base import PnPSolver

__all__ = ["PnPFBS"]


class PnPFBS(PnPSolver):
    r"""PnP forward-backward splitting (a.k.a. PnP proximal gradient descent).

    Iteration, with ``f(x) = w/2 ||A x - y||^2`` and relaxation ``lambda``::

        x_{k+1} = (1 - lambda) x_k + lambda * D(x_k - gamma * w * A^T (A x_k - y), sigma)

    ``lambda = 1`` (default) is exactly deepinv's PGD with ``stepsize=gamma``,
    ``g_param=sigma``, ``beta=1`` and the ``L2`` data fidelity.

    Step rule: ``gamma=None`` gives ``gamma = 1 / (w ||A||^2)``, the middle of the admissible
    range ``(0, 2 / (w ||A||^2))``; ``||A||`` from ``physics.opnorm()`` (exact) or a power
    iteration (estimate; the guarantee is then flagged ``checked=False``).

    Convergence (see :func:`pnp.guarantees.fbs_guarantee`): if the denoiser is certified
    ``alpha_D``-averaged and ``0 < gamma w ||A||^2 < 2``, ``T = D o (I - gamma grad f)`` is
    ``alpha_T``-averaged and the iterates converge to a fixed point of ``T`` for
    ``0 < lambda < 1 / alpha_T``, provided a fixed point exists. ``acceleration="anderson"``
    (memory ``anderson_memory``) takes safeguarded Anderson steps on this map where they pass
    the safeguard and keeps this guarantee (:mod:`pnp.solvers.anderson`).

    Fixed point for a true prox: if ``D(., sigma) = prox_{sigma^2 R}`` with ``R`` convex (e.g.
    :class:`denoisers.QuadraticProxDenoiser`), the fixed points are the minimisers of::

        gamma * f(x) + sigma^2 R(x),  i.e. of  w/2 ||Ax - y||^2 + (sigma^2 / gamma) R(x)

    (independent of ``lambda``). For ``R = (c/2)||grad x||^2`` and circular blur this is the
    Tikhonov solution ``(w A^T A + (sigma^2 c / gamma) L)^{-1} w A^T y``.

    Example::

        >>> import deepinv as dinv, torch
        >>> from denoisers import QuadraticProxDenoiser
        >>> physics = dinv.physics.BlurFFT(img_size=(1, 16, 16), filter=torch.ones(1, 1, 3, 3) / 9)
        >>> y = physics.A(torch.rand(1, 1, 16, 16))
        >>> res = PnPFBS(physics, y, QuadraticProxDenoiser(), sigma=0.1, max_iter=20).run()
        >>> res.x.shape
        torch.Size([1, 1, 16, 16])
    """

    name: ClassVar[str] = "fbs"
    needs_opnorm_always: ClassVar[bool] = True

    def __init__(
        self,
        physics: Any,
        y: Tensor,
        denoiser: Callable[..., Tensor],
        *,
        sigma: float,
        gamma: float | None = None,
        relaxation: float = 1.0,
        data_weight: float = 1.0,
        max_iter: int = 200,
        tol: float = 1e-5,
        x0: Tensor | None = None,
        x_true: Tensor | None = None,
        progress: bool | TextIO = False,
        acceleration: str = "none",
        anderson_memory: int = 5,
    ) -> None:
        super().__init__(
            physics, y, denoiser, sigma=sigma, gamma=gamma, data_weight=data_weight,
            relaxation=relaxation, firm=False, max_iter=max_iter, tol=tol, x0=x0,
            x_true=x_true, progress=progress, acceleration=acceleration,
            anderson_memory=anderson_memory,
        )

    def _make_guarantee(self) -> Guarantee:
        return fbs_guarantee(
            opnorm=self.opnorm,
            gamma=self.gamma,
            certificate=self.certificate,
            relaxation=self.relaxation,
            data_weight=self.data_weight,
            opnorm_exact=self.opnorm_exact,
            opnorm_kind=self.opnorm_kind,
        )

    def _evaluate(self, s: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        t = self.denoiser(s - self.gamma * self._grad_f(s, rows), self.sigma)
        if self.relaxation != 1.0:
            t = self.relaxation * t + (1.0 - self.relaxation) * s
        return t, t
