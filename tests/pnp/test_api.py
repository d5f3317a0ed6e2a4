"""The one-call API pnp.deblur and the denoiser registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pnp
from denoisers import QuadraticProxDenoiser, TVDenoiser
from operators import FFTBlur, gaussian_kernel


def _problem(size=32, noise=0.01):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, size, size, generator=g)
    k = gaussian_kernel(5, 1.0)
    y = FFTBlur(k).A(x) + noise * torch.randn(x.shape, generator=g)
    return x, k, y


@pytest.mark.parametrize("solver", ["fbs", "hqs", "admm"])
def test_deblur_runs_and_improves(solver):
    x, k, y = _problem()
    res = pnp.deblur(y, k, noise_level=0.01, denoiser="quadratic", solver=solver, max_iter=50,
                     x_true=x)
    assert isinstance(res, pnp.SolverResult)
    assert res.params.solver == solver and res.guarantee.holds
    assert float(pnp.psnr(res.x, x)[0]) > float(pnp.psnr(y, x)[0])


def test_deblur_kernel_forms_agree():
    x, k, y = _problem()
    a = pnp.deblur(y, k, noise_level=0.01, denoiser="quadratic", max_iter=5)
    b = pnp.deblur(y, k.numpy(), noise_level=0.01, denoiser="quadratic", max_iter=5)
    c = pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, denoiser="quadratic", max_iter=5)
    assert torch.allclose(a.x, b.x) and torch.allclose(a.x, c.x, atol=1e-6)


def test_default_rule():
    tv, quad = TVDenoiser(), QuadraticProxDenoiser()
    sigma, gamma = pnp.default_parameters(0.02, denoiser=tv, opnorm=1.0)
    assert gamma == 1.0
    assert abs(sigma**2 * tv.weight / gamma - pnp.api.TV_LAMBDA_PER_NOISE * 0.02) < 1e-12
    sigma, gamma = pnp.default_parameters(0.02, denoiser=quad, opnorm=0.5)
    assert gamma == 4.0
    assert abs(sigma**2 * quad.weight / gamma - pnp.api.QUADRATIC_LAMBDA_PER_NOISE * 0.02) < 1e-12
    sigma, gamma = pnp.default_parameters(0.0, denoiser=lambda x, s: x, opnorm=1.0)
    assert sigma == pytest.approx(pnp.api.LEARNED_FBS_SIGMA_PER_NOISE[0][1] * 1e-3)  # floored level
    assert gamma == pytest.approx(pnp.api.LEARNED_FBS_GAMMA_SCALE) and gamma < 2.0  # FBS guarantee
    sigma, _ = pnp.default_parameters(0.01, denoiser=lambda x, s: x, opnorm=1.0, solver="hqs")
    assert sigma == pytest.approx(pnp.api.LEARNED_SIGMA_PER_NOISE * 0.01)  # HQS/ADMM keep the generic factor
    _, gamma = pnp.default_parameters(0.01, denoiser=lambda x, s: x, opnorm=0.5, solver="admm")
    assert gamma == 4.0


def test_firm_member_takes_its_admm_rule_and_the_guarantee_holds():
    import denoisers
    from denoisers import zoo

    firm = [n for n in denoisers.available() if n.startswith(zoo.FIRM_PREFIX)]
    if not firm:
        pytest.skip("no firmly non-expansive member shipped")
    d = denoisers.load(firm[0])
    f, g = pnp.api.FIRM_ADMM_RULE
    assert pnp.default_parameters(0.03, denoiser=d, opnorm=0.5, solver="admm") == pytest.approx((f * 0.03, 4.0 * g))
    # other solvers keep the generic learned rule
    assert pnp.default_parameters(0.03, denoiser=d, opnorm=1.0, solver="hqs")[0] == pytest.approx(
        pnp.api.LEARNED_SIGMA_PER_NOISE * 0.03)
    x, k, y = _problem()
    res = pnp.deblur(y, k, noise_level=0.01, denoiser=firm[0], solver="admm", max_iter=3)
    assert res.guarantee.holds and "firmly non-expansive" in res.guarantee.reason
    with pytest.warns(pnp.GuaranteeWarning):
        fam = pnp.deblur(y, k, noise_level=0.01, denoiser=zoo.FAMILY, solver="admm", max_iter=1)
    assert not fam.guarantee.holds  # the family itself (alpha ~ 1) has none in ADMM


def test_learned_fbs_rule_interpolates_the_calibrated_factors():
    from pnp.api import LEARNED_FBS_SIGMA_PER_NOISE, learned_fbs_sigma_factor

    for nu, f in LEARNED_FBS_SIGMA_PER_NOISE:  # the calibration points themselves
        assert learned_fbs_sigma_factor(nu) == pytest.approx(f)
        sigma, _ = pnp.default_parameters(nu, denoiser=lambda x, s: x, opnorm=1.0)
        assert sigma == pytest.approx(f * nu)
    (n0, f0), (n1, f1) = LEARNED_FBS_SIGMA_PER_NOISE[:2]
    assert learned_fbs_sigma_factor((n0 * n1) ** 0.5) == pytest.approx((f0 + f1) / 2)  # log-midpoint
    assert learned_fbs_sigma_factor(n0 / 10) == f0 and learned_fbs_sigma_factor(0.5) == LEARNED_FBS_SIGMA_PER_NOISE[-1][1]
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="noise_level"):
            learned_fbs_sigma_factor(bad)


def test_registry():
    assert {"tv", "quadratic"} <= set(pnp.available_denoisers())
    assert isinstance(pnp.get_denoiser("tv"), TVDenoiser)
    assert isinstance(pnp.get_denoiser("quadratic"), QuadraticProxDenoiser)
    with pytest.raises(ValueError, match="known denoisers: tv, quadratic"):
        pnp.get_denoiser("no-such-denoiser")


def test_bad_arguments():
    x, k, y = _problem(16)
    with pytest.raises(ValueError, match="noise_level"):
        pnp.deblur(y, k, noise_level=-0.1)
    with pytest.raises(ValueError, match="solver"):
        pnp.deblur(y, k, noise_level=0.01, solver="pgd2")
    with pytest.raises(ValueError, match="larger than the image"):
        pnp.deblur(y, np.ones((21, 21)) / 441, noise_level=0.01)
    with pytest.raises(ValueError, match="shape"):
        pnp.deblur(y[0], k, noise_level=0.01)
    with pytest.raises(TypeError):
        pnp.deblur(y, k, noise_level=0.01, stepsize=1.0)


def test_deblur_default_acceleration_by_denoiser_kind():
    """``acceleration="auto"``: Anderson for learned denoisers, the plain loop for TV/quadratic;
    an explicit choice wins."""
    x, k, y = _problem()
    quad = QuadraticProxDenoiser()
    assert pnp.api.default_acceleration(quad) == "none"
    assert pnp.api.default_acceleration(TVDenoiser()) == "none"
    res = pnp.deblur(y, k, noise_level=0.01, denoiser="quadratic", max_iter=30)
    assert res.params.acceleration == "none" and res.acceleration is None

    class Learned:  # any other denoiser (here the quadratic prox behind another type)
        certificate = quad.certificate

        def __call__(self, v, sigma):
            return quad(v, sigma)

    res = pnp.deblur(y, k, noise_level=0.01, denoiser=Learned(), max_iter=30, x_true=x)
    assert res.params.acceleration == "anderson" and res.acceleration.total_accepted > 0
    assert res.guarantee.holds and "Anderson steps accepted" in res.guarantee.reason
    plain = pnp.deblur(y, k, noise_level=0.01, denoiser=Learned(), max_iter=30, acceleration="none")
    assert plain.acceleration is None and plain.params.acceleration == "none"
    with pytest.raises(ValueError, match="acceleration"):
        pnp.deblur(y, k, noise_level=0.01, denoiser="quadratic", acceleration="fast")
