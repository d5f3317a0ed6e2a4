"""The catalogue of bad inputs (issue 17): one row per case, for every entry point.

Command line rows: ``(id, argv, expected)``. Each must give exit code 2, exactly one line on
stderr that contains ``expected`` (the argument it blames) and no traceback, and leave the
working folder exactly as it was (no new, changed or removed file). ``{ckpt}``, ``{img}``, ...
in ``argv`` are the fixture files of :func:`files`. Python rows: ``(id, call, exception, match)``.

To grow the catalogue, add a line to one of the tables.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pnp
from pnp.cli import main

# --------------------------------------------------------------------------- fixture files

IMG = 32  # side of the test image (the default 25x25 kernel fits)


def _net_checkpoint(path: Path) -> None:
    from denoisers import AveragedConfig, AveragedResNet, save_denoiser

    torch.manual_seed(0)
    net = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1))
    net.freeze()
    save_denoiser(net, path, metadata={"sigma": 0.1})


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """Read-only inputs, outside the folder that the tests snapshot."""
    import imageio.v3 as iio
    import tifffile
    from safetensors.torch import save_file

    from denoisers.checkpoint import load_checkpoint, save_checkpoint

    d = tmp_path_factory.mktemp("assets")
    rng = np.random.default_rng(0)
    f: dict[str, Path] = {}
    f["img"] = d / "img.png"
    iio.imwrite(f["img"], (rng.random((IMG, IMG)) * 255).astype(np.uint8))
    f["ckpt"] = d / "net.safetensors"
    _net_checkpoint(f["ckpt"])
    data = f["ckpt"].read_bytes()
    f["truncated"] = d / "truncated.safetensors"
    f["truncated"].write_bytes(data[: len(data) // 2])
    f["foreign"] = d / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(f["foreign"]))
    f["pickle"] = d / "pickle.pt"
    f["pickle"].write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    f["empty_ckpt"] = d / "empty.safetensors"
    f["empty_ckpt"].write_bytes(b"")
    tensors, meta = load_checkpoint(f["ckpt"])
    key = next(k for k in tensors if k.endswith("weight"))
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    f["wrong_shape"] = d / "wrong_shape.safetensors"
    save_checkpoint(f["wrong_shape"], {**tensors, key: torch.zeros(3, 3)}, meta)
    f["tampered"] = d / "tampered.safetensors"
    save_checkpoint(f["tampered"], {**tensors, key: tensors[key] * 3.0}, meta)
    f["empty_file"] = d / "empty.png"
    f["empty_file"].write_bytes(b"")
    f["text_png"] = d / "text.png"
    f["text_png"].write_text("this is not an image\n")
    f["nan_tif"] = d / "nan.tif"
    arr = rng.random((IMG, IMG)).astype(np.float32)
    arr[3, 4] = np.nan
    tifffile.imwrite(f["nan_tif"], arr)
    f["tiny_img"] = d / "tiny.png"
    iio.imwrite(f["tiny_img"], np.zeros((4, 4), np.uint8))
    f["a_dir"] = d / "a_folder"
    f["a_dir"].mkdir()
    kernels = {
        "k_zero": np.zeros((5, 5)),
        "k_negative": np.array([[0.5, -0.2, 0.7]]),
        "k_nan": np.full((3, 3), np.nan),
        "k_3d": np.ones((3, 3, 3)) / 27,
        "k_empty": np.zeros((0, 0)),
        "k_inf": np.array([[np.inf, 1.0]]),
        "k_unnormalised": np.ones((3, 3)),
    }
    for name, k in kernels.items():
        f[name] = d / f"{name}.npy"
        np.save(f[name], k)
    f["data"] = d / "data"
    f["data"].mkdir()
    iio.imwrite(f["data"] / "a.png", (rng.random((32, 32)) * 255).astype(np.uint8))
    return f


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The folder a command runs in (the snapshot covers it), with one existing output."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists.png").write_bytes(b"precious")
    (tmp_path / "exists.json").write_text("{}")
    (tmp_path / "exists.safetensors").write_bytes(b"precious")
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    yield tmp_path
    ro.chmod(0o755)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            data = p.read_bytes() if p.is_file() else b""
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode, data)
    return out


# --------------------------------------------------------------------------- the CLI catalogue
D = ["deblur", "{img}", "--max-iter", "2"]
N = ["denoise", "{img}"]
BENCH = ["bench", "deblur", "--data", "{data}", "--kernels", "1", "--max-images", "1", "--max-iter", "2",
         "--noise", "0.01", "--quiet"]

CLI_CASES = [
    # 1. the denoiser by path, and what the resolver refuses (the same in every command)
    ("deblur-missing-checkpoint", D + ["--denoiser", "nope.safetensors", "--out", "o.png"], "--denoiser 'nope.safetensors'"),
    ("deblur-truncated-checkpoint", D + ["--denoiser", "{truncated}", "--out", "o.png"], "--denoiser"),
    ("deblur-empty-checkpoint", D + ["--denoiser", "{empty_ckpt}", "--out", "o.png"], "--denoiser"),
    ("deblur-foreign-safetensors", D + ["--denoiser", "{foreign}", "--out", "o.png"], "--denoiser"),
    ("deblur-pickle-checkpoint", D + ["--denoiser", "{pickle}", "--out", "o.png"], "--denoiser"),
    ("deblur-wrong-shape-checkpoint", D + ["--denoiser", "{wrong_shape}", "--out", "o.png"], "--denoiser"),
    ("deblur-tampered-checkpoint", D + ["--denoiser", "{tampered}", "--out", "o.png"], "does not match the weights"),
    ("deblur-folder-as-checkpoint", D + ["--denoiser", "{a_dir}", "--out", "o.png"], "--denoiser"),
    ("deblur-unknown-denoiser", D + ["--denoiser", "foo", "--out", "o.png"], "--denoiser 'foo': unknown denoiser"),
    ("deblur-empty-denoiser", D + ["--denoiser", " ", "--out", "o.png"], "--denoiser"),
    ("deblur-closed-form-denoiser", D + ["--denoiser", "wiener", "--out", "o.png"], "closed-form"),
    ("deblur-bad-py-factory", D + ["--denoiser", "py:no_such_module:f", "--out", "o.png"], "--denoiser"),
    ("denoise-missing-checkpoint", N + ["--denoiser", "nope.safetensors", "--out", "o.png"], "--denoiser 'nope.safetensors'"),
    ("denoise-truncated-checkpoint", N + ["--denoiser", "{truncated}", "--out", "o.png"], "--denoiser"),
    ("denoise-unknown-denoiser", N + ["--denoiser", "foo", "--out", "o.png"], "--denoiser 'foo'"),
    ("certify-unknown", ["certify", "foo"], "WEIGHTS_OR_NAME 'foo'"),
    ("certify-truncated", ["certify", "{truncated}"], "WEIGHTS_OR_NAME"),
    ("certify-uncertified", ["certify", "bm3d"], "no certificate"),
    ("train-init-unknown", ["train", "--sigma", "0.1", "--out", "w.safetensors", "--init", "foo"], "--init 'foo'"),
    ("train-init-truncated", ["train", "--sigma", "0.1", "--out", "w.safetensors", "--init", "{truncated}"], "--init"),
    ("train-init-classical", ["train", "--sigma", "0.1", "--out", "w.safetensors", "--init", "tv"], "--init tv"),
    # 2. outputs: checked before any work, never left behind
    ("report-in-readonly-folder", D + ["--out", "o.png", "--report", "readonly/r.json"], "--report"),
    ("plot-in-readonly-folder", D + ["--out", "o.png", "--plot", "readonly/p.png"], "--plot"),
    ("out-in-readonly-folder", D + ["--out", "readonly/o.png"], "--out"),
    ("report-under-a-file", D + ["--out", "o.png", "--report", "exists.json/r.json"], "--report"),
    ("plot-bad-suffix", D + ["--out", "o.png", "--plot", "p.gif"], "--plot"),
    ("report-equals-out", D + ["--out", "o.png", "--report", "o.png"], "--report"),
    ("plot-equals-out", D + ["--out", "o.png", "--plot", "./o.png"], "--plot"),
    ("plot-equals-report", D + ["--out", "o.png", "--report", "r.json", "--plot", "r.json"], "--plot"),
    ("out-exists", D + ["--out", "exists.png"], "--out 'exists.png' exists"),
    ("report-exists", D + ["--out", "o.png", "--report", "exists.json"], "--report 'exists.json' exists"),
    ("out-bad-suffix", D + ["--out", "o.txt"], "--out"),
    ("out-missing-folder", D + ["--out", "no/such/o.png"], "--out"),
    ("out-is-a-folder", D + ["--out", "readonly"], "--out"),
    ("report-not-json", D + ["--out", "o.png", "--report", "r.txt"], "--report"),
    ("out-16-bit-jpeg", D + ["--out", "o.jpg", "--bits", "16"], "--bits 16"),
    ("denoise-report-equals-out", N + ["--out", "o.png", "--report", "o.png"], "--report"),
    ("denoise-out-exists", N + ["--out", "exists.png"], "--out"),
    ("certify-json-exists", ["certify", "{ckpt}", "--json", "exists.json"], "--json"),
    ("train-out-exists", ["train", "--sigma", "0.1", "--out", "exists.safetensors"], "--out"),
    ("train-out-suffix", ["train", "--sigma", "0.1", "--out", "w.pt"], "--out"),
    ("train-out-readonly", ["train", "--sigma", "0.1", "--out", "readonly/w.safetensors"], "--out"),
    ("out-empty-string", D + ["--out", ""], "--out"),
    ("report-is-a-folder", D + ["--out", "o.png", "--report", "readonly"], "--report"),
    ("denoiser-is-an-image", D + ["--denoiser", "{img}", "--out", "o.png"], "--denoiser"),
    ("demo-size-zero", ["deblur", "--demo", "--size", "0", "--out", "o.png"], "--size"),
    ("seed-not-an-int", D + ["--seed", "abc", "--out", "o.png"], "--seed"),
    ("certify-size-too-small", ["certify", "{ckpt}", "--size", "4"], "--size"),
    ("train-sigma-range-reversed", ["train", "--sigma", "0.1", "--sigma-range", "0.2:0.1", "--out", "w.safetensors"], "--sigma-range"),
    ("train-patch-size-zero", ["train", "--sigma", "0.1", "--patch-size", "0", "--out", "w.safetensors"], "--patch-size"),
    ("train-loss-crop-too-big", ["train", "--family", "crr", "--sigma", "0.1", "--patch-size", "40", "--loss-crop", "20",
                                 "--out", "w.safetensors"], "--loss-crop"),
    ("train-loss-crop-rk", ["train", "--sigma", "0.1", "--loss-crop", "3", "--out", "w.safetensors"], "--loss-crop"),
    ("train-sigma-weight-power-nan", ["train", "--family", "crr", "--sigma", "0.1", "--sigma-weight-power", "nan",
                                      "--out", "w.safetensors"], "--sigma-weight-power"),
    ("train-sigma-weight-power-rk", ["train", "--sigma", "0.1", "--sigma-weight-power", "0", "--out", "w.safetensors"],
     "--sigma-weight-power"),
    # 3. bench: no folder for a command that cannot run
    ("bench-unknown-denoiser", BENCH + ["--denoiser", "foo", "--out", "runs"], "--denoiser 'foo'"),
    ("bench-truncated-checkpoint", BENCH + ["--denoiser", "{truncated}", "--out", "runs"], "--denoiser"),
    ("bench-all-runs-fail", BENCH + ["--denoiser", "broken-for-tests", "--out", "runs"], "all 1 planned run(s) failed"),
    ("bench-noise-too-large", BENCH[:-3] + ["--noise", "2", "--denoiser", "tv", "--out", "runs"], "--noise"),
    ("bench-out-is-a-file", BENCH + ["--denoiser", "tv", "--out", "exists.json"], "--out"),
    ("bench-missing-data", ["bench", "deblur", "--data", "no-such-folder", "--denoiser", "tv", "--out", "runs"], "no-such-folder"),
    ("bench-denoise-unknown", ["bench", "denoise", "--data", "{data}", "--denoiser", "foo", "--out", "runs"], "--denoiser 'foo'"),
    ("bench-denoise-all-fail", ["bench", "denoise", "--data", "{data}", "--denoiser", "broken-for-tests", "--noise", "0.1", "--out", "runs"], "broken on purpose"),
    ("bench-denoise-closed-form", ["bench", "denoise", "--data", "{data}", "--denoiser", "wiener", "--out", "runs"], "--denoiser 'wiener'"),
    ("bench-denoise-negative-noise", ["bench", "denoise", "--data", "{data}", "--denoiser", "tv", "--noise", "-0.1", "--out", "runs"], "--noise"),
    ("bench-kernel-index-out-of-range", BENCH + ["--kernels", "99", "--denoiser", "tv", "--out", "runs"], "kernel index 99"),
    ("bench-solver-unknown", BENCH + ["--solver", "foo", "--denoiser", "tv", "--out", "runs"], "solver 'foo'"),
    ("bench-max-images-zero", BENCH + ["--max-images", "0", "--denoiser", "tv", "--out", "runs"], "--max-images"),
    ("bench-speed-unknown", ["bench", "speed", "--sizes", "32", "--denoiser", "foo", "--out", "runs"], "--denoiser 'foo'"),
    ("bench-calibrate-unknown", ["bench", "calibrate", "--data", "{data}", "--denoiser", "foo", "--out", "c.toml"], "--denoiser 'foo'"),
    ("bench-calibrate-out-exists", ["bench", "calibrate", "--data", "{data}", "--denoiser", "tv", "--out", "exists.json"], "--out"),
    # 6. noise levels and parameters
    ("noise-huge", D + ["--noise", "1e9", "--out", "o.png"], "--noise"),
    ("noise-negative", D + ["--noise", "-0.01", "--out", "o.png"], "--noise"),
    ("noise-nan", D + ["--noise", "nan", "--out", "o.png"], "--noise"),
    ("noise-inf", D + ["--noise", "inf", "--out", "o.png"], "--noise"),
    ("noise-not-a-number", D + ["--noise", "abc", "--out", "o.png"], "--noise"),
    ("denoise-noise-huge", N + ["--noise", "1e9", "--out", "o.png"], "--noise"),
    ("denoise-zero-noise-no-sigma", N + ["--noise", "0", "--out", "o.png"], "--sigma"),
    ("denoise-sigma-negative", N + ["--sigma", "-1", "--out", "o.png"], "--sigma"),
    ("sigma-zero", D + ["--sigma", "0", "--out", "o.png"], "--sigma"),
    ("gamma-inf", D + ["--gamma", "inf", "--out", "o.png"], "--gamma"),
    ("tol-zero", D + ["--tol", "0", "--out", "o.png"], "--tol"),
    ("max-iter-zero", ["deblur", "{img}", "--max-iter", "0", "--out", "o.png"], "--max-iter"),
    ("solver-unknown", D + ["--solver", "foo", "--out", "o.png"], "--solver"),
    ("train-sigma-zero", ["train", "--sigma", "0", "--out", "w.safetensors"], "--sigma"),
    ("train-sigma-huge", ["train", "--sigma", "300", "--out", "w.safetensors"], "--sigma"),
    ("train-steps-zero", ["train", "--sigma", "0.1", "--steps", "0", "--out", "w.safetensors"], "--steps"),
    ("train-lr-negative", ["train", "--sigma", "0.1", "--lr", "-1", "--out", "w.safetensors"], "--lr"),
    ("train-empty-data-folder", ["train", "--sigma", "0.1", "--data", "{a_dir}", "--out", "w.safetensors"], "holds no images"),
    ("train-data-is-a-file", ["train", "--sigma", "0.1", "--data", "{img}", "--out", "w.safetensors"], "--data"),
    ("train-missing-data", ["train", "--sigma", "0.1", "--data", "no-such-dir", "--out", "w.safetensors"], "--data"),
    ("certify-sigma-nan", ["certify", "{ckpt}", "--sigma", "nan"], "--sigma"),
    # images
    ("image-missing", ["deblur", "missing.png", "--out", "o.png"], "missing.png"),
    ("image-empty-file", ["deblur", "{empty_file}", "--out", "o.png"], "IMAGE"),
    ("image-not-an-image", ["deblur", "{text_png}", "--out", "o.png"], "IMAGE"),
    ("image-is-a-folder", ["deblur", "{a_dir}", "--out", "o.png"], "IMAGE"),
    ("image-with-nan", ["deblur", "{nan_tif}", "--out", "o.png"], "NaN"),
    ("image-and-demo", ["deblur", "{img}", "--demo", "--out", "o.png"], "--demo"),
    ("no-image", ["deblur", "--out", "o.png"], "IMAGE"),
    ("denoise-image-missing", ["denoise", "missing.png", "--out", "o.png"], "missing.png"),
    ("denoise-image-not-an-image", ["denoise", "{text_png}", "--out", "o.png"], "IMAGE"),
    # kernels
    ("kernel-all-zero", D + ["--kernel", "{k_zero}", "--out", "o.png"], "--kernel"),
    ("kernel-negative", D + ["--kernel", "{k_negative}", "--out", "o.png"], "negative"),
    ("kernel-nan", D + ["--kernel", "{k_nan}", "--out", "o.png"], "--kernel"),
    ("kernel-inf", D + ["--kernel", "{k_inf}", "--out", "o.png"], "--kernel"),
    ("kernel-3d", D + ["--kernel", "{k_3d}", "--out", "o.png"], "--kernel"),
    ("kernel-empty", D + ["--kernel", "{k_empty}", "--out", "o.png"], "--kernel"),
    ("kernel-missing-file", D + ["--kernel", "nope.npy", "--out", "o.png"], "--kernel"),
    ("kernel-bad-spec", D + ["--kernel", "gaussian:abc", "--out", "o.png"], "--kernel"),
    ("kernel-larger-than-image", ["deblur", "{tiny_img}", "--kernel", "gaussian:9:1.0", "--out", "o.png"], "larger than the image"),
    ("kernel-not-an-image", D + ["--kernel", "{text_png}", "--out", "o.png"], "--kernel"),
    ("kernel-empty-image-file", D + ["--kernel", "{empty_file}", "--out", "o.png"], "--kernel"),
    ("kernel-is-a-folder", D + ["--kernel", "{a_dir}", "--out", "o.png"], "--kernel"),
    ("kernel-uniform-zero", D + ["--kernel", "uniform:0", "--out", "o.png"], "--kernel"),
    ("kernel-levin-out-of-range", D + ["--kernel", "levin:99", "--out", "o.png"], "--kernel"),
    ("blurred-without-kernel", ["deblur", "{img}", "--blurred", "--out", "o.png"], "--kernel"),
]


class _Broken(torch.nn.Module):
    """A denoiser that fails at every call (every benchmark run fails)."""

    def forward(self, x, sigma):
        raise RuntimeError("broken on purpose")


def _fill(argv: list[str], files: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]


@pytest.mark.parametrize("case_id,argv,expected", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_with_one_line_and_leaves_nothing(case_id, argv, expected, assets, work, capsys, monkeypatch):
    if "readonly" in case_id and os.geteuid() == 0:  # root ignores modes: deny like the kernel would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
            False if Path(p).resolve() == (work / "readonly").resolve() and mode & os.W_OK
            else real_access(p, mode, **kw)))
    from pnp.resolve import register_denoiser

    register_denoiser("broken-for-tests", _Broken)
    before = snapshot(work)
    rc = main(_fill(argv, assets))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    assert rc == 2, err
    assert len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and "None" not in errors[0]
    assert snapshot(work) == before, "the command left files behind or changed them"


# --------------------------------------------------------------------------- what now works
def test_checkpoint_by_path_works_in_every_entry_point(assets, work, capsys):
    img, ckpt = str(assets["img"]), str(assets["ckpt"])
    assert main(["deblur", img, "--denoiser", ckpt, "--kernel", "gaussian:5:1.0", "--max-iter", "2", "--out", "d.png",
                 "--report", "d.json"]) == 0
    assert main(["denoise", img, "--denoiser", ckpt, "--out", "n.png"]) == 0
    y = torch.rand(1, 1, IMG, IMG)
    res = pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, denoiser=ckpt, max_iter=2)
    assert res.guarantee.holds
    assert {p.name for p in work.iterdir()} >= {"d.png", "d.json", "n.png"}
    assert not [p for p in work.iterdir() if ".partial" in p.name]


def test_failure_while_writing_leaves_nothing(assets, work, monkeypatch, capsys):
    """The plot fails after the image and the report are staged: nothing appears."""
    import pnp.cli.deblur as deblur_cli

    def failing_plot(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(deblur_cli, "write_plot", failing_plot)
    before = snapshot(work)
    rc = main(["deblur", str(assets["img"]), "--kernel", "gaussian:5:1.0", "--max-iter", "2", "--out", "o.png",
               "--report", "r.json", "--plot", "p.png"])
    assert rc == 2 and "disk full" in capsys.readouterr().err
    assert snapshot(work) == before


def test_force_overwrites_in_place(assets, work, capsys):
    rc = main(["deblur", str(assets["img"]), "--kernel", "gaussian:5:1.0", "--max-iter", "2", "--out", "exists.png",
               "--force"])
    assert rc == 0 and (work / "exists.png").read_bytes()[:4] == b"\x89PNG"
    assert oct((work / "exists.png").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_kernel_warning_is_one_line_without_source(assets, work, capsys):
    rc = main(["deblur", str(assets["img"]), "--kernel", str(assets["k_unnormalised"]), "--max-iter", "2",
               "--out", "o.png"])
    err = capsys.readouterr().err
    warn = [line for line in err.splitlines() if "warning" in line]
    assert rc == 0 and len(warn) == 1 and "KernelWarning" in warn[0] and "sums to 9" in warn[0]
    assert "warnings.warn" not in err and ".py:" not in err


def test_weights_are_written_with_the_mode_of_a_new_file(tmp_path):
    path = tmp_path / "w.safetensors"
    _net_checkpoint(path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_train_summary_says_before_and_after_freezing(tmp_path, monkeypatch, capsys):
    """Tiny ``pnp train`` with validation: the summary explains why its PSNR differs from the last
    logged one, the weights are 0644-like, the JSON says when its PSNR was measured."""
    import json

    import imageio.v3 as iio

    rng = np.random.default_rng(1)
    for sub in ("train", "shared/set12"):
        (tmp_path / sub).mkdir(parents=True)
        iio.imwrite(tmp_path / sub / "a.png", (rng.random((32, 32)) * 255).astype(np.uint8))
    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "shared"))
    out = tmp_path / "w" / "net.safetensors"  # a folder that does not exist yet is created
    rc = main(["train", "--sigma", "0.1", "--channels", "2", "--hidden", "2", "--depth", "1", "--steps", "2",
               "--validate-every", "1", "--batch-size", "2", "--patch-size", "16", "--data", str(tmp_path / "train"),
               "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    line = next(line for line in text.splitlines() if "validation PSNR" in line)
    assert "after freezing" in line and "before freezing" in line and "at step 2" in line
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert "after freeze()" in json.loads(out.with_suffix(".json").read_text())["validation"]["psnr_when"]


def test_tampered_message_names_alpha_values(assets):
    from denoisers.checkpoint import CheckpointError

    with pytest.raises(CheckpointError) as info:
        pnp.get_denoiser(str(assets["tampered"]))
    assert "alpha=None" not in str(info.value) and "alpha = " in str(info.value)


def test_help_imports_no_torch():
    code = ("import sys, contextlib, io\nfrom pnp.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    rc = main(['--help'])\n"
            "assert rc == 0, rc\nprint('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_light_copy_of_the_image_suffixes_agrees_with_pnp_io():
    from pnp.cli._common import IMAGE_SUFFIXES
    from pnp.io import IMAGE_SUFFIXES as io_suffixes

    assert IMAGE_SUFFIXES == io_suffixes


def test_help_texts_show_defaults(capsys):
    for cmd, flags in (("deblur", ("--solver", "--denoiser", "--max-iter", "--bits")),
                       ("train", ("--steps", "--batch-size", "--patch-size", "--lr", "--validate-every",
                                  "--checkpoint-every"))):
        assert main([cmd, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split()).split("options:")[-1]
        for flag in flags:
            after = text.split(flag, 1)[-1][:300]
            assert "default" in after, (cmd, flag, after)


# --------------------------------------------------------------------------- the Python catalogue
def _y(**kw):
    return torch.rand(1, 1, IMG, IMG, **kw)


K = "gaussian:5:1.0"
API_CASES = [
    ("zero-kernel", lambda f: pnp.deblur(_y(), torch.zeros(5, 5), noise_level=0.01), ValueError, "all zero"),
    ("negative-kernel", lambda f: pnp.deblur(_y(), torch.tensor([[0.5, -0.2, 0.7]]), noise_level=0.01), ValueError, "negative"),
    ("nan-kernel", lambda f: pnp.deblur(_y(), torch.full((3, 3), float("nan")), noise_level=0.01), ValueError, "kernel"),
    ("3d-kernel", lambda f: pnp.deblur(_y(), torch.ones(2, 3, 3), noise_level=0.01), ValueError, "kernel"),
    ("complex-kernel", lambda f: pnp.deblur(_y(), torch.ones(3, 3, dtype=torch.complex64), noise_level=0.01), TypeError, "kernel"),
    ("list-kernel", lambda f: pnp.deblur(_y(), [[1.0]], noise_level=0.01), TypeError, "kernel"),
    ("kernel-larger", lambda f: pnp.deblur(_y(), "gaussian:33:3", noise_level=0.01), ValueError, "larger than the image"),
    ("image-0-255", lambda f: pnp.deblur(_y() * 255, K, noise_level=0.01), ValueError, "y has values"),
    ("image-nan", lambda f: pnp.deblur(_y().index_fill(3, torch.tensor([2]), float("nan")), K, noise_level=0.01), ValueError, "y contains NaN"),
    ("image-inf", lambda f: pnp.deblur(_y().index_fill(3, torch.tensor([2]), float("inf")), K, noise_level=0.01), ValueError, "y contains NaN or Inf"),
    ("image-numpy", lambda f: pnp.deblur(np.random.rand(1, 1, IMG, IMG), K, noise_level=0.01), TypeError, "y must be a torch.Tensor"),
    ("image-2d", lambda f: pnp.deblur(torch.rand(IMG, IMG), K, noise_level=0.01), ValueError, r"y must have shape \[B, C, H, W\]"),
    ("image-uint8", lambda f: pnp.deblur((_y() * 255).to(torch.uint8), K, noise_level=0.01), TypeError, "y must be a floating-point"),
    ("image-complex", lambda f: pnp.deblur(_y(dtype=torch.complex64), K, noise_level=0.01), TypeError, "y must be real"),
    ("image-empty", lambda f: pnp.deblur(torch.rand(1, 1, 0, IMG), K, noise_level=0.01), ValueError, "y must not be empty"),
    ("noise-huge", lambda f: pnp.deblur(_y(), K, noise_level=1e9), ValueError, "noise_level"),
    ("noise-negative", lambda f: pnp.deblur(_y(), K, noise_level=-0.1), ValueError, "noise_level"),
    ("noise-nan", lambda f: pnp.deblur(_y(), K, noise_level=float("nan")), ValueError, "noise_level"),
    ("noise-string", lambda f: pnp.deblur(_y(), K, noise_level="0.01"), TypeError, "noise_level"),
    ("noise-bool", lambda f: pnp.deblur(_y(), K, noise_level=True), TypeError, "noise_level"),
    ("sigma-negative", lambda f: pnp.deblur(_y(), K, noise_level=0.01, sigma=-1.0), ValueError, "sigma"),
    ("gamma-nan", lambda f: pnp.deblur(_y(), K, noise_level=0.01, gamma=float("nan")), ValueError, "gamma"),
    ("x-true-shape", lambda f: pnp.deblur(_y(), K, noise_level=0.01, x_true=torch.rand(1, 1, 8, 8)), ValueError, "x_true"),
    ("x0-nan", lambda f: pnp.deblur(_y(), K, noise_level=0.01, x0=torch.full((1, 1, IMG, IMG), float("nan"))), ValueError, "x0"),
    ("unknown-denoiser", lambda f: pnp.deblur(_y(), K, noise_level=0.01, denoiser="foo"), ValueError, "unknown denoiser"),
    ("missing-checkpoint", lambda f: pnp.deblur(_y(), K, noise_level=0.01, denoiser="nope.safetensors"), FileNotFoundError, "denoiser 'nope.safetensors'"),
    ("truncated-checkpoint", lambda f: pnp.deblur(_y(), K, noise_level=0.01, denoiser=str(f["truncated"])), ValueError, "not a loadable checkpoint"),
    ("pickle-checkpoint", lambda f: pnp.deblur(_y(), K, noise_level=0.01, denoiser=str(f["pickle"])), ValueError, "not a loadable checkpoint"),
    ("wrong-shape-checkpoint", lambda f: pnp.get_denoiser(str(f["wrong_shape"])), ValueError, "not a loadable checkpoint"),
    ("folder-checkpoint", lambda f: pnp.get_denoiser(str(f["a_dir"])), IsADirectoryError, "directory"),
    ("denoiser-int", lambda f: pnp.deblur(_y(), K, noise_level=0.01, denoiser=42), TypeError, "denoiser"),
    ("closed-form-denoiser", lambda f: pnp.get_denoiser("tikhonov"), ValueError, "closed-form"),
    ("solver-unknown", lambda f: pnp.deblur(_y(), K, noise_level=0.01, solver="foo"), ValueError, "solver"),
    ("kernel-missing-file", lambda f: pnp.deblur(_y(), "nope.npy", noise_level=0.01), FileNotFoundError, "kernel file not found: nope.npy"),
    ("kernel-object-array", lambda f: pnp.deblur(_y(), np.array([[None]]), noise_level=0.01), TypeError, "kernel"),
    ("image-5d", lambda f: pnp.deblur(torch.rand(1, 1, 1, IMG, IMG), K, noise_level=0.01), ValueError, "y must have shape"),
    ("image-negative-range", lambda f: pnp.deblur(_y() - 5.0, K, noise_level=0.01), ValueError, "y has values"),
]


@pytest.mark.parametrize("case_id,call,exc,match", API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_raises_a_typed_error(case_id, call, exc, match, assets):
    with pytest.raises(exc, match=match):
        call(assets)


# --------------------------------------------------------------------------- denoiser forward
def _denoisers(assets):
    import denoisers
    from denoisers.classical import QuadraticProxDenoiser, TVDenoiser
    from denoisers.ridge import RidgeConfig, RidgeDenoiser, RidgeRegularizer

    return {
        "tv": TVDenoiser(),
        "quadratic": QuadraticProxDenoiser(),
        "checkpoint": denoisers.load(str(assets["ckpt"])),
        "checkpoint-ensemble": denoisers.GeometricEnsemble(denoisers.load(str(assets["ckpt"]))),
        "ridge-prox": RidgeDenoiser(RidgeRegularizer(RidgeConfig(channels=(1, 3, 6), kernel_size=3, spline_knots=17,
                                                                 spline_range=2.0, grid=64))),
    }


x4 = torch.rand(1, 1, 16, 16)
FORWARD_CASES = [
    ("2d", lambda: (torch.rand(16, 16), 0.1), ValueError, r"x must have shape \[B, C, H, W\].*x\[None, None\]"),
    ("3d-chw", lambda: (torch.rand(32, 16, 16), 0.1), ValueError, r"x must have shape \[B, C, H, W\].*x\[None\]"),
    ("uint8", lambda: ((x4 * 255).to(torch.uint8), 0.1), TypeError, "floating-point"),
    ("int64", lambda: (torch.ones(1, 1, 16, 16, dtype=torch.int64), 0.1), TypeError, "floating-point"),
    ("complex", lambda: (x4.to(torch.complex64), 0.1), TypeError, "x must be real"),
    ("numpy", lambda: (np.random.rand(1, 1, 16, 16), 0.1), TypeError, "torch.Tensor.*from_numpy"),
    ("list", lambda: ([[0.0]], 0.1), TypeError, "torch.Tensor"),
    ("empty", lambda: (torch.rand(1, 1, 0, 16), 0.1), ValueError, "empty"),
    ("sigma-nan", lambda: (x4, float("nan")), ValueError, "sigma"),
    ("sigma-string", lambda: (x4, "0.1"), TypeError, "sigma"),
    ("5d", lambda: (torch.rand(1, 1, 1, 16, 16), 0.1), ValueError, r"x must have shape \[B, C, H, W\]"),
    ("sigma-none", lambda: (x4, None), TypeError, "sigma"),
    ("sigma-bool", lambda: (x4, True), TypeError, "sigma"),
    ("sigma-wrong-length", lambda: (x4, torch.tensor([0.1, 0.2, 0.3])), ValueError, "sigma"),
]


@pytest.mark.parametrize("case_id,make,exc,match", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
@pytest.mark.parametrize("which", ["tv", "quadratic", "checkpoint", "checkpoint-ensemble", "ridge-prox"])
def test_denoiser_forward_refuses(case_id, make, exc, match, which, assets):
    den = _denoisers(assets)[which]
    x, sigma = make()
    with pytest.raises(exc, match=match):
        den(x, sigma)


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("inf")])
def test_network_refuses_nonpositive_or_infinite_sigma(sigma, assets):
    import denoisers

    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        denoisers.load(str(assets["ckpt"]))(x4, sigma)
