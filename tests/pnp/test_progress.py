"""Progress lines: shown by ``pnp deblur|denoise|certify`` only on a terminal, never with
``--quiet`` or when stderr is not a TTY; the line itself (iteration, residual, PSNR, ETA)."""

from __future__ import annotations

import io
import sys

import pytest

from pnp.cli import main
from pnp.progress import ProgressLine, wants_progress

DEMO = ["--demo", "--size", "32", "--kernel", "gaussian:5:1.0", "--max-iter", "4", "--tol", "1e-12",
        "--denoiser", "quadratic"]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(monkeypatch, stream, argv):
    monkeypatch.setattr(sys, "stderr", stream)
    rc = main(argv)
    return rc, stream.getvalue()


@pytest.mark.parametrize("accel", ["none", "anderson"])
def test_deblur_progress_only_on_a_tty(tmp_path, monkeypatch, accel):
    out = str(tmp_path / "r.png")
    rc, err = _run(monkeypatch, FakeTTY(), ["deblur", *DEMO, "--accel", accel, "--out", out])
    assert rc == 0
    assert "\r" in err and "PnP-FBS it 4/4" in err and "residual" in err and "PSNR" in err
    assert "ETA" in err and err.endswith("\n")
    rc, err = _run(monkeypatch, io.StringIO(), ["deblur", *DEMO, "--accel", accel, "--out", out, "--force"])
    assert rc == 0 and err == ""  # not a terminal: silent
    rc, err = _run(monkeypatch, FakeTTY(), ["deblur", *DEMO, "--accel", accel, "--out", out, "--force",
                                            "--quiet"])
    assert rc == 0 and err == ""  # --quiet: silent


def test_denoise_progress_only_on_a_tty(tmp_path, monkeypatch):
    out = str(tmp_path / "d.png")
    argv = ["denoise", "--demo", "--size", "32", "--noise", "0.1", "--denoiser", "quadratic", "--out", out]
    rc, err = _run(monkeypatch, FakeTTY(), argv)
    assert rc == 0 and "denoise quadratic" in err and "PSNR" in err and "done" in err
    rc, err = _run(monkeypatch, io.StringIO(), [*argv, "--force"])
    assert rc == 0 and err == ""
    rc, err = _run(monkeypatch, FakeTTY(), [*argv, "--force", "--quiet"])
    assert rc == 0 and err == ""


def test_certify_progress_only_on_a_tty(tmp_path, monkeypatch):
    from denoisers import AveragedConfig, save_denoiser
    from tests.denoisers.test_averaged import _trained_like

    net = _trained_like(AveragedConfig(channels=4, hidden=4, depth=2, activation="relu"))
    weights = tmp_path / "tiny.safetensors"
    save_denoiser(net, weights, metadata={"sigma": 0.1})
    argv = ["certify", str(weights), "--sigma", "0.1", "--size", "16", "--steps", "3"]
    rc, err = _run(monkeypatch, FakeTTY(), argv)
    assert rc == 0 and "certify stage 1/4" in err and "stage 4/4" in err
    rc, err = _run(monkeypatch, io.StringIO(), argv)
    assert rc == 0 and err == ""
    rc, err = _run(monkeypatch, FakeTTY(), [*argv, "--quiet"])
    assert rc == 0 and err == ""


def test_progress_line_eta_and_tty_detection():
    assert wants_progress(False, FakeTTY()) and not wants_progress(True, FakeTTY())
    assert not wants_progress(False, io.StringIO())
    buf = io.StringIO()
    line = ProgressLine("PnP-FBS", total=100, tol=1e-5, stream=buf)
    # residual halves every iteration, 1 s per iteration: from 1e-2, ~10 more to reach 1e-5
    r = 1e-1
    for k in range(1, 5):
        r /= 2
        line.update(k, r, seconds=1.0)
    assert 9.0 <= line.eta(4) <= 11.0
    assert "PnP-FBS it 4/100" in buf.getvalue() and "PSNR" not in buf.getvalue()
    line.close()
    assert buf.getvalue().endswith("\n")
    flat = ProgressLine("x", total=10, tol=1e-5, stream=io.StringIO())
    for k in range(1, 4):
        flat.update(k, 1.0, seconds=2.0)  # not decreasing: the budget bounds the ETA
    assert flat.eta(3) == pytest.approx(14.0)
