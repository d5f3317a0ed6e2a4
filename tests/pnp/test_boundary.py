"""Non-periodic blur models in the solvers, ``pnp.deblur(..., boundary=...)`` and
``pnp deblur --boundary``: known fixed points, guarantees stated with a norm bound and an
iterative prox, and the valid model beating the circular one at the borders of a real blur."""

from __future__ import annotations

import json
import math

import pytest
import torch

import pnp
from denoisers.classical import QuadraticProxDenoiser
from operators import FFTBlur, add_gaussian_noise, gaussian_kernel, motion_kernel
from pnp.cli import main
from pnp.io import read_image, write_image
from pnp.solvers import PnPADMM, PnPFBS, PnPHQS


def _smooth_scene(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth, non-periodic image in [0.1, 0.9]: a few low, non-harmonic frequencies."""
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    img = torch.zeros(h, w, dtype=torch.float64)
    for _ in range(4):
        fi, fj, ph = (torch.rand(3, generator=g, dtype=torch.float64) * torch.tensor([0.15, 0.15, 6.3])).tolist()
        img = img + torch.cos(fi * i + fj * j + ph)
    img = (img - img.min()) / (img.max() - img.min())
    return (0.1 + 0.8 * img)[None, None]


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """``grad^T grad x`` with circular forward differences (QuadraticProxDenoiser's ``L``)."""
    out = torch.zeros_like(x)
    for dim in (-2, -1):
        d = torch.roll(x, -1, dims=dim) - x
        out = out + (torch.roll(d, 1, dims=dim) - d)
    return out


def test_fbs_and_admm_reach_the_valid_minimiser() -> None:
    # D = prox of (c/2)||grad x||^2: FBS and ADMM both minimise
    # 1/2 ||A x - y||^2 + (sigma^2 c / gamma)/2 ||grad x||^2; A the valid blur (dense solve)
    k = motion_kernel(5, seed=1)
    op = FFTBlur(k, boundary="valid")
    x_hw = (14, 13)
    y = op.A(torch.rand(1, 1, *x_hw, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    n = x_hw[0] * x_hw[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, *x_hw)
    a = op.A(basis).reshape(n, -1).T
    lap = _laplacian(basis).reshape(n, n).T
    sigma, gamma, c = 0.3, 0.8, 1.0
    lam = sigma**2 * c / gamma
    exact = torch.linalg.solve(a.T @ a + lam * lap, a.T @ y.reshape(-1)).reshape(1, 1, *x_hw)
    den = QuadraticProxDenoiser(weight=c)
    fbs = PnPFBS(op, y, den, sigma=sigma, gamma=gamma, max_iter=4000, tol=1e-12).run()
    admm = PnPADMM(op, y, den, sigma=sigma, gamma=gamma, max_iter=4000, tol=1e-12).run()
    assert fbs.x.shape == exact.shape
    torch.testing.assert_close(fbs.x, exact, rtol=0, atol=1e-7)
    torch.testing.assert_close(admm.x, exact, rtol=0, atol=1e-7)


def test_guarantees_state_the_norm_bound_and_the_iterative_prox() -> None:
    op = FFTBlur(gaussian_kernel(5, 1.0), boundary="valid")
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    den = QuadraticProxDenoiser()
    fbs = PnPFBS(op, y, den, sigma=0.1, max_iter=2)
    assert fbs.opnorm_kind == "upper bound" and not fbs.opnorm_exact
    g = fbs.guarantee
    assert g.holds and g.checked
    assert "upper bound" in g.conditions[0] and "certified upper bound" in g.reason
    assert fbs.run().params.opnorm_kind == "upper bound"
    for cls in (PnPHQS, PnPADMM):
        gg = cls(op, y, den, sigma=0.1, max_iter=2).guarantee
        assert gg.holds and not gg.checked, gg
        assert any("computed iteratively: conjugate gradients" in c for c in gg.conditions)
        assert "computed iteratively to a tolerance" in gg.reason
    # circular: unchanged
    circ = FFTBlur(gaussian_kernel(5, 1.0))
    assert PnPHQS(circ, y, den, sigma=0.1).guarantee.checked
    f = PnPFBS(circ, y, den, sigma=0.1)
    assert f.opnorm_exact and f.opnorm_kind == "exact" and "(||A|| = " in f.guarantee.conditions[0]


@pytest.mark.parametrize("denoiser", ["quadratic", "tv"])
def test_valid_model_beats_circular_in_the_border_band(denoiser) -> None:
    # a smooth scene blurred BEFORE cropping: the observation has genuine, non-periodic borders
    scene = _smooth_scene(52, 50).to(torch.float32)
    k = gaussian_kernel(9, 2.0)
    truth_op = FFTBlur(k, boundary="valid")
    y = add_gaussian_noise(truth_op.A(scene), 0.005, seed=0)
    ref = truth_op.observed_region(scene)
    band = torch.ones(ref.shape[-2:], dtype=torch.bool)
    band[9:-9, 9:-9] = False

    def band_psnr(x: torch.Tensor) -> float:
        mse = float((x.clamp(0, 1) - ref)[..., band].pow(2).mean())
        return 10 * math.log10(1 / mse)

    out = {}
    for boundary in ("circular", "reflect", "valid"):
        res = pnp.deblur(y, k, noise_level=0.005, denoiser=denoiser, boundary=boundary,
                         max_iter=150, x_true=ref)
        assert res.x.shape == y.shape == ref.shape
        out[boundary] = band_psnr(res.x)
        assert res.history.psnr is not None and res.history.psnr.shape[1] == 1
    assert out["valid"] > out["circular"] + 3.0, out
    assert out["reflect"] > out["circular"], out


def test_deblur_valid_shapes_and_errors() -> None:
    y = torch.rand(1, 1, 20, 18)
    res = pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, denoiser="quadratic",
                     boundary="valid", max_iter=3)
    assert res.x.shape == y.shape and res.params.opnorm_kind == "upper bound"
    x0 = torch.zeros(1, 1, 24, 22)
    assert pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, denoiser="quadratic",
                      boundary="valid", max_iter=2, x0=x0).x.shape == y.shape
    with pytest.raises(ValueError, match=r"x0 must have shape \(1, 1, 24, 22\)"):
        pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, boundary="valid", x0=y)
    with pytest.raises(ValueError, match="unknown boundary 'periodic'"):
        pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, boundary="periodic")
    with pytest.raises(ValueError, match="kernel of size 25x25 is larger than the image of size 20x18"):
        pnp.deblur(y, "gaussian:25:1.6", noise_level=0.01, boundary="valid")
    with pytest.raises(ValueError, match=r"x_true must have shape \(1, 1, 20, 18\)"):
        pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, boundary="valid",
                   x_true=torch.rand(1, 1, 24, 22))


# ------------------------------------------------------------------------------------ CLI
def _err_one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_cli_boundary_defaults(tmp_path):
    # the demo keeps the circular protocol; a real IMAGE defaults to the valid model
    rep = tmp_path / "d.json"
    demo = ["--demo", "--size", "48", "--kernel", "gaussian:7:1.2", "--max-iter", "3",
            "--denoiser", "quadratic"]
    assert main(["deblur", *demo, "--out", str(tmp_path / "d.png"), "--report", str(rep)]) == 0
    assert json.loads(rep.read_text())["boundary"] == "circular"
    img = tmp_path / "img.png"
    write_image(img, torch.rand(1, 1, 40, 36))
    rep2 = tmp_path / "r.json"
    assert main(["deblur", str(img), "--kernel", "gaussian:7:1.2", "--max-iter", "3",
                 "--denoiser", "quadratic", "--out", str(tmp_path / "r.png"),
                 "--report", str(rep2)]) == 0
    report = json.loads(rep2.read_text())
    assert report["boundary"] == "valid" and report["psnr"] is not None
    # blurred before cropping: the observation and the restoration lose kernel - 1 pixels
    assert read_image(tmp_path / "r.png").shape == (1, 1, 34, 30)


@pytest.mark.parametrize("boundary", ["valid", "reflect", "replicate", "circular"])
def test_cli_boundary_on_blurred_input(tmp_path, boundary):
    obs = tmp_path / "obs.png"
    write_image(obs, torch.rand(1, 3, 30, 28))
    rep = tmp_path / "r.json"
    rc = main(["deblur", str(obs), "--blurred", "--kernel", "gaussian:5:1.0", "--boundary",
               boundary, "--max-iter", "2", "--denoiser", "quadratic", "--solver", "hqs",
               "--out", str(tmp_path / "o.png"), "--report", str(rep)])
    assert rc == 0
    assert read_image(tmp_path / "o.png").shape == (1, 3, 30, 28)
    report = json.loads(rep.read_text())
    assert report["boundary"] == boundary
    assert report["guarantee"]["checked"] is (boundary == "circular")


def test_cli_boundary_errors(tmp_path, capsys):
    img = tmp_path / "img.png"
    write_image(img, torch.rand(1, 1, 20, 20))
    rc = main(["deblur", str(img), "--kernel", "gaussian:13:2", "--boundary", "valid",
               "--out", str(tmp_path / "o.png")])
    assert rc == 2
    err = _err_one_line(capsys)
    assert "--boundary valid" in err and "too small" in err and "25x25" in err
    assert main(["deblur", str(img), "--boundary", "zeros", "--out", str(tmp_path / "o.png")]) == 2
    assert "--boundary: invalid choice: 'zeros'" in _err_one_line(capsys)
