"""benchmarks.set12_denoise: the figures equal a direct computation, rescaled and as is."""

import json
import math

import numpy as np
import pytest
import torch

import denoisers
from benchmarks.set12_denoise import main
from denoisers import AveragedConfig, AveragedResNet, save_denoiser
from denoisers.train import validation_images

pytestmark = pytest.mark.skipif(validation_images(1)[0] is None, reason="needs ../shared/data/set12")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = AveragedResNet(AveragedConfig(channels=2, hidden=3, depth=2))
    net.freeze()
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_denoiser(net, path, metadata={"sigma": 0.1})
    return path


def _psnr(fn, sigma):
    im = validation_images(1)[0][0][None].float()
    noise = np.random.default_rng(0).normal(0.0, sigma, size=tuple(im.shape)).astype(np.float32)
    with torch.no_grad():
        out = fn(im + torch.from_numpy(noise)).clamp(0, 1)
    return 10 * math.log10(1 / float(((out - im) ** 2).mean()))


def test_rescaled_and_as_is_match_a_direct_computation(weights, tmp_path):
    out = tmp_path / "r.json"
    assert main(["--denoiser", str(weights), "--levels", "5,20", "--max-images", "1", "--json", str(out)]) == 0
    assert main(["--denoiser", str(weights), "--levels", "5", "--max-images", "1", "--as-is",
                 "--json", str(tmp_path / "a.json")]) == 0
    rec = json.loads(out.read_text())["runs"][0]
    net = denoisers.load_denoiser(weights)
    for s in (5, 20):
        c = 0.1 / (s / 255)
        assert rec["psnr"][str(s)] == pytest.approx(_psnr(lambda y: net(c * y, 0.1) / c, s / 255), abs=1e-4)
    as_is = json.loads((tmp_path / "a.json").read_text())["runs"][0]
    assert as_is["psnr"]["5"] == pytest.approx(_psnr(lambda y: net(y, 0.1), 5 / 255), abs=1e-4)
    assert rec["params"] == sum(p.numel() for p in net.parameters()) and rec["alpha"] == pytest.approx(net.certificate.alpha)


def test_bad_arguments(weights, capsys):
    with pytest.raises(SystemExit):
        main(["--denoiser", str(weights), "--levels", "-3"])
    assert "--levels" in capsys.readouterr().err
    assert main(["--denoiser", "no-such-net", "--levels", "5"]) == 2
    assert "unknown denoiser" in capsys.readouterr().err


def test_ensemble_option_matches_a_direct_computation(weights, tmp_path):
    out = tmp_path / "e.json"
    assert main(["--denoiser", str(weights), "--levels", "25.5", "--max-images", "1", "--as-is", "--ensemble",
                 "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["runs"][0]
    assert rec["ensemble"] is True
    ens = denoisers.GeometricEnsemble(denoisers.load_denoiser(weights))
    assert rec["psnr"]["25.5"] == pytest.approx(_psnr(lambda y: ens(y, 0.1), 0.1), abs=1e-4)
