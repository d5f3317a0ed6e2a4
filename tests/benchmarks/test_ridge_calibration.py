"""benchmarks.ridge_calibration: a lambda factor equals a model whose lambda(sigma) is scaled."""

import json
import math

import numpy as np
import pytest
import torch

from benchmarks.ridge_calibration import main
from denoisers.ridge import RidgeConfig, RidgeRegularizer
from denoisers.ridge.prox import ridge_prox
from denoisers.ridge.train import load_ridge, save_ridge
from denoisers.train import validation_images

pytestmark = pytest.mark.skipif(validation_images(1)[0] is None, reason="needs ../shared/data/set12")


def _psnr(reg, sigma):
    im = validation_images(1)[0][0][None].float()
    noise = np.random.default_rng(0).normal(0.0, sigma, size=tuple(im.shape)).astype(np.float32)
    out, _ = ridge_prox(reg, im + torch.from_numpy(noise), sigma, tol=1e-4, max_iter=5000)
    return 10 * math.log10(1 / float(((out.clamp(0, 1) - im) ** 2).mean()))


def test_scales_match_a_rescaled_model(tmp_path):
    torch.manual_seed(0)
    reg = RidgeRegularizer(RidgeConfig(kind="crr", channels=(1, 3, 6), kernel_size=3, spline_knots=17,
                                       spline_range=2.0, grid=64))
    path = tmp_path / "crr.safetensors"
    save_ridge(reg, path)
    out = tmp_path / "c.json"
    assert main(["--weights", str(path), "--level", "25", "--scales", "0.5,1", "--max-images", "1",
                 "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["runs"][0]
    reg, _ = load_ridge(path)
    assert rec["psnr"]["1"] == pytest.approx(_psnr(reg, 25 / 255), abs=1e-4)
    with torch.no_grad():
        reg.lam.values -= math.log(2.0)  # CRR: lambda = exp(a(sigma))
    assert rec["psnr"]["0.5"] == pytest.approx(_psnr(reg, 25 / 255), abs=1e-4)
    assert rec["psnr"]["0.5"] != pytest.approx(rec["psnr"]["1"], abs=1e-3)


@pytest.mark.parametrize("args", [["--weights", "rk-averaged"], ["--weights", "crr", "--scales", "0,1"],
                                  ["--weights", "crr", "--tol", "0"]])
def test_bad_arguments_exit_2(args, capsys):
    with pytest.raises(SystemExit) as e:
        rc = main(args + ["--max-images", "1"])
        raise SystemExit(rc)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--weights" in err or "--scales" in err or "--tol" in err
