"""Geometric self-ensemble: symmetries, equivariance, and the certificate it keeps."""

import pytest
import torch

from denoisers import AveragedConfig, AveragedResNet, adversarial_averagedness, adversarial_lipschitz
from denoisers.ensemble import GeometricEnsemble, dihedral_transforms
from denoisers.ensemble import _forward, _inverse


def _net(seed=0):
    torch.manual_seed(seed)
    net = AveragedResNet(AveragedConfig(channels=4, hidden=5, depth=2, alpha_block=0.9)).double()
    with torch.no_grad():
        for i, b in enumerate(net.blocks):
            b.weight.mul_(1.0 + i)
            b.bias.normal_(0.0, 0.3)
    net.eval()
    net.freeze()
    return net


def test_group_sizes_and_inverses():
    assert len(dihedral_transforms(8, 8)) == 8 and len(set(dihedral_transforms(8, 8))) == 8
    assert len(dihedral_transforms(8, 6)) == 4
    x = torch.rand(1, 1, 6, 6)
    for k, f in dihedral_transforms(6, 6):
        torch.testing.assert_close(_inverse(_forward(x, k, f), k, f), x)
    # the 8 transforms of a generic image are pairwise different
    imgs = {tuple(_forward(x, k, f).flatten().tolist()) for k, f in dihedral_transforms(6, 6)}
    assert len(imgs) == 8


@pytest.mark.parametrize("shape", [(10, 10), (9, 12)])
def test_ensemble_is_equivariant_and_keeps_shape(shape):
    e = GeometricEnsemble(_net())
    x = torch.rand(2, 1, *shape, dtype=torch.float64)
    with torch.no_grad():
        y = e(x, 0.1)
        assert y.shape == x.shape
        for k, f in dihedral_transforms(*shape):
            torch.testing.assert_close(e(_forward(x, k, f), 0.1), _forward(y, k, f))


def test_certificate_kept_and_holds_under_adversarial_search():
    net = _net(1)
    e = GeometricEnsemble(net)
    cert = e.certificate
    assert cert.alpha == net.certificate.alpha and cert.lipschitz_bound == net.certificate.lipschitz_bound
    assert cert.exact
    x0 = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    assert adversarial_lipschitz(e, x0, steps=40, lr=0.05).value <= cert.lipschitz_bound + 1e-9
    assert adversarial_averagedness(e, x0, cert.alpha, steps=40, lr=0.05).value <= 1.0 + 1e-9


def test_bad_inputs():
    with pytest.raises(TypeError, match="denoiser"):
        GeometricEnsemble(3)
    with pytest.raises(ValueError, match="x must"):
        GeometricEnsemble(_net())(torch.rand(4, 4), 0.1)
    with pytest.raises(AttributeError, match="certificate"):
        GeometricEnsemble(lambda x, s: x).certificate
