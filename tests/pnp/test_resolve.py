"""The one denoiser resolver (pnp/resolve.py): the same names and errors at every entry point."""

from __future__ import annotations

import pytest
import torch

import pnp
from pnp import resolve


class _Shrink(torch.nn.Module):
    def forward(self, x, sigma):
        return 0.5 * x


@pytest.fixture
def shrink():
    resolve.register_denoiser("Shrink-Test", _Shrink)
    yield "shrink-test"
    resolve._REGISTERED.pop("shrink-test", None)


def test_a_registered_name_works_everywhere(shrink, tmp_path, capsys, monkeypatch):
    from benchmarks.baselines import known_denoisers, resolve_denoiser
    from pnp.cli import main

    assert shrink in resolve.known_denoisers() and shrink in pnp.available_denoisers()
    assert shrink in known_denoisers()
    for name in (shrink, "SHRINK-test", f"  {shrink} "):  # case and spaces do not matter
        assert isinstance(resolve.resolve_denoiser(name), _Shrink)
    assert isinstance(pnp.get_denoiser(shrink), _Shrink)
    assert isinstance(resolve_denoiser(shrink), _Shrink)
    y = torch.rand(1, 1, 16, 16)
    with pytest.warns(pnp.GuaranteeWarning):
        res = pnp.deblur(y, "gaussian:3:0.8", noise_level=0.01, denoiser=shrink, max_iter=3)
    assert not res.guarantee.holds  # no certificate, no guarantee claimed
    monkeypatch.chdir(tmp_path)
    assert main(["denoise", "--demo", "--size", "16", "--denoiser", shrink, "--out", "d.png"]) == 0
    assert (tmp_path / "d.png").is_file()


def test_builtin_names_map_to_their_classes():
    from denoisers.bm3d import BM3DDenoiser
    from denoisers.classical import QuadraticProxDenoiser, TVDenoiser

    assert isinstance(resolve.resolve_denoiser("TV"), TVDenoiser)
    assert isinstance(resolve.resolve_denoiser("quadratic"), QuadraticProxDenoiser)
    assert isinstance(resolve.resolve_denoiser("bm3d"), BM3DDenoiser)
    # stateful denoisers are fresh on every call (TV warm-starts its inner solver)
    assert resolve.resolve_denoiser("tv") is not resolve.resolve_denoiser("tv")
    assert set(resolve.BUILTIN_LOADERS) <= set(resolve.known_denoisers())


@pytest.mark.parametrize("name,exc", [
    ("", ValueError), ("wiener", ValueError), ("a/b", ValueError), ("py:x", ValueError), (3, ValueError),
])
def test_register_refuses_bad_names(name, exc):
    with pytest.raises(exc, match="name"):
        resolve.register_denoiser(name, _Shrink)


def test_register_refuses_a_non_callable():
    with pytest.raises(TypeError, match="loader"):
        resolve.register_denoiser("ok-name", 42)


def test_errors_name_the_callers_argument(tmp_path):
    with pytest.raises(resolve.UnknownDenoiserError, match="^--init 'foo': unknown denoiser"):
        resolve.resolve_denoiser("foo", argument="--init")
    with pytest.raises(FileNotFoundError, match="^--denoiser 'x/y.safetensors': no such checkpoint file"):
        resolve.resolve_denoiser("x/y.safetensors", argument="--denoiser")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        resolve.resolve_denoiser(str(tmp_path), argument="--denoiser")
    with pytest.raises(TypeError, match="denoiser must be a name or a path"):
        resolve.resolve_denoiser(None)


def test_a_checkpoint_by_path_equals_the_network_it_holds(tmp_path):
    from denoisers import AveragedConfig, AveragedResNet, save_denoiser

    torch.manual_seed(0)
    net = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1))
    net.freeze()
    path = tmp_path / "n.safetensors"
    save_denoiser(net, path, metadata={"sigma": 0.1})
    x = torch.rand(2, 1, 12, 12)
    for name in (str(path), path):  # a str or a PathLike
        den = resolve.resolve_denoiser(name)
        torch.testing.assert_close(den(x, 0.1), net(x, 0.1))
        assert den.certificate.alpha == pytest.approx(net.certificate.alpha)
