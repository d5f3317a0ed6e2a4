"""The variational solver with ridge priors: monotone objective, minimiser, guarantee, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from denoisers.layers.spline import project_splines_
from denoisers.ridge import RidgeConfig, RidgeRegularizer, ridge_prox
from operators import FFTBlur, gaussian_kernel
from pnp.solvers.variational import VariationalRidge

SMALL = dict(channels=(1, 3, 6), kernel_size=3, spline_knots=17, spline_range=2.0, grid=64)


def make_reg(kind: str) -> RidgeRegularizer:
    torch.manual_seed(0)
    reg = RidgeRegularizer(RidgeConfig(kind=kind, **SMALL)).double()
    with torch.no_grad():
        for s in reg.splines():
            s.coefficients.add_(0.15 * torch.randn_like(s.coefficients))
        reg.mu.values.add_(0.3)
    project_splines_(reg)
    return reg


class Identity:
    def A(self, x):
        return x

    def A_adjoint(self, y):
        return y

    def opnorm(self):
        return 1.0


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 20, 20, generator=g, dtype=torch.float64)
    phys = FFTBlur(gaussian_kernel(5, 1.0).double())
    y = phys.A(x) + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return phys, x, y


@pytest.mark.parametrize("kind", ["crr", "wcrr"])
def test_objective_is_monotone_and_the_gradient_test_is_met(kind):
    reg = make_reg(kind)
    phys, x, y = _problem()
    res = VariationalRidge(phys, y, reg, sigma=0.05, max_iter=1500, tol=1e-5, x_true=x).run()
    obj = res.objective
    assert obj.shape[0] == res.iterations + 1
    assert bool((obj[1:] <= obj[:-1] + 1e-12 * obj[:-1].abs()).all())
    assert res.converged and (res.final_grad_norm <= 5e-5).all()
    assert res.guarantee.holds
    assert ("global minimiser" in res.guarantee.theorem) == (kind == "crr")


def test_denoising_case_equals_the_prox():
    """With A = I the objective is the prox objective: both solvers reach the same point."""
    reg = make_reg("crr")
    g = torch.Generator().manual_seed(1)
    y = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    res = VariationalRidge(Identity(), y, reg, sigma=0.1, max_iter=2000, tol=1e-10).run()
    xp, _ = ridge_prox(reg, y, 0.1, tol=1e-11, max_iter=5000)
    assert res.converged
    assert torch.allclose(res.x, xp, atol=1e-8)


def test_convex_minimiser_is_global():
    """CRR: the returned point is at least as good as any perturbation of it (a global minimiser)."""
    reg = make_reg("crr")
    phys, x, y = _problem()
    solver = VariationalRidge(phys, y, reg, sigma=0.05, max_iter=1500, tol=1e-9)
    res = solver.run()
    phi = solver._phi(res.x)
    g = torch.Generator().manual_seed(2)
    for scale in (1e-3, 1e-2, 1e-1):
        pert = res.x + scale * torch.randn(res.x.shape, generator=g, dtype=torch.float64)
        assert (solver._phi(pert) >= phi - 1e-9).all()


@pytest.mark.parametrize("kind", ["crr", pytest.param("wcrr", marks=pytest.mark.slow)])  # wcrr: 17 s (stiff)
def test_backtracking_reaches_the_certified_steps_point_in_fewer_iterations(kind):
    """Both step rules stop at the same point (crr: the minimiser), with a monotone objective; the local
    constants stay in (0, L] and backtracking needs fewer iterations than the certified 1/L."""
    reg = make_reg(kind)
    phys, x, y = _problem()
    runs = {step: VariationalRidge(phys, y, reg, sigma=0.05, max_iter=3000, tol=1e-7, step=step).run()
            for step in ("certified", "backtracking")}
    cert, back = runs["certified"], runs["backtracking"]
    assert cert.converged and back.converged and cert.backtracks == 0
    obj = back.objective
    assert bool((obj[1:] <= obj[:-1] + 1e-12 * obj[:-1].abs()).all())
    L = 1.0 / cert.params.gamma
    assert bool((back.step_constant > 0).all()) and bool((back.step_constant <= L * (1 + 1e-12)).all())
    assert torch.allclose(cert.step_constant, torch.full_like(cert.step_constant, L))
    if kind == "crr":  # one minimiser
        assert torch.allclose(back.x, cert.x, atol=1e-4)
    assert torch.allclose(back.objective[-1], cert.objective[-1], rtol=1e-9)
    assert back.iterations < cert.iterations
    assert "backtracking" in back.params.gamma_rule and "backtracking" in " ".join(back.guarantee.conditions)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sigma=0.05, step="adaptive"), "step must be one of"),
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=-1.0), "sigma"),
        (dict(sigma=0.05, lam_scale=0.0), "lam_scale"),
        (dict(sigma=0.05, tol=0.0), "tol"),
        (dict(sigma=0.05, max_iter=0), "max_iter"),
    ],
)
def test_bad_parameters(kwargs, match):
    reg = make_reg("crr")
    phys, x, y = _problem()
    with pytest.raises(ValueError, match=match):
        VariationalRidge(phys, y, reg, **kwargs)


def test_non_finite_image_and_wrong_prior():
    reg = make_reg("crr")
    phys, x, y = _problem()
    with pytest.raises(ValueError, match="y contains NaN"):
        VariationalRidge(phys, y * float("nan"), reg, sigma=0.05)
    with pytest.raises(TypeError, match="regularizer"):
        VariationalRidge(phys, y, lambda v, s: v, sigma=0.05)


def test_admm_with_the_crr_prox_has_the_guarantee_and_wcrr_has_none():
    from denoisers.ridge import RidgeDenoiser
    from pnp.solvers import PnPADMM

    phys, x, y = _problem()
    crr = RidgeDenoiser(make_reg("crr"), tol=1e-8)
    res = PnPADMM(phys, y, crr, sigma=0.05, max_iter=60, tol=1e-9).run()
    r = res.history.residual.max(1).values
    assert res.guarantee.holds and r[-1] < 0.05 * r[0]  # DRS: slow but steady
    assert not res.guarantee.checked  # the inner prox is inexact: said, not hidden
    wcrr = RidgeDenoiser(make_reg("wcrr"), tol=1e-8)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = PnPADMM(phys, y, wcrr, sigma=0.05, max_iter=1).run().guarantee
    assert not g.holds


def test_pnp_runs_warm_start_the_prox_with_a_tolerance_that_follows_the_loop(monkeypatch):
    """The solvers run the prox's ``for_loop()`` copy: each inner solve starts from the previous output, to
    a tolerance of at most a tenth of the input's change. So a loose nominal tolerance still tracks the
    exact-prox iterates (cold starts at that tolerance drift from them), every call meets its own tolerance,
    a warm start is never returned unchanged as a false convergence (the fixed tolerance does that, checked
    too), and the caller's denoiser keeps no state between runs."""
    import denoisers.ridge.prox as prox_mod
    from denoisers.ridge import RidgeDenoiser
    from pnp.solvers import PnPADMM

    phys, x, y = _problem()
    reg = make_reg("crr")
    calls: list[list[tuple[float, float]]] = []
    real = prox_mod.ridge_prox

    def recording(*a, **k):
        out, info = real(*a, **k)
        calls[-1].append((k["tol"], max(info.grad_rms)))
        return out, info

    monkeypatch.setattr(prox_mod, "ridge_prox", recording)

    def run(tol, warm, n=30, outer_tol=1e-12):
        den = RidgeDenoiser(reg, tol=tol)
        if not warm:
            den.for_loop = None
        calls.append([])
        res = PnPADMM(phys, y, den, sigma=0.05, max_iter=n, tol=outer_tol).run()
        assert den._last is None and den._last_input is None  # the run used a copy
        return res, calls[-1]

    exact, _ = run(1e-10, warm=False)
    cold, _ = run(1e-2, warm=False)
    warm, wcalls = run(1e-2, warm=True)
    again, _ = run(1e-2, warm=True)
    err_cold = float((cold.x - exact.x).abs().max())
    err_warm = float((warm.x - exact.x).abs().max())
    assert err_warm < err_cold / 4, (err_warm, err_cold)
    assert all(g <= t for t, g in wcalls)  # every inner solve met its own (tightened) tolerance
    assert wcalls[0][0] == 1e-2 and wcalls[-1][0] < 1e-4  # the first call is cold; the tolerance follows the loop
    assert warm.iterations == 30 and bool((warm.history.residual > 0).all())
    assert torch.equal(warm.x, again.x)  # runs do not share state

    # with a fixed tolerance the warm start is returned unchanged within a few iterations: a false stop
    monkeypatch.setattr(RidgeDenoiser, "STEP_FRACTION", math.inf)
    fixed, _ = run(1e-2, warm=True, n=300, outer_tol=1e-7)
    assert fixed.converged and fixed.iterations < 10 and float(fixed.history.residual[-1].max()) == 0.0


def test_auto_picks_the_variational_solver_for_a_ridge_prior():
    import pnp
    from denoisers.ridge import RidgeDenoiser

    phys, x, y = _problem()
    den = RidgeDenoiser(make_reg("crr"))
    res = pnp.deblur(y.float().clamp(0, 1), gaussian_kernel(5, 1.0), noise_level=0.05, denoiser=den.float(),
                     max_iter=50)
    assert res.params.solver == "variational" and res.guarantee.holds
    res_fbs = pnp.deblur(y.float().clamp(0, 1), gaussian_kernel(5, 1.0), noise_level=0.05, denoiser=den,
                         solver="fbs", max_iter=5)
    assert res_fbs.params.solver == "fbs"


def test_the_rule_follows_the_priors_boundary():
    """``pnp.deblur``'s rule: crr on the torus takes its own calibrated (factor, multiplier); the
    multiplier becomes ADMM's step 1/(m ||A||^2), while FBS keeps its step 1/||A||^2."""
    import pnp
    from denoisers.ridge import RidgeDenoiser
    from pnp.api import RIDGE_VARIATIONAL_RULE

    reg = make_reg("crr")
    f, m = RIDGE_VARIATIONAL_RULE["crr-circular"]
    assert (f, m) != RIDGE_VARIATIONAL_RULE["crr"]
    valid, circ = RidgeDenoiser(reg), RidgeDenoiser(reg.with_boundary("circular"))
    fv, mv = RIDGE_VARIATIONAL_RULE["crr"]
    assert pnp.default_parameters(0.03, denoiser=valid, opnorm=1.0, solver="variational") == pytest.approx((fv * 0.03, mv))
    assert pnp.default_parameters(0.03, denoiser=circ, opnorm=1.0, solver="variational") == pytest.approx((f * 0.03, m))
    assert pnp.default_parameters(0.03, denoiser=circ, opnorm=0.5, solver="admm") == pytest.approx((f * 0.03, 4.0 / m))
    assert pnp.default_parameters(0.03, denoiser=circ, opnorm=0.5, solver="fbs") == pytest.approx((f * 0.03, 4.0))
    # wcrr has no circular entry: its kind's rule
    wc = RidgeDenoiser(make_reg("wcrr").with_boundary("circular"))
    assert pnp.default_parameters(0.03, denoiser=wc, opnorm=1.0, solver="variational") == pytest.approx(
        (RIDGE_VARIATIONAL_RULE["wcrr"][0] * 0.03, RIDGE_VARIATIONAL_RULE["wcrr"][1]))
