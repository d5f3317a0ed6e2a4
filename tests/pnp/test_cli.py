"""``pnp deblur`` / ``pnp denoise``: outputs, report keys, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from pnp.cli import main
from pnp.io import read_image, write_image

DEMO = ["--demo", "--size", "48", "--kernel", "gaussian:7:1.2", "--max-iter", "4"]


def _err_one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_deblur_demo_writes_outputs(tmp_path, capsys):
    out, rep, plot = tmp_path / "r.png", tmp_path / "r.json", tmp_path / "p.png"
    rc = main(["deblur", *DEMO, "--out", str(out), "--report", str(rep), "--plot", str(plot)])
    assert rc == 0
    assert out.exists() and plot.exists()
    assert read_image(out).shape == (1, 1, 48, 48)
    report = json.loads(rep.read_text())
    for key in ("psnr", "psnr_input", "iterations", "converged", "guarantee", "solver",
                "denoiser", "kernel", "noise", "time"):
        assert key in report, key
    assert report["iterations"] == 4 and report["psnr"] > report["psnr_input"]
    assert report["guarantee"]["holds"] is True
    text = capsys.readouterr().out
    assert "PSNR restored" in text and "guarantee holds" in text and "converged" in text


@pytest.mark.parametrize("solver", ["hqs", "admm"])
def test_deblur_solvers_and_quadratic(tmp_path, solver):
    out = tmp_path / "r.tif"
    rc = main(["deblur", *DEMO, "--solver", solver, "--denoiser", "quadratic", "--bits", "16",
               "--out", str(out)])
    assert rc == 0 and read_image(out).shape == (1, 1, 48, 48)


def test_deblur_blurred_input(tmp_path, capsys):
    import numpy as np

    obs = tmp_path / "obs.png"
    write_image(obs, torch.rand(1, 3, 32, 32))
    kfile = tmp_path / "k.npy"
    np.save(kfile, np.ones((3, 3)) / 9)
    rep = tmp_path / "r.json"
    rc = main(["deblur", str(obs), "--blurred", "--kernel", str(kfile), "--max-iter", "3",
               "--denoiser", "quadratic", "--out", str(tmp_path / "o.png"), "--report", str(rep)])
    assert rc == 0
    report = json.loads(rep.read_text())
    assert report["psnr"] is None and report["psnr_input"] is None
    assert "PSNR" not in capsys.readouterr().out


def test_errors_exit_2_one_line(tmp_path, capsys):
    out = str(tmp_path / "o.png")
    assert main(["deblur", str(tmp_path / "missing.png"), "--out", out]) == 2
    assert "not found" in _err_one_line(capsys)
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    assert main(["deblur", str(bad), "--out", out]) == 2
    assert "cannot read" in _err_one_line(capsys)
    assert main(["deblur", *DEMO, "--noise", "-0.1", "--out", out]) == 2
    assert "--noise" in _err_one_line(capsys)
    assert main(["deblur", "--demo", "--size", "16", "--kernel", "gaussian:25:1.6", "--out", out]) == 2
    assert "larger than the image" in _err_one_line(capsys)
    assert main(["deblur", *DEMO, "--out", out]) == 0
    capsys.readouterr()
    assert main(["deblur", *DEMO, "--out", out]) == 2
    assert "exists" in _err_one_line(capsys)
    assert main(["deblur", *DEMO, "--out", out, "--force"]) == 0
    capsys.readouterr()
    assert main(["deblur", *DEMO, "--denoiser", "nope", "--out", out, "--force"]) == 2
    assert "unknown denoiser" in _err_one_line(capsys)
    assert main(["deblur", "--out", out]) == 2
    assert "--demo" in _err_one_line(capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["deblur", *DEMO, "--solver", "foo", "--out", "o.png"], "invalid choice: 'foo'"),
        (["deblur", *DEMO], "required: --out"),
        (["deblur", "--demo", "--max-iter", "0", "--out", "o.png"], "--max-iter"),
        (["deblur", "--demo", "--max-iter", "abc", "--out", "o.png"], "'abc'"),
        (["denoise", "--demo", "--noise", "lots", "--out", "o.png"], "--noise"),
        (["deblur", *DEMO, "--out", "o.png", "--no-such-flag"], "unrecognized arguments"),
        (["no-such-command"], "invalid choice"),
        ([], "required"),
        (["bench"], "required"),
    ],
)
def test_argparse_errors_exit_2_one_line(argv, expected, capsys):
    """argparse's own errors: one line ``pnp <cmd>: error: ...``, no usage block, return 2."""
    assert main(argv) == 2
    err = _err_one_line(capsys)
    assert expected in err and ": error: " in err and not err.startswith("usage")
    cmd = argv[0] if argv and argv[0] in ("deblur", "denoise") else None
    assert err.startswith(f"pnp {cmd}: error: " if cmd else "pnp")


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "deblur" in capsys.readouterr().out
    assert main(["deblur", "--help"]) == 0
    assert "--max-iter" in capsys.readouterr().out


def test_denoise_demo(tmp_path):
    out, rep = tmp_path / "d.png", tmp_path / "d.json"
    rc = main(["denoise", "--demo", "--size", "48", "--noise", "0.1", "--out", str(out),
               "--report", str(rep)])
    assert rc == 0
    report = json.loads(rep.read_text())
    assert report["psnr"] > report["psnr_input"]
    assert report["certificate"]["alpha"] == 0.5


def test_denoise_ensemble_equals_the_mean_over_symmetries(tmp_path):
    """``--ensemble`` writes the mean of D over the 8 symmetries and keeps the certificate."""
    import torch

    import pnp
    from denoisers import GeometricEnsemble
    from operators import add_gaussian_noise
    from pnp.cli._common import load_input
    from pnp.io import read_image

    out, rep = tmp_path / "e.png", tmp_path / "e.json"
    assert main(["denoise", "--demo", "--size", "32", "--noise", "0.1", "--denoiser", "quadratic",
                 "--ensemble", "--bits", "16", "--out", str(out), "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["ensemble"] is True
    x, _ = load_input(None, True, 32)
    y = add_gaussian_noise(x, 0.1, seed=0)
    d = pnp.get_denoiser("quadratic")
    with torch.no_grad():
        expected = GeometricEnsemble(d)(y, 0.1)
    got = read_image(out)
    assert float((got - expected.clamp(0, 1)).abs().max()) < 2.0 / 65535
    assert report["certificate"]["alpha"] == d.certificate.alpha
