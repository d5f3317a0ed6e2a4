r"""Safeguarded type-II Anderson acceleration of a fixed-point loop ``s <- T(s)``, per image.

The plain PnP loops are Krasnoselskii-Mann (KM) iterations ``s_{k+1} = T(s_k)`` of an averaged
map ``T`` on the governing variable ``s`` (``x`` for FBS/HQS, ``z`` for ADMM/DRS). Anderson
acceleration (type II, memory ``m``) proposes instead, with residuals ``f_i = T(s_i) - s_i`` of
the last ``m + 1`` accepted points, ``dF = [f_{i+1} - f_i]`` and ``dG = [T(s_{i+1}) - T(s_i)]``::

    g   = argmin_g ||f_k - dF g||^2 + mu ||g||^2,   mu = regularization * trace(dF^T dF)
    s_A = T(s_k) - dG g

The least-squares problem is solved per image (``[B, m, m]`` Gram matrices in float64); when the
Gram matrix of an image has a condition number above ``max_condition`` its memory is cleared
(restart) and the plain step is taken.

Safeguard (what keeps the plain loop's guarantee). A candidate ``s_A`` is tried only if
``||s_A - s_k|| <= max_step * ||f_k||``; it is accepted only if, once ``T(s_A)`` is known,
``||T(s_A) - s_A|| <= safeguard * ||f_k||`` with ``safeguard < 1``: the fixed-point residual must
drop by a fixed factor against the last accepted point. Otherwise the candidate is discarded
and the plain KM step ``s_{k+1} = T(s_k)`` is taken (its ``T`` is evaluated at the next step, so
a rejection costs one evaluation of ``T``).

Why the guarantee of the plain loop survives (in the manner of Zhang, O'Donoghue and Boyd's
globally convergent Anderson acceleration for non-expansive maps). Let ``T`` be averaged with a
fixed point ``s*``. KM steps satisfy ``||T s - s*|| <= ||s - s*||`` and never increase the
residual (``||T(Ts) - Ts|| <= ||Ts - s||``). So the residual at accepted points is non-increasing,
and the ``n``-th accepted Anderson step leaves it below ``safeguard^n ||f_0||``. An accepted step
moves at most ``max_step`` times the residual of its base point, itself at most
``safeguard^(n-1) ||f_0||``: the Anderson moves are summable, so ``||s_k - s*||`` is quasi-Fejer
monotone (bounded, convergent) and, with infinitely many accepted steps, the residual tends to 0;
with finitely many, the tail is the plain KM loop. In both cases the iterates converge to a fixed
point of ``T`` (demiclosedness of ``I - T``), the same conclusion as for the plain loop, under the
same conditions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["AccelerationStats", "Anderson", "AndersonConfig", "ACCELERATIONS"]

#: Names accepted by the solvers' ``acceleration`` argument.
ACCELERATIONS = ("none", "anderson")


@dataclass(frozen=True)
class AndersonConfig:
    """Parameters of :class:`Anderson` (see the module docstring for the maths).

    ``memory``: number ``m`` of residual differences kept (>= 1); ``safeguard``: the factor in
    ``(0, 1)`` by which an accepted step must reduce the residual; ``max_step``: bound on the
    length of an Anderson move in units of the base residual; ``regularization``: relative
    Tikhonov weight of the least-squares solve; ``max_condition``: restart threshold on the
    condition number of the Gram matrix.
    """

    memory: int = 5
    safeguard: float = 0.99
    max_step: float = 1e3
    regularization: float = 1e-10
    max_condition: float = 1e10

    def __post_init__(self) -> None:
        if isinstance(self.memory, bool) or not isinstance(self.memory, int) or self.memory < 1:
            raise ValueError(f"anderson_memory must be an integer >= 1, got {self.memory!r}")
        if not (isinstance(self.safeguard, (int, float)) and 0.0 < self.safeguard < 1.0):
            raise ValueError(f"safeguard must be in (0, 1), got {self.safeguard!r}")
        for name in ("max_step", "max_condition"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        r = self.regularization
        if not (isinstance(r, (int, float)) and math.isfinite(r) and r >= 0):
            raise ValueError(f"regularization must be finite and >= 0, got {r!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccelerationStats:
    """Per-image counts of an accelerated run.

    ``tried``: Anderson candidates evaluated; ``accepted``: those that passed the safeguard;
    ``step_rejected``: candidates discarded before evaluation (move too long); ``restarts``:
    memory clears for ill-conditioning.
    """

    method: str
    config: AndersonConfig
    tried: tuple[int, ...]
    accepted: tuple[int, ...]
    step_rejected: tuple[int, ...]
    restarts: tuple[int, ...]

    @property
    def total_accepted(self) -> int:
        return int(sum(self.accepted))

    @property
    def total_tried(self) -> int:
        return int(sum(self.tried))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        for k in ("tried", "accepted", "step_rejected", "restarts"):
            d[k] = list(d[k])
        return d


def _norms(t: Tensor) -> Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


class Anderson:
    """Per-image state of the safeguarded Anderson loop for a batch of ``B`` images.

    The solver drives it with two calls per iteration (``rows``: indices of the images still
    iterating, or ``None`` for all)::

        pts = acc.points(rows)           # where T is evaluated
        acc.update(rows, pts, T(pts))    # -> bool mask: True where pts is now the accepted point

    Before the first call, :meth:`start` sets the initial point ``s_0`` (a plain point, its ``T``
    is evaluated first).
    """

    def __init__(self, config: AndersonConfig) -> None:
        self.config = config
        self._started = False

    def start(self, s0: Tensor) -> None:
        b = s0.shape[0]
        m = self.config.memory
        flat = s0.reshape(b, -1)
        self.shape = tuple(s0.shape)
        self.X = flat.new_zeros(b, m + 1, flat.shape[1])  # accepted points (last slot newest)
        self.G = flat.new_zeros(b, m + 1, flat.shape[1])  # T at those points
        self.count = torch.zeros(b, dtype=torch.long)  # valid slots (from the end)
        self.base_res = torch.full((b,), math.inf, dtype=torch.float64)  # ||f|| at accepted point
        self.cand = s0.detach().clone()  # next point to evaluate
        self.cand_is_aa = torch.zeros(b, dtype=torch.bool)
        self.tried = torch.zeros(b, dtype=torch.long)
        self.accepted = torch.zeros(b, dtype=torch.long)
        self.step_rejected = torch.zeros(b, dtype=torch.long)
        self.restarts = torch.zeros(b, dtype=torch.long)
        self._started = True

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _sel(t: Tensor, rows: Tensor | None) -> Tensor:
        return t if rows is None else t[rows]

    def _rows_cpu(self, rows: Tensor | None) -> Tensor:
        b = self.count.shape[0]
        return torch.arange(b) if rows is None else rows.cpu()

    def points(self, rows: Tensor | None) -> Tensor:
        """The points at which ``T`` must be evaluated next (``[n, C, H, W]``)."""
        return self._sel(self.cand, None if rows is None else rows.to(self.cand.device))

    def update(self, rows: Tensor | None, pts: Tensor, t_pts: Tensor) -> Tensor:
        """Record ``T(pts)``; return the mask (``[n]``, CPU bool) of images whose evaluated point
        is accepted (always true for plain points; for Anderson points, the safeguard)."""
        r = self._rows_cpu(rows)
        dev_rows = r.to(self.X.device)
        n = r.numel()
        f = (t_pts - pts).reshape(n, -1)
        res = _norms(f).double().cpu()
        is_aa = self.cand_is_aa[r]
        base = self.base_res[r]
        ok = ~is_aa | (res <= self.config.safeguard * base)
        self.tried[r] += is_aa.long()
        self.accepted[r] += (is_aa & ok).long()
        # accepted rows: push the pair (pts, T(pts)) into the memory
        acc_rows = r[ok]
        if acc_rows.numel():
            dr = acc_rows.to(self.X.device)
            okd = ok.to(self.X.device)
            self.X[dr] = torch.roll(self.X[dr], -1, dims=1)
            self.G[dr] = torch.roll(self.G[dr], -1, dims=1)
            self.X[dr, -1] = pts.reshape(n, -1)[okd]
            self.G[dr, -1] = t_pts.reshape(n, -1)[okd]
            self.count[acc_rows] = torch.clamp(self.count[acc_rows] + 1, max=self.config.memory + 1)
            self.base_res[acc_rows] = res[ok]
        # next candidates: Anderson from the memory (accepted rows), plain step (rejected rows)
        new = torch.empty_like(pts.reshape(n, -1))
        new_is_aa = torch.zeros(n, dtype=torch.bool)
        if (~ok).any():
            rej = (~ok).to(self.X.device)
            new[rej] = self.G[dev_rows[rej], -1]  # T at the last accepted point: the KM step
        if ok.any():
            okd = ok.to(self.X.device)
            cand, aa = self._anderson(acc_rows)
            new[okd] = cand
            new_is_aa[ok] = aa
        self.cand = self.cand.index_copy(0, dev_rows, new.reshape(n, *self.shape[1:]).to(self.cand.dtype))
        self.cand_is_aa[r] = new_is_aa
        return ok

    def _anderson(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Type-II Anderson candidates for ``rows`` (CPU indices); ``(points [n, N], is_aa [n])``."""
        cfg = self.config
        m = cfg.memory
        dr = rows.to(self.X.device)
        X, G = self.X[dr], self.G[dr]
        count = self.count[rows]
        g_k = G[:, -1]
        f_k = g_k - X[:, -1]
        n = rows.numel()
        ncols = (count - 1).clamp_min(0)  # valid differences
        if int(ncols.max()) == 0:
            return g_k.clone(), torch.zeros(n, dtype=torch.bool)
        F = G - X
        dF = (F[:, 1:] - F[:, :-1]).double()  # [n, m, N]
        dG = G[:, 1:] - G[:, :-1]
        j = torch.arange(m)
        valid = j[None, :] >= (m - ncols)[:, None]  # [n, m] (CPU)
        vd = valid.to(dF.device)
        dF = dF * vd[..., None]
        gram = dF @ dF.transpose(1, 2)  # [n, m, m]
        rhs = dF @ f_k.double()[..., None]  # [n, m, 1]
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        tr = diag.sum(dim=1)
        nv = ncols.to(gram.device).clamp_min(1).double()
        # condition number of the valid block: pad invalid diagonal entries with the mean
        fill = (tr / nv)[:, None].expand(-1, m)
        padded = gram + torch.diag_embed(torch.where(vd, torch.zeros_like(fill), fill))
        eig = torch.linalg.eigvalsh(padded)
        cond = (eig[:, -1] / eig[:, 0].clamp_min(1e-300)).cpu()
        bad = (cond > cfg.max_condition) | ~torch.isfinite(cond) | (tr.cpu() <= 0)
        mu = cfg.regularization * tr + 1e-300
        system = gram + mu[:, None, None] * torch.eye(m, dtype=gram.dtype, device=gram.device)
        system = system + torch.diag_embed((~vd).double())  # invalid columns: gamma = 0
        gam = torch.linalg.solve(system, rhs)[..., 0]  # [n, m]
        gam = torch.where(vd & ~bad.to(vd.device)[:, None], gam, torch.zeros_like(gam))
        cand = g_k - (gam.to(dG.dtype)[:, None, :] @ dG)[:, 0]
        is_aa = (ncols > 0) & ~bad
        if bad.any():  # restart: keep only the newest point
            self.restarts[rows[bad]] += 1
            self.count[rows[bad]] = 1
            cand[bad.to(cand.device)] = g_k[bad.to(cand.device)]
        # step bound: ||s_A - s_k|| <= max_step ||f_k||
        step = _norms(cand - X[:, -1]).double().cpu()
        too_long = is_aa & ~(step <= cfg.max_step * _norms(f_k).double().cpu())
        if too_long.any():
            self.step_rejected[rows[too_long]] += 1
            cand[too_long.to(cand.device)] = g_k[too_long.to(cand.device)]
            is_aa = is_aa & ~too_long
        return cand, is_aa

    def stats(self) -> AccelerationStats:
        return AccelerationStats(
            method="anderson",
            config=self.config,
            tried=tuple(int(v) for v in self.tried),
            accepted=tuple(int(v) for v in self.accepted),
            step_rejected=tuple(int(v) for v in self.step_rejected),
            restarts=tuple(int(v) for v in self.restarts),
        )
