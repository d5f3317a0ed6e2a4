"""Ridge training: each mode lowers nothing it should not, resumes exactly, writes atomically,
and the command line trains and loads a model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from denoisers.checkpoint import CheckpointError
from denoisers.ridge import RidgeConfig, RidgeRegularizer
from denoisers.ridge.train import RIDGE_MODES, RidgeTrainConfig, load_ridge, train_ridge

ARCH = dict(channels=(1, 3, 6), kernel_size=3, spline_knots=17, spline_range=2.0, grid=64)


def _images():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(3, 1, 8, 8, generator=g)
    return [torch.nn.functional.interpolate(b[None], size=(32, 32), mode="bilinear")[0] for b in base]


def _cfg(mode: str, steps: int = 4) -> RidgeTrainConfig:
    return RidgeTrainConfig(mode=mode, steps=steps, batch_size=2, patch_size=16, validate_every=100,
                            checkpoint_every=2, unrolled_steps=3, deq_max_iter=50, cg_iters=3)


@pytest.mark.parametrize("mode", RIDGE_MODES)
@pytest.mark.parametrize("kind", ["crr", "wcrr"])
def test_each_mode_trains_and_certifies(tmp_path, mode, kind):
    path = train_ridge(_cfg(mode, 2), tmp_path, architecture=RidgeConfig(kind=kind, **ARCH), images=_images(),
                       val_images=[], log=lambda s: None)
    reg, meta = load_ridge(path)
    cert = reg.certificate()
    assert cert.w_norm_bound <= 1 + 1e-6 and cert.lip_grad > 0
    assert all(torch.isfinite(p).all() for p in reg.parameters())
    if kind == "wcrr":
        assert cert.lambda_max * cert.weak_convexity < 1


def test_resume_equals_uninterrupted(tmp_path):
    arch = RidgeConfig(kind="crr", **ARCH)
    a = train_ridge(_cfg("deq-jfb"), tmp_path / "a", architecture=arch, images=_images(), val_images=[], log=lambda s: None)
    train_ridge(_cfg("deq-jfb"), tmp_path / "b", architecture=arch, images=_images(), val_images=[], stop_after=2,
                log=lambda s: None)
    b = train_ridge(_cfg("deq-jfb"), tmp_path / "b", architecture=arch, images=_images(), val_images=[], log=lambda s: None)
    ra, _ = load_ridge(a)
    rb, _ = load_ridge(b)
    for (n, p), (_, q) in zip(ra.state_dict().items(), rb.state_dict().items()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_resume_with_another_config_is_refused(tmp_path):
    arch = RidgeConfig(kind="crr", **ARCH)
    train_ridge(_cfg("deq-jfb"), tmp_path, architecture=arch, images=_images(), val_images=[], stop_after=2,
                log=lambda s: None)
    with pytest.raises(CheckpointError, match="another training config"):
        train_ridge(_cfg("unrolled"), tmp_path, architecture=arch, images=_images(), val_images=[], log=lambda s: None)


def test_loss_crop_ignores_the_border_band():
    from denoisers.ridge.train import _loss

    clean = torch.zeros(2, 1, 16, 16)
    x = clean.clone()
    x[..., :3, :] = 1.0  # errors only in a 3-pixel band at the top
    w = torch.ones(2)
    assert float(_loss(x, clean, w, 0)) > 0
    assert float(_loss(x, clean, w, 3)) == 0.0
    x[..., 8, 8] = 1.0
    assert float(_loss(x, clean, w, 3)) == pytest.approx(1.0 / 100)


@pytest.mark.parametrize("crop", [-1, 8, 1.5, True])
def test_loss_crop_is_validated(crop):
    with pytest.raises(ValueError, match="loss_crop"):
        RidgeTrainConfig(patch_size=16, loss_crop=crop)


def test_state_without_a_later_field_resumes(tmp_path):
    """A state written before ``loss_crop`` and ``sigma_weight_power`` existed resumes with the values
    those states were trained with."""
    import dataclasses
    import json

    from denoisers.checkpoint import load_checkpoint, save_checkpoint
    from denoisers.ridge.train import _LEGACY_FIELDS

    arch = RidgeConfig(kind="crr", **ARCH)
    old = dataclasses.replace(_cfg("deq-jfb"), **_LEGACY_FIELDS)  # what every state before the fields used
    for name, cfg in (("old", old), ("new", _cfg("deq-jfb"))):
        train_ridge(cfg, tmp_path / name, architecture=arch, images=_images(), val_images=[], stop_after=2,
                    log=lambda s: None)
        state = tmp_path / name / "state.safetensors"
        tensors, meta = load_checkpoint(state, kind="ridge-train-state")
        for field in _LEGACY_FIELDS:
            del meta["train_config"][field]
        save_checkpoint(state, tensors, json.loads(json.dumps(meta)))
    train_ridge(old, tmp_path / "old", architecture=arch, images=_images(), val_images=[], log=lambda s: None)
    with pytest.raises(CheckpointError, match="another training config"):  # read as crop 0, asked for 6
        train_ridge(_cfg("deq-jfb"), tmp_path / "new", architecture=arch, images=_images(), val_images=[],
                    log=lambda s: None)


def test_sigma_weights():
    from denoisers.ridge.train import SIGMA_REF, sigma_weights

    sigma = torch.tensor([5.0, 25.0, 50.0]) / 255
    assert torch.allclose(sigma_weights(sigma, 0.0), torch.ones(3))
    assert torch.allclose(sigma_weights(sigma, 1.0), SIGMA_REF / sigma)
    assert torch.allclose(sigma_weights(sigma, 2.0), (SIGMA_REF / sigma) ** 2)


@pytest.mark.parametrize("power", [float("nan"), float("inf"), True, "1"])
def test_sigma_weight_power_is_validated(power):
    with pytest.raises(ValueError, match="sigma_weight_power"):
        RidgeTrainConfig(sigma_weight_power=power)


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf"), True])
def test_scalar_lr_factor_is_validated(factor):
    with pytest.raises(ValueError, match="scalar_lr_factor"):
        RidgeTrainConfig(scalar_lr_factor=factor)


def test_scalar_lr_factor_sets_the_lr_of_the_functions_of_sigma():
    from denoisers.ridge.train import _param_groups

    reg = RidgeRegularizer(RidgeConfig(kind="crr", channel_conditioning=True, **ARCH))
    groups = _param_groups(reg, 1e-3, 20.0)
    scal = groups[-1]
    assert scal["lr"] == pytest.approx(2e-2)
    ids = {id(p) for p in scal["params"]}
    for p in (reg.lam.values, reg.mu.values, reg.chan_w.values, reg.chan_mu.values):
        assert id(p) in ids
    # every parameter is in exactly one group
    assert sum(len(g["params"]) for g in groups) == len(list(reg.parameters()))


@pytest.mark.parametrize("args, message", [
    (["--sigma-range", "5"], "--sigma-range must be LO:HI"),
    (["--sigma-range", "30:2"], "--sigma-range must satisfy"),
    (["--sigma-range", "0:30"], "--sigma-range must satisfy"),
    (["--sigma-weight-power", "nan"], "--sigma-weight-power must be a finite number"),
    (["--scalar-lr-factor", "0"], "--scalar-lr-factor must be a finite number > 0"),
    (["--kind", "wcrr", "--boundary", "reflect"], "--boundary 'reflect' is for crr only"),
    (["--boundary", "replicate"], "invalid choice"),
])
def test_trainer_cli_names_the_bad_flag(tmp_path, capsys, args, message):
    from denoisers.ridge.train import main

    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "run"), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_trains_a_crr(tmp_path, capsys):
    from pnp.cli import main

    folder = tmp_path / "data"
    folder.mkdir()
    from skimage import io

    for i, im in enumerate(_images()):
        io.imsave(folder / f"{i}.png", (im[0].numpy() * 255).astype("uint8"), check_contrast=False)
    out = tmp_path / "crr.safetensors"
    rc = main(["train", "--family", "crr", "--sigma", "0.1", "--data", str(folder), "--steps", "2",
               "--batch-size", "2", "--patch-size", "16", "--loss-crop", "2", "--sigma-weight-power", "0",
               "--validate-every", "100", "--out", str(out)])
    assert rc == 0 and out.exists()
    assert "convex" in capsys.readouterr().out
    _, meta = load_ridge(out)  # the training flags reach the training config
    assert meta["train_config"]["loss_crop"] == 2 and meta["train_config"]["sigma_weight_power"] == 0.0
    # a second run without --resume does not overwrite anything
    before = out.read_bytes()
    rc = main(["train", "--family", "crr", "--sigma", "0.1", "--data", str(folder), "--steps", "2", "--out", str(out)])
    assert rc == 2 and out.read_bytes() == before
    rc = main(["train", "--family", "crr", "--sigma", "0.1", "--channels", "8", "--out", str(tmp_path / "x.safetensors")])
    assert rc == 2


def test_export_state_round_trip_keeps_provenance(tmp_path):
    import json

    from denoisers.ridge.train import export_state

    arch = RidgeConfig(kind="crr", **ARCH)
    first = train_ridge(_cfg("deq-jfb", 2), tmp_path / "a", architecture=arch, images=_images(), val_images=[],
                        log=lambda s: None)
    train_ridge(_cfg("deq-jfb", 4), tmp_path / "b", init=first, images=_images(), val_images=[], stop_after=3,
                log=lambda s: None)
    out = tmp_path / "exported.safetensors"
    cert = export_state(tmp_path / "b" / "state.safetensors", out, lineage="a (2 steps) then b")
    reg, meta = load_ridge(out)
    assert meta["steps"] == 3 and meta["init"] == str(first) and meta["lineage"] == "a (2 steps) then b"
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["init"] == str(first) and summary["certificate"] == cert.to_dict()
    # the exported weights are the state's model
    from denoisers.checkpoint import load_checkpoint

    tensors, _ = load_checkpoint(tmp_path / "b" / "state.safetensors", kind="ridge-train-state")
    for name, p in reg.state_dict().items():
        assert torch.equal(p, tensors["model." + name]), name


def _cli_crr_init(tmp_path: Path) -> tuple[Path, Path]:
    """A small crr written as ``--init`` for the module's command line, and the run folder; skips without
    ``../shared/data`` (the command line trains on train400)."""
    from denoisers.ridge.train import save_ridge
    from denoisers.train.trainer import validation_images

    if validation_images(1)[0] is None:
        pytest.skip("needs ../shared/data")
    init = tmp_path / "init.safetensors"
    save_ridge(RidgeRegularizer(RidgeConfig(kind="crr", **ARCH)), init)
    return init, tmp_path / "run"


def test_module_cli_resamples_the_init_splines(tmp_path):
    from denoisers.ridge.train import main

    init, out = _cli_crr_init(tmp_path)
    assert main(["--kind", "crr", "--init", str(init), "--spline-grid", "33:4", "--steps", "1", "--batch-size", "2",
                 "--patch-size", "16", "--loss-crop", "2", "--validate-every", "100", "--out", str(out)]) == 0
    trained, meta = load_ridge(out / "crr.safetensors")
    assert trained.config.spline_knots == 33 and trained.config.spline_range == 4.0
    assert meta["train_config"]["loss_crop"] == 2
    with pytest.raises(SystemExit):
        main(["--kind", "crr", "--spline-grid", "33:4", "--out", str(tmp_path / "x")])  # needs --init
    with pytest.raises(SystemExit):
        main(["--kind", "crr", "--init", str(init), "--spline-grid", "33", "--out", str(tmp_path / "y")])


def test_export_state_with_the_reflect_boundary(tmp_path):
    """``--export-state ... --boundary reflect``: same weights, the boundary replaced, the certificate's
    ``Lip(grad R)`` four times the valid one's."""
    from denoisers.ridge.train import main

    state = Path(__file__).resolve().parents[2] / "benchmarks/results/issue14/long/crr-long-state.safetensors"
    if not state.exists():
        pytest.skip("committed training state not present")
    main(["--export-state", str(state), "--out", str(tmp_path / "v.safetensors")])
    main(["--export-state", str(state), "--out", str(tmp_path / "r.safetensors"), "--boundary", "reflect"])
    v, _ = load_ridge(tmp_path / "v.safetensors")
    r, _ = load_ridge(tmp_path / "r.safetensors")
    assert v.config.boundary == "valid" and r.config.boundary == "reflect"
    assert r.certificate().lip_grad == pytest.approx(4 * v.certificate().lip_grad, rel=1e-12)
    for a, b in zip(v.state_dict().values(), r.state_dict().values()):
        assert torch.equal(a, b)


def test_module_cli_turns_a_crr_init_into_a_wcrr(tmp_path):
    """``--kind wcrr --init CRR``: the run starts from ``as_wcrr`` of the crr (written next to the state)."""
    from denoisers.ridge.train import main

    init, out = _cli_crr_init(tmp_path)
    assert main(["--kind", "wcrr", "--init", str(init), "--wcrr-lambda-max", "0.3", "--steps", "1", "--batch-size", "2",
                 "--patch-size", "16", "--validate-every", "100", "--out", str(out)]) == 0
    start, meta = load_ridge(out / "init-wcrr.safetensors")
    assert start.kind == "wcrr" and abs(start.lambda_max() - 0.3) < 1e-6 and meta["wcrr_from_crr"] == str(init)
    trained, _ = load_ridge(out / "wcrr.safetensors")
    assert trained.kind == "wcrr"
    with pytest.raises(SystemExit):
        main(["--kind", "wcrr", "--init", str(init), "--wcrr-lambda-max", "1.5", "--out", str(tmp_path / "x")])
