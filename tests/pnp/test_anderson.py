"""Safeguarded Anderson acceleration: same fixed point as the plain loop on a closed-form
quadratic, the safeguard on an adversarial map, per-image stopping, the guarantee statement."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from denoisers import QuadraticProxDenoiser
from pnp import PnPADMM, PnPFBS, PnPHQS
from pnp.solvers.anderson import Anderson, AndersonConfig
from tests.pnp.conftest import closed_form_minimiser

SIGMA = 0.3
WEIGHT = 2.0


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "cls,kind,extra",
    [(PnPFBS, "fbs", {}), (PnPFBS, "fbs", {"relaxation": 1.3}), (PnPHQS, "hqs", {}),
     (PnPADMM, "fbs", {})],
)
def test_accelerated_reaches_the_closed_form_fixed_point(problem, cls, kind, extra):
    den = QuadraticProxDenoiser(weight=WEIGHT)
    kw = dict(sigma=SIGMA, max_iter=3000, tol=1e-11, **extra)
    plain = cls(problem["ours"], problem["y"], den, **kw).run()
    acc = cls(problem["ours"], problem["y"], den, acceleration="anderson", anderson_memory=5, **kw).run()
    ref = closed_form_minimiser(problem["ours"], problem["y"], gamma=acc.params.gamma, sigma=SIGMA,
                                weight=WEIGHT, kind=kind)
    assert plain.converged and acc.converged, acc.stop_reason
    assert _rel(acc.x, ref) < 1e-8 and _rel(plain.x, ref) < 1e-8
    assert acc.iterations * 2 <= plain.iterations  # on a quadratic, Anderson is a Krylov method
    stats = acc.acceleration
    assert stats is not None and stats.total_accepted > 0 and len(stats.accepted) == 2
    assert acc.params.acceleration == "anderson" and acc.params.anderson_memory == 5
    # the statement: the plain loop's guarantee, kept, with the count of accepted steps
    assert acc.guarantee.holds == plain.guarantee.holds is True
    assert acc.guarantee.checked == plain.guarantee.checked
    assert f"{stats.total_accepted} of {stats.total_tried} Anderson steps accepted" in acc.guarantee.reason
    assert "safeguard" in acc.guarantee.reason and any("Anderson" in c for c in acc.guarantee.conditions)
    assert acc.to_dict()["acceleration"]["accepted"] == list(stats.accepted)


def _rotate(v: torch.Tensor, theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    a, b = v[..., 0::2], v[..., 1::2]
    out = torch.empty_like(v)
    out[..., 0::2] = c * a - s * b
    out[..., 1::2] = s * a + c * b
    return out


def _adversarial(v: torch.Tensor) -> torch.Tensor:
    """A rotation composed with a firmly non-expansive map (tanh), averaged: ``T = (I + R tanh)/2``
    is 1/2-averaged with the single fixed point 0, and far from 0 (where tanh saturates) its
    secant model misleads Anderson."""
    return 0.5 * (v + _rotate(torch.tanh(v), 1.0))


def _drive(acc: Anderson, s0: torch.Tensor, n: int):
    acc.start(s0)
    res = []
    for _ in range(n):
        p = acc.points(None)
        tp = _adversarial(p)
        ok = acc.update(None, p, tp)
        if bool(ok[0]):
            res.append(float((tp - p).norm()))
        if res and res[-1] < 1e-10:
            break
    return res, p


def test_safeguard_rejects_steps_on_an_adversarial_map_and_still_converges():
    s0 = 100.0 * torch.randn(1, 1, 1, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    acc = Anderson(AndersonConfig(memory=5))
    res, p = _drive(acc, s0, 500)
    st = acc.stats()
    rejected = st.tried[0] - st.accepted[0]
    assert rejected >= 3 and st.accepted[0] >= 3
    assert res[-1] < 1e-10 and float(p.norm()) < 1e-9  # converged, to the fixed point 0
    assert all(b <= a * (1 + 1e-12) for a, b in zip(res, res[1:]))  # residual never increases
    # the same Anderson steps without the safeguard: the residual goes up on this map
    raw = Anderson(AndersonConfig(memory=5))
    object.__setattr__(raw.config, "safeguard", math.inf)
    res_raw, _ = _drive(raw, s0, 60)
    assert any(b > a for a, b in zip(res_raw, res_raw[1:]))


class _RotTanh:
    """The adversarial map as a 'denoiser' (no certificate)."""

    def __call__(self, x, sigma):
        flat = x.reshape(x.shape[0], 1, 1, -1)
        return _adversarial(flat).reshape(x.shape)


def test_solver_with_adversarial_denoiser_matches_plain_limit():
    from operators import FFTBlur

    k = torch.zeros(3, 3, dtype=torch.float64)
    k[1, 1] = 1.0  # A = I: HQS is T(x) = D((x + gamma y) / (1 + gamma))
    g = torch.Generator().manual_seed(3)
    y = 30.0 * torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=g)
    kw = dict(sigma=0.1, gamma=0.05, max_iter=2000, tol=1e-10, x0=y.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = PnPHQS(FFTBlur(k), y, _RotTanh(), **kw).run()
        acc = PnPHQS(FFTBlur(k), y, _RotTanh(), acceleration="anderson", **kw).run()
    assert plain.converged and acc.converged
    assert _rel(acc.x, plain.x) < 1e-7
    assert acc.iterations < plain.iterations
    st = acc.acceleration
    assert sum(st.tried) > sum(st.accepted)  # the safeguard rejected some candidates
    assert not acc.guarantee.holds and "cannot add a guarantee" in acc.guarantee.reason


def test_each_image_stops_on_its_own_residual(problem):
    den = QuadraticProxDenoiser(weight=WEIGHT)
    y = problem["y"]
    calls = []

    class Counting:
        certificate = den.certificate

        def __call__(self, x, sigma):
            calls.append(x.shape[0])
            return den(x, sigma)

    for acc in ("none", "anderson"):
        calls.clear()
        s = PnPFBS(problem["ours"], y, Counting(), sigma=SIGMA, max_iter=500, tol=1e-6, acceleration=acc)
        res = s.run()
        assert res.converged
        its = res.image_iterations
        first = min(range(2), key=lambda i: its[i])
        fast, slow = its[first], its[1 - first]
        assert fast < slow == res.iterations  # the two images stop at different iterations
        assert calls.count(2) == fast and calls.count(1) == slow - fast  # frozen: not evaluated
        # the frozen image stays where its own residual dropped below tol
        assert float(res.history.residual[fast - 1, first]) < 1e-6
        assert torch.equal(res.history.residual[-1, first], res.history.residual[fast - 1, first])


def test_acceleration_arguments():
    cfg = AndersonConfig()
    assert cfg.memory == 5 and 0 < cfg.safeguard < 1
    with pytest.raises(ValueError, match="anderson_memory"):
        AndersonConfig(memory=0)
    with pytest.raises(ValueError, match="safeguard"):
        AndersonConfig(safeguard=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.memory = 3


def test_solver_rejects_unknown_acceleration(problem):
    den = QuadraticProxDenoiser()
    with pytest.raises(ValueError, match="acceleration"):
        PnPFBS(problem["ours"], problem["y"], den, sigma=0.1, acceleration="nesterov")
    with pytest.raises(ValueError, match="anderson_memory"):
        PnPHQS(problem["ours"], problem["y"], den, sigma=0.1, acceleration="anderson", anderson_memory=0)


def test_ill_conditioned_memory_restarts():
    """A map whose residual differences repeat (T affine along one direction) makes the Gram
    matrix singular; the memory restarts instead of solving a singular system."""
    acc = Anderson(AndersonConfig(memory=3))
    d = torch.zeros(1, 1, 1, 4, dtype=torch.float64)
    d[..., 0] = 1.0
    acc.start(torch.zeros_like(d))
    for _ in range(6):  # T(s) = s + d: constant residual, dF = 0
        p = acc.points(None)
        acc.update(None, p, p + d)
    assert acc.stats().restarts[0] >= 1 and acc.stats().tried[0] == 0


def test_legacy_subclass_with_update_still_runs_the_plain_loop(problem):
    """A solver written against the former hook (``_update`` only) keeps working, unaccelerated."""
    from pnp.guarantees import hqs_guarantee
    from pnp.solvers import PnPSolver

    class LegacyHQS(PnPSolver):
        name = "legacy-hqs"

        def _make_guarantee(self):
            return hqs_guarantee(gamma=self.gamma, certificate=self.certificate)

        def _update(self):
            return self.denoiser(self._prox_f(self.x), self.sigma)

    den = QuadraticProxDenoiser(weight=WEIGHT)
    kw = dict(sigma=SIGMA, max_iter=7, tol=1e-30)
    a = LegacyHQS(problem["ours"], problem["y"], den, **kw).run()
    b = PnPHQS(problem["ours"], problem["y"], den, **kw).run()
    assert a.iterations == b.iterations == 7
    assert torch.allclose(a.x, b.x, rtol=0, atol=1e-12)
    assert torch.allclose(a.history.residual, b.history.residual)
    with pytest.raises(ValueError, match="acceleration"):
        LegacyHQS(problem["ours"], problem["y"], den, acceleration="anderson", **kw)


def test_colour_batch_is_one_denoiser_call_per_iteration(problem):
    """A grey network on a colour batch (:class:`denoisers.PerChannel`): one call per iteration
    on all ``B * C`` channels, then only on the channels of the images still running."""
    from denoisers import PerChannel
    from torch import nn

    quad = QuadraticProxDenoiser(weight=WEIGHT)
    sizes = []

    class Grey(nn.Module):
        certificate = quad.certificate

        def forward(self, x, sigma):
            assert x.shape[1] == 1
            sizes.append(x.shape[0])
            return quad(x, sigma)

    res = PnPFBS(problem["ours"], problem["y"], PerChannel(Grey()), sigma=SIGMA, max_iter=500,
                 tol=1e-6, acceleration="anderson").run()
    assert res.converged and len(sizes) == res.iterations
    fast = min(res.image_iterations)
    assert sizes == [6] * fast + [3] * (res.iterations - fast)
