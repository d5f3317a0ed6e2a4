"""Dense averaged gradient-step block: step rule, averagedness inequality, chains, errors."""

from __future__ import annotations

import pytest
import torch

from denoisers.certificate import compose_alpha
from denoisers.layers.dense_gradient_step import DenseGradientStep, chain_certificate

f64 = torch.float64


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_step_rule_and_certificate(alpha):
    torch.manual_seed(0)
    blk = DenseGradientStep(7, 11, alpha_target=alpha).double()
    with torch.no_grad():
        blk.W.mul_(5.0)  # any W: the step adapts, W is not touched
    W0 = blk.W.detach().clone()
    w = float(torch.linalg.matrix_norm(W0, ord=2))
    assert float(blk.step_size().detach()) == pytest.approx(2 * alpha / w**2, rel=1e-12)
    cert = blk.certificate
    assert cert.lipschitz_bound == 1.0
    assert alpha <= cert.alpha <= alpha * (1 + 3e-6)
    blk(torch.randn(3, 7, dtype=f64))
    assert torch.equal(blk.W.detach(), W0)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.95])
def test_averagedness_inequality_holds_on_random_pairs(alpha):
    """||Tx - Ty||^2 <= ||x - y||^2 - (1 - a)/a ||(I - T)x - (I - T)y||^2 (per pair)."""
    torch.manual_seed(1)
    blk = DenseGradientStep(6, 9, alpha_target=alpha).double()
    with torch.no_grad():
        blk.b.mul_(3.0)
    a = blk.certificate.alpha
    g = torch.Generator().manual_seed(2)
    x = torch.randn(500, 6, generator=g, dtype=f64) * 2
    y = x + torch.randn(500, 6, generator=g, dtype=f64) * torch.rand(500, 1, generator=g, dtype=f64)
    with torch.no_grad():
        Tx, Ty = blk(x), blk(y)
    lhs = (Tx - Ty).pow(2).sum(1)
    rhs = (x - y).pow(2).sum(1) - (1 - a) / a * ((x - Tx) - (y - Ty)).pow(2).sum(1)
    assert bool(torch.all(lhs <= rhs + 1e-10))
    assert bool(torch.all(lhs.sqrt() <= (x - y).pow(2).sum(1).sqrt() + 1e-12))


def test_chain_certificate_composes_alphas():
    torch.manual_seed(3)
    blocks = [DenseGradientStep(5, 8, alpha_target=a) for a in (0.3, 0.6, 0.5)]
    cert = chain_certificate(blocks)
    alphas = [b.certificate.alpha for b in blocks]
    assert cert.alpha == pytest.approx(compose_alpha(alphas), rel=1e-12)
    assert cert.alpha < 1 and cert.lipschitz_bound == 1.0 and len(cert.layers) == 3
    with pytest.raises(ValueError, match="non-empty"):
        chain_certificate([])


def test_gradients_flow_to_W_through_the_step():
    torch.manual_seed(4)
    blk = DenseGradientStep(4, 6)
    blk(torch.randn(8, 4)).pow(2).sum().backward()
    assert torch.isfinite(blk.W.grad).all() and float(blk.W.grad.abs().sum()) > 0


def test_input_not_mutated_and_dtypes():
    blk = DenseGradientStep(4, 6)
    x = torch.randn(3, 4)
    x0 = x.clone()
    assert blk(x).dtype == torch.float32
    assert torch.equal(x, x0)
    assert blk(x.double()).dtype == f64


def test_errors():
    with pytest.raises(ValueError, match="alpha_target"):
        DenseGradientStep(4, 6, alpha_target=1.0)
    with pytest.raises(ValueError, match="alpha_target"):
        DenseGradientStep(4, 6, alpha_target=0.0)
    with pytest.raises(ValueError, match="features"):
        DenseGradientStep(0, 6)
    blk = DenseGradientStep(4, 6)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 4\]"):
        blk(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        blk([[0.0] * 4])
