"""Solvers: known fixed points, deepinv interop, stopping, history, bad inputs."""

from __future__ import annotations

import warnings

import pytest
import torch

from denoisers import QuadraticProxDenoiser
from pnp import ConvergenceWarning, GuaranteeWarning, PnPADMM, PnPFBS, PnPHQS, SolverResult
from tests.pnp.conftest import closed_form_minimiser

SIGMA = 0.3
WEIGHT = 2.0


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("op", ["ours", "theirs"])
@pytest.mark.parametrize(
    "cls,kind,extra",
    [
        (PnPFBS, "fbs", {}),
        (PnPFBS, "fbs", {"relaxation": 1.3}),
        (PnPFBS, "fbs", {"gamma": 1.7}),
        (PnPHQS, "hqs", {}),
        (PnPHQS, "hqs", {"gamma": 3.0}),
        (PnPADMM, "fbs", {}),
        (PnPADMM, "fbs", {"gamma": 0.5}),
    ],
)
def test_converges_to_known_minimiser(problem, op, cls, kind, extra):
    physics = problem[op]
    den = QuadraticProxDenoiser(weight=WEIGHT)
    solver = cls(physics, problem["y"], den, sigma=SIGMA, max_iter=2000, tol=1e-11, **extra)
    res = solver.run()
    ref = closed_form_minimiser(
        physics, problem["y"], gamma=solver.gamma, sigma=SIGMA, weight=WEIGHT, kind=kind
    )
    assert res.converged, res.stop_reason
    assert _rel(res.x, ref) < 1e-5
    assert res.guarantee.holds


def test_tikhonov_with_data_weight(problem):
    """Tikhonov deconvolution argmin w/2||Ax-y||^2 + mu/2||grad x||^2, mu = sigma^2 c / gamma."""
    den = QuadraticProxDenoiser(weight=1.0)
    res = PnPFBS(problem["ours"], problem["y"], den, sigma=0.2, data_weight=2.5, max_iter=3000,
                 tol=1e-11).run()
    gamma = res.params.gamma
    assert abs(gamma - 1.0 / (2.5 * problem["ours"].opnorm(image_size=(20, 24)) ** 2)) < 1e-12
    ref = closed_form_minimiser(problem["ours"], problem["y"], gamma=gamma, sigma=0.2, weight=1.0,
                                data_weight=2.5)
    assert _rel(res.x, ref) < 1e-5


def test_fbs_ours_and_deepinv_blur_agree(problem):
    den = QuadraticProxDenoiser(weight=WEIGHT)
    a = PnPFBS(problem["ours"], problem["y"], den, sigma=SIGMA, gamma=1.0, max_iter=25, tol=1e-30).run()
    b = PnPFBS(problem["theirs"], problem["y"], den, sigma=SIGMA, gamma=1.0, max_iter=25, tol=1e-30).run()
    assert a.iterations == b.iterations == 25
    assert _rel(a.x, b.x) < 1e-10
    # ours: exact opnorm; deepinv BlurFFT: power-iteration estimate, flagged
    s_ours = PnPFBS(problem["ours"], problem["y"], den, sigma=SIGMA)
    s_theirs = PnPFBS(problem["theirs"], problem["y"], den, sigma=SIGMA)
    assert s_ours.opnorm_exact and s_ours.guarantee.checked
    assert not s_theirs.opnorm_exact and not s_theirs.guarantee.checked
    assert abs(s_ours.opnorm - s_theirs.opnorm) < 1e-4


@pytest.mark.parametrize("beta", [1.0, 0.7])
def test_same_iterates_as_deepinv_pgd(problem, beta):
    """deepinv 0.5.0 PGD: x_{k+1} = beta * D(x_k - stepsize * A^T(A x_k - y), g_param)
    + (1 - beta) x_k, initialised at A^T y. Every iterate k = 1..7 agrees, not only the last:
    our solver is stepped once per k and compared with deepinv run for exactly k iterations."""
    from deepinv.optim import optim_builder
    from deepinv.optim.data_fidelity import L2
    from deepinv.optim.prior import PnP

    den = QuadraticProxDenoiser(weight=WEIGHT)
    physics, y = problem["ours"], problem["y"].float()
    gamma, n_iter = 1.2, 7
    ours = PnPFBS(physics, y, den, sigma=SIGMA, gamma=gamma, relaxation=beta, max_iter=n_iter,
                  tol=1e-30)
    assert _rel(ours.x, physics.A_adjoint(y)) < 1e-6  # same initialisation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(1, n_iter + 1):
            model = optim_builder(
                "PGD", prior=PnP(den), data_fidelity=L2(), max_iter=k, early_stop=False,
                params_algo={"stepsize": gamma, "g_param": SIGMA, "lambda": 1.0, "beta": beta},
            )
            x_dinv = model(y, physics)
            assert ours.step() is not None
            assert ours.iteration == k
            assert _rel(ours.x, x_dinv) < 1e-5, f"iterate {k}: {_rel(ours.x, x_dinv):.3g}"
    res = ours.run()  # already at max_iter: run() adds nothing and returns the last iterate
    assert res.iterations == n_iter and torch.equal(res.x, ours.x)


def test_result_history_and_params(problem):
    den = QuadraticProxDenoiser()
    res = PnPHQS(problem["ours"], problem["y"], den, sigma=0.1, max_iter=6, tol=1e-30,
                 x_true=problem["x"]).run()
    assert isinstance(res, SolverResult)
    assert res.iterations == 6 and not res.converged
    assert "max_iter" in res.stop_reason
    assert res.history.residual.shape == (6, 2)
    assert res.history.psnr.shape == (6, 2)
    assert res.history.time.shape == (6,)
    assert res.params.solver == "hqs" and res.params.sigma == 0.1
    d = res.to_dict()
    assert d["guarantee"]["holds"] is True and len(d["history"]["residual"]) == 6
    with pytest.raises(Exception):
        res.iterations = 3  # frozen
    # residual definition: ||x_{k+1} - x_k|| / ||x_k|| per image
    s = PnPFBS(problem["ours"], problem["y"], den, sigma=0.1, max_iter=3)
    x0 = s.x.clone()
    r = s.step()
    expected = (s.x - x0).flatten(1).norm(dim=1) / x0.flatten(1).norm(dim=1)
    assert torch.allclose(r, expected)


def test_step_then_run_and_x0(problem):
    den = QuadraticProxDenoiser()
    x0 = torch.zeros_like(problem["x"])
    s = PnPADMM(problem["ours"], problem["y"], den, sigma=0.1, max_iter=4, tol=1e-30, x0=x0)
    assert torch.equal(s.x, x0)
    s.step()
    res = s.run()
    assert res.iterations == 4


def test_nan_stop_returns_last_finite(problem):
    calls = {"n": 0}

    def bad_denoiser(x, sigma):
        calls["n"] += 1
        return x * float("nan") if calls["n"] == 3 else 0.5 * x

    s = PnPFBS(problem["ours"], problem["y"], bad_denoiser, sigma=0.1, max_iter=10)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GuaranteeWarning)
            res = s.run()
    assert res.iterations == 2 and not res.converged
    assert "NaN" in res.stop_reason and "last finite" in res.stop_reason
    assert bool(torch.isfinite(res.x).all())
    assert res.history.residual.shape == (2, 2)


def test_no_certificate_warns_and_reports(problem):
    s = PnPFBS(problem["ours"], problem["y"], lambda x, sigma: 0.5 * x, sigma=0.1, max_iter=2)
    assert not s.guarantee.holds
    assert s.guarantee.reason == "denoiser has no certificate"
    with pytest.warns(GuaranteeWarning):
        s.run()


def test_flat_memory_no_tensors_kept(problem):
    s = PnPFBS(problem["ours"], problem["y"], QuadraticProxDenoiser(), sigma=0.1, max_iter=30,
               tol=1e-30)
    s.run()
    assert all(isinstance(v, float) for row in s._residuals for v in row)
    assert all(isinstance(v, float) for v in s._times)


def test_bad_arguments(problem):
    den = QuadraticProxDenoiser()
    ph, y = problem["ours"], problem["y"]
    with pytest.raises(TypeError):
        PnPFBS(ph, y, den, sigma=0.1, stepsize=1.0)  # unknown keyword
    with pytest.raises(TypeError):
        PnPHQS(ph, y, den, sigma=0.1, relaxation=0.5)  # FBS-only keyword
    with pytest.raises(TypeError):
        PnPFBS(ph, y, den, 0.1)  # keyword-only
    with pytest.raises(ValueError, match="sigma"):
        PnPFBS(ph, y, den, sigma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        PnPADMM(ph, y, den, sigma=0.1, gamma=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        PnPFBS(ph, y, den, sigma=0.1, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        PnPFBS(ph, y, den, sigma=0.1, tol=-1.0)
    with pytest.raises(ValueError, match="x0"):
        PnPFBS(ph, y, den, sigma=0.1, x0=torch.zeros(1, 1, 5, 5, dtype=y.dtype))
    with pytest.raises(ValueError, match="x_true"):
        PnPFBS(ph, y, den, sigma=0.1, x_true=torch.zeros(1, 1, 5, 5, dtype=y.dtype))
    with pytest.raises(ValueError, match="y"):
        PnPFBS(ph, y * float("nan"), den, sigma=0.1)
    with pytest.raises(TypeError, match="denoiser"):
        PnPFBS(ph, y, "tv", sigma=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_cuda(problem):
    ph = problem["ours"].to("cuda")
    y = problem["y"].cuda()
    res = PnPFBS(ph, y, QuadraticProxDenoiser(), sigma=0.1, max_iter=5).run()
    assert res.x.device.type == "cuda"
