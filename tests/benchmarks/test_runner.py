"""The deblurring runner end to end on a tiny protocol: records and their keys, reports, the
deepinv cross-check, closed-form baselines, resume after interruption, the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from benchmarks.baselines import closed_form, register_denoiser, resolve_denoiser
from benchmarks.calibrate import calibrate, write_calibrated
from benchmarks.protocols import ParameterRule, Protocol, RuleEntry, load_protocol
from benchmarks.report import common_table, psnr_table, summary_markdown
from benchmarks.runner import RECORD_KEYS, BenchConfig, load_records, run_benchmark, run_denoise_benchmark
from pnp.cli import main

ISSUE_KEYS = ("image", "kernel", "noise", "solver", "denoiser", "psnr", "ssim", "iterations", "converged",
              "final_residual", "monotone", "guarantee", "time_per_iteration")


def tiny_protocol(**changes) -> Protocol:
    p = Protocol(
        name="tiny",
        description="2 small images, 2 kernels, 1 noise level, few iterations",
        images="unused",
        kernels=("gaussian:5:1.0", "uniform:3"),
        noise_levels=(7.65 / 255,),
        rule=ParameterRule(entries=(
            RuleEntry("*", scale=1.0),
            RuleEntry("quadratic", scale=1.4142, power=0.5),
            RuleEntry("tv", scale=0.158, power=0.5),
            RuleEntry("wiener", scale=2.0),
            RuleEntry("tikhonov", scale=1.0),
        )),
        max_iter=6,
        tol=1e-5,
    )
    return p.replace(**changes) if changes else p


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    import imageio.v3 as iio
    from skimage import data, transform

    d = tmp_path_factory.mktemp("imgs")
    cam = transform.resize(data.camera() / 255.0, (24, 24), anti_aliasing=True)
    ast = transform.resize(data.astronaut() / 255.0, (20, 22, 3), anti_aliasing=True)
    iio.imwrite(d / "a_grey.png", np.round(cam * 255).astype(np.uint8))
    iio.imwrite(d / "b_colour.png", np.round(ast * 255).astype(np.uint8))
    return d


def _config(images, **kw) -> BenchConfig:
    base = dict(protocol=tiny_protocol(), denoisers=("quadratic", "wiener"), solvers=("fbs", "hqs"),
                data=str(images), device="cpu")
    base.update(kw)
    return BenchConfig(**base)


def test_tiny_protocol_end_to_end(images, tmp_path):
    out = tmp_path / "run"
    proto = tiny_protocol()  # a calibrated-looking fbs entry must reach deepinv-pgd too
    proto = proto.replace(rule=proto.rule.with_entries((RuleEntry("quadratic", scale=0.9, power=0.5, solver="fbs"),)))
    recs = run_benchmark(_config(images, protocol=proto, solvers=("fbs", "hqs", "admm", "deepinv-pgd")), out)
    # 2 images x 2 kernels x 1 noise x (quadratic x 4 solvers + wiener closed form)
    assert len(recs) == 2 * 2 * 5
    res = json.loads((out / "results.json").read_text())
    meta = res["metadata"]
    for key in ("versions", "seed", "device", "dtype", "protocol", "command", "date"):
        assert key in meta, key
    assert meta["protocol"]["name"] == "tiny" and meta["seed"] == 0 and meta["dtype"] == "float32"
    for r in res["records"]:
        for key in ISSUE_KEYS + RECORD_KEYS:
            assert key in r, key
        assert np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1
        assert r["psnr"] > r["psnr_input"] - 1.0
        if r["solver"] == "closed-form":
            assert r["denoiser"] == "wiener" and r["iterations"] == 0 and r["converged"] is True
        else:
            assert r["iterations"] == 6 and r["final_residual"] > 0
            assert r["monotone"] is True  # averaged iterations: non-increasing residual
            assert r["guarantee"] == "holds" and r["time_per_iteration"] > 0
    # the deepinv PGD cross-check runs the very same iteration as our FBS
    by = {(r["image"], r["kernel"], r["solver"], r["denoiser"]): r for r in res["records"]}
    for (img, k, s, d), r in by.items():
        if s == "deepinv-pgd":
            assert r["psnr"] == pytest.approx(by[(img, k, "fbs", d)]["psnr"], abs=1e-3)
            assert r["sigma"] == by[(img, k, "fbs", d)]["sigma"] and r["iterations"] == 6
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(recs) and {"protocol", "seed", "device", "dtype", "torch", "deepinv"} <= set(rows[0])
    md = (out / "summary.md").read_text()
    assert "quadratic / fbs" in md and "wiener (closed form)" in md and "gaussian:5:1.0" in md
    for f in ("residual_7p65.png", "psnr_7p65.png", "panel_7p65.png"):
        assert (out / "plots" / f).is_file(), f


def test_resume_after_interruption_gives_the_same_table(images, tmp_path):
    cfg = _config(images)
    full = run_benchmark(cfg, tmp_path / "full")
    part = tmp_path / "part"
    first = run_benchmark(cfg, part, stop_after=3)
    assert len(first) == 3
    with open(part / "records.jsonl", "ab") as f:  # a torn line, as a crash mid-write leaves
        f.write(b'{"key": "a_grey.png|trunc')
    again = run_benchmark(cfg, part)
    assert len(again) == len(full) == len(load_records(part))
    assert psnr_table(again) == psnr_table(full)
    assert [r["key"] for r in again] == [r["key"] for r in full]
    # a rerun with everything done computes nothing new
    lines = (part / "records.jsonl").read_text().count("\n")
    run_benchmark(cfg, part)
    assert (part / "records.jsonl").read_text().count("\n") == lines


def _tiny_checkpoint(path, seed: int) -> None:
    from denoisers import AveragedConfig, AveragedResNet
    from denoisers.serialize import save_denoiser

    torch.manual_seed(seed)
    net = AveragedResNet(AveragedConfig(channels=4, hidden=4, depth=2))
    net.freeze()
    save_denoiser(net, path, metadata={"sigma": 0.03})


def test_resume_reruns_records_made_with_other_weights(images, tmp_path):
    import hashlib

    ckpt = tmp_path / "net.safetensors"
    _tiny_checkpoint(ckpt, seed=0)
    cfg = _config(images, denoisers=(str(ckpt), "wiener"), solvers=("fbs",), kernels=(0,), max_iter=3)
    out = tmp_path / "o"
    first = run_benchmark(cfg, out)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    nets = [r for r in first if r["denoiser"] == "net"]
    assert len(nets) == 2 and all(r["denoiser_sha256"] == digest for r in nets)
    assert all(r["denoiser_sha256"] is None for r in first if r["denoiser"] == "wiener")
    lines = (out / "records.jsonl").read_text().count("\n")
    run_benchmark(cfg, out)  # same weights: nothing to do
    assert (out / "records.jsonl").read_text().count("\n") == lines
    _tiny_checkpoint(ckpt, seed=1)  # new weights at the same path: the network's records are stale
    new_digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert new_digest != digest
    logs: list[str] = []
    again = run_benchmark(cfg, out, log=logs.append)
    assert any("2 recorded with other weights are rerun" in m for m in logs)
    assert (out / "records.jsonl").read_text().count("\n") == lines + 2  # wiener was not rerun
    nets2 = [r for r in again if r["denoiser"] == "net"]
    assert len(again) == len(first) and all(r["denoiser_sha256"] == new_digest for r in nets2)
    assert [r["psnr"] for r in nets2] != [r["psnr"] for r in nets]
    res = json.loads((out / "results.json").read_text())["records"]
    assert sorted(r["denoiser_sha256"] or "" for r in res) == sorted(r["denoiser_sha256"] or "" for r in again)


def test_one_folder_collects_the_runs_of_several_commands(images, tmp_path):
    import shutil

    out = tmp_path / "o"
    a = run_benchmark(_config(images, denoisers=("quadratic",), solvers=("fbs",), kernels=(0,)), out, command="cmd A")
    b = run_benchmark(_config(images, denoisers=("wiener",), kernels=(0, 1), max_images=1), out, command="cmd B")
    assert len(a) == 2 and len(b) == 2  # each call returns its own plan
    res = json.loads((out / "results.json").read_text())
    assert {r["key"] for r in res["records"]} == {r["key"] for r in a + b}  # the report covers both
    assert [c["command"] for c in res["metadata"]["commands"]] == ["cmd A", "cmd B"]
    run = json.loads((out / "run.json").read_text())
    assert [c["command"] for c in run["commands"]] == ["cmd A", "cmd B"]
    md = (out / "summary.md").read_text()
    assert "| quadratic / fbs | " in md and "| wiener (closed form) | " in md
    row = next(line for line in md.splitlines() if line.startswith("| wiener (closed form) |"))
    assert row.rstrip().endswith("| 1 |")  # the wiener rows rest on one image
    # the same images in another folder are the same data; other images are refused
    moved = tmp_path / "moved"
    shutil.copytree(images, moved)
    run_benchmark(_config(moved, denoisers=("wiener",), kernels=(0,), max_images=1), out)
    other = tmp_path / "other"
    shutil.copytree(images, other)
    (other / "a_grey.png").write_bytes((images / "b_colour.png").read_bytes())
    with pytest.raises(ValueError, match="another protocol or data folder"):
        run_benchmark(_config(other, denoisers=("wiener",), kernels=(0,)), out)


def test_fingerprint_of_zoo_names_and_classical_denoisers():
    import denoisers
    from benchmarks.baselines import denoiser_fingerprint

    assert denoiser_fingerprint("tv") is None and denoiser_fingerprint("wiener") is None
    names = denoisers.available()
    if not names:
        pytest.skip("no shipped weights")
    fam = denoiser_fingerprint(names[0])
    members = [n for n in names[1:]]
    digests = {denoiser_fingerprint(n) for n in members}
    assert len(digests) == len(members) and fam not in digests and len(fam) == 64
    with pytest.raises(ValueError, match="denoiser name"):
        denoiser_fingerprint("")


def test_resume_refuses_another_protocol(images, tmp_path):
    run_benchmark(_config(images, denoisers=("wiener",), kernels=(0,)), tmp_path / "o")
    cfg = _config(images, denoisers=("wiener",), kernels=(0,), max_iter=3)
    with pytest.raises(ValueError, match="another protocol"):
        run_benchmark(cfg, tmp_path / "o")


def test_a_protocol_that_only_adds_rule_entries_extends_the_folder(images, tmp_path):
    out = tmp_path / "o"
    first = run_benchmark(_config(images, denoisers=("wiener", "quadratic"), solvers=("fbs",), kernels=(0,)),
                          out, command="first")
    before = load_records(out)
    nu = tiny_protocol().noise_levels[0]
    # a rule calibrated afterwards for a denoiser with no record: accepted, nothing reruns
    ext = tiny_protocol(name="tiny-ext").replace(rule=tiny_protocol().rule.with_entries(
        (RuleEntry("tv", scale=0.1, power=0.5, solver="fbs", noise=nu),)))
    lines: list[str] = []
    again = run_benchmark(_config(images, protocol=ext, denoisers=("wiener", "quadratic", "tv"), solvers=("fbs",),
                                  kernels=(0,)), out, command="second", log=lines.append)
    after = load_records(out)
    assert {k: after[k] for k in before} == before  # the old records were kept, not rerun
    assert len(again) == len(first) + 2 and any("extends" in s for s in lines)
    run = json.loads((out / "run.json").read_text())
    assert run["protocol"]["name"] == "tiny-ext"
    assert [p["name"] for p in run["superseded_protocols"]] == ["tiny"]
    tv = [r for r in again if r["denoiser"] == "tv"]
    assert all(r["sigma"] == pytest.approx(0.1 * nu**0.5) for r in tv)
    # a rule that changes a recorded denoiser's parameters is refused, naming the record
    changed = ext.replace(rule=ext.rule.with_entries((RuleEntry("wiener", scale=3.0, noise=nu),)))
    with pytest.raises(ValueError, match="does not merely extend.*lambda"):
        run_benchmark(_config(images, protocol=changed, denoisers=("wiener",), kernels=(0,)), out)
    # so is a change of the degradations, whatever the records
    with pytest.raises(ValueError, match="does not merely extend.*seed"):
        run_benchmark(_config(images, protocol=ext.replace(seed=1), denoisers=("wiener",), kernels=(0,)), out)
    assert load_records(out) == after  # nothing lost by the refusals
    assert json.loads((out / "run.json").read_text())["protocol"]["name"] == "tiny-ext"


@pytest.mark.slow  # spawns 2 processes (~20 s on a loaded 2-core machine)
def test_two_workers_match_one(images, tmp_path):
    cfg = _config(images, denoisers=("quadratic",), solvers=("fbs",), kernels=(0,))
    one = run_benchmark(cfg, tmp_path / "one")
    two = run_benchmark(BenchConfig(**{**cfg.__dict__, "workers": 2}), tmp_path / "two")
    assert [r["psnr"] for r in one] == pytest.approx([r["psnr"] for r in two], abs=1e-4)


def test_closed_form_wiener_is_the_minimiser():
    from denoisers.classical import circular_laplacian_spectrum
    from operators import FFTBlur, gaussian_kernel

    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 1, 16, 18, generator=g, dtype=torch.float64)
    op = FFTBlur(gaussian_kernel(5, 1.0))
    lam = 0.05
    for kind in ("wiener", "tikhonov"):
        x = closed_form(y, op, lam, kind=kind)
        if kind == "wiener":
            lap = torch.fft.irfft2(torch.fft.rfft2(x) * circular_laplacian_spectrum(16, 18), s=(16, 18))
        else:
            lap = x
        grad = op.A_adjoint(op.A(x) - y) + lam * lap  # gradient of the objective
        assert float(grad.abs().max()) < 1e-10


def test_denoiser_names_and_hooks(tmp_path):
    x = torch.rand(1, 1, 24, 24)
    bm = resolve_denoiser("bm3d")
    assert bm.certificate is None
    out = bm(x, 0.05)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert resolve_denoiser("tv").certificate.alpha == 0.5
    calls = []

    class Unconstrained(torch.nn.Module):
        def forward(self, x, sigma):
            calls.append(sigma)
            return 0.9 * x

    register_denoiser("unconstrained-test", Unconstrained)
    assert isinstance(resolve_denoiser("unconstrained-test"), Unconstrained)
    assert isinstance(resolve_denoiser("py:benchmarks.baselines:BM3DDenoiser").profile, str)
    for bad, msg in (("nope", "unknown denoiser"), ("py:nosuchmodule:f", "cannot import"),
                     ("wiener", "closed-form")):
        with pytest.raises(ValueError, match=msg):
            resolve_denoiser(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="py:MODULE:CALLABLE"):
        resolve_denoiser(str(junk))


def test_unregistered_network_gets_no_guarantee(images, tmp_path):
    class Shrink(torch.nn.Module):
        def forward(self, x, sigma):
            return 0.95 * x

    register_denoiser("shrink", Shrink)
    recs = run_benchmark(_config(images, denoisers=("shrink",), solvers=("fbs",), kernels=(1,), max_images=1),
                         tmp_path / "o")
    assert len(recs) == 1 and recs[0]["guarantee"] == "none"
    assert "no certificate" in recs[0]["guarantee_reason"]


def test_calibration_freezes_the_best_grid_point(images, tmp_path):
    base = tiny_protocol()
    with pytest.warns(UserWarning, match="test"):
        calibrate(base.replace(images=str(images)), data=str(images), denoisers=("wiener",),
                  kernels=(0,), max_images=1, factors=(1.0,))
    new, scores = calibrate(base, data=str(images), denoisers=("quadratic", "wiener"), solvers=("fbs",),
                            kernels=(0,), max_images=1, max_iter=3, factors=(0.5, 1.0, 2.0))
    assert len(scores) == 6 and new.calibration is not None and new.name == "tiny-cal"
    for den, solver in (("quadratic", "fbs"), ("wiener", "closed-form")):
        pts = [s for s in scores if s["denoiser"] == den]
        best = max(pts, key=lambda s: s["mean_psnr"])
        assert best["best"] and sum(s["best"] for s in pts) == 1
        s, _ = new.rule.parameters(den, solver=solver, noise=base.noise_levels[0], opnorm=1.0)
        assert s == pytest.approx(best["scale"] * base.noise_levels[0] ** best["power"])
    path, spath = write_calibrated(new, scores, tmp_path / "cal.toml", command="test")
    again = load_protocol(path)
    assert again == new.replace(calibration=again.calibration) and again.calibration.command == "test"
    assert json.loads(spath.read_text())["scores"][0]["denoiser"] == "quadratic"
    # recalibrating a calibrated protocol keeps its earlier entries and notes the calibration once
    newer, _ = calibrate(new, data=str(images), denoisers=("wiener",), kernels=(0,), max_images=1,
                         max_iter=3, factors=(1.0,))
    assert newer.description.count("rule calibrated") == 1
    assert set(new.rule.entries) <= set(newer.rule.entries)


def test_denoise_benchmark(images, tmp_path):
    recs = run_denoise_benchmark(data=str(images), noise_levels=(0.1,), denoisers=("tv", "quadratic"),
                                 out=tmp_path / "d")
    assert len(recs) == 4
    for r in recs:
        assert r["psnr"] > r["psnr_input"]
    assert "tv" in (tmp_path / "d" / "summary.md").read_text()
    again = run_denoise_benchmark(data=str(images), noise_levels=(0.1,), denoisers=("tv", "quadratic"),
                                  out=tmp_path / "d")
    assert [r["psnr"] for r in again] == [r["psnr"] for r in recs]


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_cli_bench_deblur(images, tmp_path, capsys):
    toml = tmp_path / "tiny.toml"
    from benchmarks.protocols import dump_protocol

    dump_protocol(tiny_protocol(), toml)
    out = tmp_path / "o"
    rc = main(["bench", "deblur", "--protocol", str(toml), "--data", str(images), "--noise", "0.03",
               "--solver", "fbs", "--denoiser", "quadratic,wiener", "--kernels", "1", "--max-images", "1",
               "--out", str(out), "--quiet"])
    assert rc == 0
    assert "quadratic / fbs" in capsys.readouterr().out
    recs = json.loads((out / "results.json").read_text())["records"]
    assert len(recs) == 2 and all(r["noise"] == 7.65 / 255 for r in recs)  # snapped to the protocol
    for argv, msg in (
        (["--protocol", "nope"], "unknown protocol"),
        (["--protocol", str(toml), "--kernels", "7"], "out of range"),
        (["--protocol", str(toml), "--solver", "pgd"], "unknown solver"),
        (["--protocol", str(toml), "--noise", "abc"], "noise level"),
    ):
        rc = main(["bench", "deblur", "--data", str(images), "--denoiser", "wiener",
                   "--out", str(tmp_path / "e"), *argv])
        assert rc == 2
        assert msg in _one_line(capsys)


def test_cli_bench_calibrate_and_denoise(images, tmp_path, capsys):
    toml = tmp_path / "tiny.toml"
    from benchmarks.protocols import dump_protocol

    dump_protocol(tiny_protocol(), toml)
    out = tmp_path / "cal.toml"
    rc = main(["bench", "calibrate", "--protocol", str(toml), "--data", str(images), "--denoiser", "wiener",
               "--kernels", "0", "--max-images", "1", "--factors", "0.5,1", "--out", str(out)])
    assert rc == 0 and load_protocol(out).calibration.dev_images == ("a_grey.png",)
    capsys.readouterr()
    rc = main(["bench", "calibrate", "--protocol", str(toml), "--data", str(images), "--denoiser", "wiener",
               "--out", str(out)])
    assert rc == 2 and "exists" in _one_line(capsys)
    rc = main(["bench", "denoise", "--data", str(images), "--noise", "25/255", "--denoiser", "quadratic",
               "--out", str(tmp_path / "d"), "--quiet"])
    assert rc == 0 and "quadratic" in capsys.readouterr().out


def test_paired_table_compares_each_method_with_the_most_complete_one():
    def rec(img, k, den, psnr):
        return {"image": img, "kernel": k, "noise": 0.03, "solver": "fbs", "denoiser": den, "psnr": psnr,
                "ssim": psnr / 100, "converged": True, "monotone": True, "iterations": 3,
                "time_per_iteration": 0.1, "guarantee": "holds"}

    full = [rec(i, k, "net", 20.0 + n) for n, (i, k) in enumerate([("a", "k0"), ("a", "k1"), ("b", "k0"), ("b", "k1")])]
    part = [rec("a", "k0", "tv", 10.0), rec("b", "k1", "tv", 30.0)]
    other = [rec("c", "k0", "bm3d", 5.0)]
    md = common_table(part + full + other)
    assert "each method against `net / fbs`" in md  # the most complete method, wherever it comes
    # tv on its 2 cases: 20.00 against (20 + 23) / 2 = 21.50 for the reference on the same cases
    assert "| tv / fbs | 2 | 2 | 20.00 | 21.50 | -1.50 | 0.2000 | 0.2150 | 2/2 |" in md
    assert "| bm3d / fbs | 0 | 0 | - |" in md  # nothing shared
    assert common_table(full) == "" and common_table(full + [rec(i, k, "tv", 1.0) for i, k in [("a", "k0"), ("a", "k1"),
                                                                                           ("b", "k0"), ("b", "k1")]]) == ""
    assert "Paired comparison" in summary_markdown(full + part, {}) and "Paired" not in summary_markdown(full, {})


def test_extension_check_compares_variational_records_with_the_old_rule():
    """Variational records keep lambda, not the rule's gamma (None): the multiplier they ran with is
    the old rule's, so a rule for another prior extends the folder and a changed multiplier does not."""
    from benchmarks.runner import extension_problems

    nu = tiny_protocol().noise_levels[0]
    old = tiny_protocol().replace(rule=tiny_protocol().rule.with_entries(
        (RuleEntry("crr", scale=1.0, gamma_scale=1.0, solver="variational"),)))
    old_dict = json.loads(json.dumps(old.to_dict()))
    rec = {"r": {"denoiser": "crr", "solver": "variational", "noise": nu, "opnorm": 1.0, "sigma": nu, "gamma": None,
                 "lam": 3.0, "max_iter": old.budget("crr")}}
    ext = old.replace(name="ext", rule=old.rule.with_entries(
        (RuleEntry("crr-circular", scale=0.7071, gamma_scale=0.5, solver="variational"),)))
    assert extension_problems(old_dict, ext, rec) == []
    changed = old.replace(name="changed", rule=old.rule.with_entries(
        (RuleEntry("crr", scale=1.0, gamma_scale=0.5, solver="variational"),)))
    assert extension_problems(old_dict, changed, rec) == ["record 'r': gamma 1.0 -> 0.5"]
