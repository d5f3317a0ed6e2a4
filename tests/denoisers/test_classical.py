"""Classical denoisers: exact prox (optimality), contract over input kinds, certificates."""

from __future__ import annotations

import pytest
import torch

from denoisers import Certificate, QuadraticProxDenoiser, TVDenoiser


def _grad_quadratic(d: QuadraticProxDenoiser, u: torch.Tensor) -> torch.Tensor:
    """grad of (w/2)||grad u||^2 = w L u with L = grad^T grad (circular forward differences)."""
    u = u.detach().requires_grad_(True)
    d.regularizer(u).sum().backward()
    return u.grad


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 3, 9, 12)])
def test_quadratic_prox_optimality(shape):
    torch.manual_seed(0)
    d = QuadraticProxDenoiser(weight=1.7)
    x = torch.rand(shape, dtype=torch.float64)
    sigma = 0.4
    u = d(x, sigma)
    # optimality of argmin 1/2||u - x||^2 + sigma^2 R(u): u - x + sigma^2 grad R(u) = 0
    res = u - x + sigma**2 * _grad_quadratic(d, u)
    assert float(res.abs().max()) < 1e-12


def test_quadratic_is_firmly_nonexpansive():
    torch.manual_seed(1)
    d = QuadraticProxDenoiser(weight=3.0)
    a, b = torch.rand(2, 2, 3, 10, 10, dtype=torch.float64)
    da, db = d(a, 0.5), d(b, 0.5)
    # firm non-expansiveness: ||Da - Db||^2 <= <Da - Db, a - b>
    lhs = (da - db).pow(2).sum()
    rhs = ((da - db) * (a - b)).sum()
    assert float(lhs) <= float(rhs) + 1e-12
    assert d.certificate.alpha == 0.5 and d.certificate.exact
    assert d.certificate.lipschitz_bound == 1.0


# TV: an inner iterative solver with warm restart; fresh instances and a fixed number of inner
# iterations make batched and per-image calls comparable
@pytest.mark.parametrize(
    "make", [lambda: QuadraticProxDenoiser(), lambda: TVDenoiser(n_it_max=30, crit=1e-30)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 12, 12), (3, 3, 10, 14)])
def test_denoiser_contract(make, dtype, shape):
    d = make()
    x = torch.rand(shape, dtype=dtype)
    x_copy = x.clone()
    out = d(x, 0.1)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.equal(x, x_copy), "input mutated"
    # per-image sigma equals one call per image
    sig = torch.linspace(0.05, 0.2, shape[0], dtype=dtype)
    out_b = make()(x, sig)
    for i in range(shape[0]):
        single = make()(x[i : i + 1], float(sig[i]))
        assert torch.allclose(out_b[i : i + 1], single, atol=1e-5)
    assert isinstance(d.certificate, Certificate)


def test_tv_certificate_inexact_and_denoises():
    torch.manual_seed(0)
    d = TVDenoiser()
    assert d.certificate.alpha == 0.5 and d.certificate.exact is False
    x = torch.zeros(1, 1, 32, 32)
    x[..., 8:24, 8:24] = 1.0
    y = x + 0.1 * torch.randn_like(x)
    out = d(y, 0.1)
    assert float((out - x).pow(2).mean()) < 0.5 * float((y - x).pow(2).mean())


def test_tv_matches_deepinv_threshold_mapping():
    from deepinv.models import TVDenoiser as DTV

    torch.manual_seed(0)
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    ours = TVDenoiser(weight=4.0, n_it_max=300, crit=1e-10)(y, 0.2)
    ref = DTV(n_it_max=300, crit=1e-10)(y, ths=4.0 * 0.2**2)
    assert torch.allclose(ours, ref, atol=1e-10)


@pytest.mark.parametrize("bad", [-1.0, 0.0, float("nan")])
def test_bad_weight(bad):
    with pytest.raises(ValueError, match="weight"):
        QuadraticProxDenoiser(weight=bad)
    with pytest.raises(ValueError, match="weight"):
        TVDenoiser(weight=bad)


def test_bad_inputs():
    d = QuadraticProxDenoiser()
    with pytest.raises(ValueError, match="shape"):
        d(torch.rand(8, 8), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        d(torch.rand(1, 1, 8, 8), -0.1)
    with pytest.raises(ValueError, match="sigma"):
        d(torch.rand(2, 1, 8, 8), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(TypeError, match="dtype"):
        d(torch.ones(1, 1, 8, 8, dtype=torch.int64), 0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_cuda():
    x = torch.rand(2, 3, 16, 16, device="cuda")
    for d in (QuadraticProxDenoiser(), TVDenoiser(n_it_max=10)):
        out = d(x, 0.1)
        assert out.device == x.device
        assert torch.allclose(out.cpu(), d(x.cpu(), 0.1), atol=1e-5)
