"""Guarantee verdicts for FBS, HQS and ADMM/DRS."""

from __future__ import annotations

import pytest

from denoisers import Certificate, QuadraticProxDenoiser
from pnp import Guarantee, PnPADMM, PnPFBS, admm_guarantee, fbs_guarantee, hqs_guarantee


def cert(alpha, *, lip=1.0, exact=True):
    return Certificate(lipschitz_bound=lip, alpha=alpha, method="test", exact=exact)


@pytest.mark.parametrize("opnorm", [1.0, 0.5, 2.0])
def test_fbs_step_threshold(opnorm):
    below = fbs_guarantee(opnorm=opnorm, gamma=1.99 / opnorm**2, certificate=cert(0.5))
    above = fbs_guarantee(opnorm=opnorm, gamma=2.01 / opnorm**2, certificate=cert(0.5))
    at = fbs_guarantee(opnorm=opnorm, gamma=2.0 / opnorm**2, certificate=cert(0.5))
    assert below.holds and below.checked
    assert not above.holds and "not averaged" in above.reason
    assert not at.holds
    assert isinstance(below, Guarantee) and "\n" not in below.summary()


def test_fbs_data_weight_and_estimate_flag():
    g = fbs_guarantee(opnorm=1.0, gamma=1.0, data_weight=2.5, certificate=cert(0.5))
    assert not g.holds  # gamma * w * ||A||^2 = 2.5
    est = fbs_guarantee(opnorm=1.0, gamma=1.0, certificate=cert(0.5), opnorm_exact=False)
    assert est.holds and not est.checked and "estimated" in est.reason
    inexact = fbs_guarantee(opnorm=1.0, gamma=1.0, certificate=cert(0.5, exact=False))
    assert inexact.holds and not inexact.checked


def test_fbs_relaxation_bounds():
    # alpha_D = 1/2, alpha_g = 1/2 -> alpha_T = 2/3, KM needs lambda < 1.5
    assert fbs_guarantee(opnorm=1.0, gamma=1.0, certificate=cert(0.5), relaxation=1.49).holds
    g = fbs_guarantee(opnorm=1.0, gamma=1.0, certificate=cert(0.5), relaxation=1.51)
    assert not g.holds and "relaxation" in g.reason
    # non-expansive only (alpha None, L <= 1): needs lambda < 1
    ne = cert(None)
    assert not fbs_guarantee(opnorm=1.0, gamma=1.0, certificate=ne).holds
    assert fbs_guarantee(opnorm=1.0, gamma=1.0, certificate=ne, relaxation=0.9).holds


def test_no_certificate_and_expansive():
    for g in (
        fbs_guarantee(opnorm=1.0, gamma=1.0, certificate=None),
        hqs_guarantee(gamma=1.0, certificate=None),
        admm_guarantee(gamma=1.0, certificate=None),
    ):
        assert not g.holds and g.reason == "denoiser has no certificate" and not g.checked
    g = hqs_guarantee(gamma=1.0, certificate=cert(None, lip=1.5))
    assert not g.holds and "Lipschitz" in g.reason


def test_hqs_any_gamma():
    for gamma in (1e-3, 1.0, 1e3):
        assert hqs_guarantee(gamma=gamma, certificate=cert(0.9)).holds
    assert not hqs_guarantee(gamma=1.0, certificate=cert(1.0)).holds


def test_admm_needs_firm_denoiser():
    assert admm_guarantee(gamma=1.0, certificate=cert(0.5)).holds
    g = admm_guarantee(gamma=1.0, certificate=cert(0.8))
    assert not g.holds and "firm=True" in g.reason and "2D - I" in g.reason
    assert admm_guarantee(gamma=1.0, certificate=cert(0.8), firm=True).holds
    assert admm_guarantee(gamma=1.0, certificate=cert(None), firm=True).holds


def test_bad_numbers():
    with pytest.raises(ValueError, match="gamma"):
        fbs_guarantee(opnorm=1.0, gamma=-1.0, certificate=cert(0.5))
    with pytest.raises(ValueError, match="opnorm"):
        fbs_guarantee(opnorm=float("nan"), gamma=1.0, certificate=cert(0.5))


class _Averaged(QuadraticProxDenoiser):
    """The quadratic prox with a (weaker) claimed certificate alpha = 0.8."""

    @property
    def certificate(self):
        return cert(0.8)


def test_solvers_report_their_guarantee(problem):
    ph, y = problem["ours"], problem["y"]
    norm = ph.opnorm(image_size=(20, 24))
    assert PnPFBS(ph, y, QuadraticProxDenoiser(), sigma=0.1, gamma=1.9 / norm**2).guarantee.holds
    assert not PnPFBS(ph, y, QuadraticProxDenoiser(), sigma=0.1, gamma=2.1 / norm**2).guarantee.holds
    assert not PnPADMM(ph, y, _Averaged(), sigma=0.1).guarantee.holds
    s = PnPADMM(ph, y, _Averaged(), sigma=0.1, firm=True, max_iter=3)
    assert s.guarantee.holds
    assert s.run().params.firm
