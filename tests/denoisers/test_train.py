"""Tiny training runs: loss decreases, resume equals uninterrupted, certificate after freezing,
2-process DDP, clear errors for bad arguments."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from denoisers import adversarial_averagedness, load_denoiser
from denoisers.checkpoint import load_checkpoint
from denoisers.models import AveragedConfig
from denoisers.train import PatchSampler, TrainConfig, train

ARCH = AveragedConfig(channels=4, hidden=4, depth=2)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from skimage import data, io
    from skimage.transform import resize

    d = tmp_path_factory.mktemp("imgs")
    for name in ("camera", "moon", "coins"):
        img = resize(getattr(data, name)(), (48, 48), anti_aliasing=True)
        io.imsave(d / f"{name}.png", (img * 255).astype(np.uint8), check_contrast=False)
    return d


def _cfg(**kw):
    base = dict(sigma=0.1, steps=20, batch_size=4, patch_size=16, lr=5e-3, validate_every=1000,
                checkpoint_every=5, val_max_images=1)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_and_certificate_holds_after_freezing(tmp_path, image_dir):
    out = tmp_path / "m.safetensors"
    res = train(out, config=_cfg(steps=40), architecture=ARCH, data=[str(image_dir)], progress=False)
    loss = res.history["loss"]
    assert loss[-1] < loss[0]
    net = load_denoiser(out)
    assert net.frozen and net.certificate.exact
    assert res.certificate["alpha"] == pytest.approx(net.certificate.alpha)
    assert net.certificate.alpha < 1
    x0 = torch.rand(1, 1, 12, 12)
    assert adversarial_averagedness(net.double(), x0.double(), net.certificate.alpha, steps=30, lr=0.05).value <= 1 + 1e-9
    assert (tmp_path / "m.json").exists() and (tmp_path / "m.curve.png").exists()


def test_resume_equals_uninterrupted(tmp_path, image_dir):
    a = tmp_path / "a.safetensors"
    train(a, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False)
    b = tmp_path / "b.safetensors"
    part = train(b, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False, stop_after=10)
    assert part.steps == 10 and not b.exists()
    train(b, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False, resume=True)
    ta, _ = load_checkpoint(a)
    tb, _ = load_checkpoint(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=0, atol=0, msg=k)


def test_resume_refuses_a_different_configuration(tmp_path, image_dir):
    b = tmp_path / "b.safetensors"
    train(b, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False, stop_after=5)
    with pytest.raises(ValueError, match="different configuration"):
        train(b, config=_cfg(lr=1e-2), architecture=ARCH, data=[str(image_dir)], progress=False, resume=True)


def test_sampler_is_stateless_and_seeded(image_dir):
    from denoisers.train import load_image_folder

    imgs = load_image_folder(image_dir)
    s = PatchSampler(imgs, patch_size=16, batch_size=3, sigma_range=(0.05, 0.1), seed=3)
    c1, n1, s1 = s.sample(7)
    c2, n2, s2 = s.sample(7)
    assert torch.equal(n1, n2) and torch.equal(s1, s2)
    assert not torch.equal(s.sample(8)[1], n1)
    assert ((s1 >= 0.05) & (s1 <= 0.1)).all()


def test_bad_arguments(tmp_path, image_dir):
    with pytest.raises(FileNotFoundError, match="data folder"):
        train(tmp_path / "x.safetensors", config=_cfg(), architecture=ARCH, data=[str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="smaller than patch_size"):
        train(tmp_path / "x.safetensors", config=_cfg(patch_size=64), architecture=ARCH, data=[str(image_dir)])
    with pytest.raises(ValueError, match="sigma"):
        TrainConfig(sigma=-0.1)
    with pytest.raises(ValueError, match=".safetensors"):
        train(tmp_path / "x.pt", config=_cfg(), architecture=ARCH, data=[str(image_dir)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        train(tmp_path / "x.safetensors", config=_cfg(), architecture=ARCH, data=[str(empty)])


def test_cli_errors_are_one_line(tmp_path, image_dir):
    from pnp.cli import main

    assert main(["train", "--sigma", "-1", "--out", str(tmp_path / "o.safetensors")]) == 2
    assert main(["train", "--sigma", "0.1", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o.safetensors")]) == 2


# slow (about 19 s on one core: two processes start torch.distributed): `python -m pytest -m slow`
@pytest.mark.slow
def test_ddp_two_processes(tmp_path, image_dir):
    out = tmp_path / "ddp.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1", PNP_SHARED_DATA=str(tmp_path / "no-shared"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "pnp", "train", "--sigma", "0.1", "--data", str(image_dir), "--out", str(out),
           "--steps", "6", "--batch-size", "4", "--patch-size", "16", "--channels", "4", "--hidden", "4",
           "--depth", "2", "--checkpoint-every", "3", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    net = load_denoiser(out)
    assert net.certificate.alpha < 1
    _, meta = load_checkpoint(out)
    assert meta["world_size"] == 2


def test_cli_unconstrained_baseline(tmp_path, image_dir, monkeypatch):
    """--unconstrained trains the same architecture without the spectral constraint; its file says so."""
    from pnp.cli import main

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "no-shared"))
    out = tmp_path / "free.safetensors"
    rc = main(["train", "--sigma", "0.1", "--data", str(image_dir), "--out", str(out), "--steps", "2",
               "--batch-size", "2", "--patch-size", "16", "--channels", "3", "--hidden", "3", "--depth", "2",
               "--unconstrained", "--no-progress"])
    assert rc == 0
    net = load_denoiser(out)
    assert net.config.constrained is False
    assert all(not b.constrained for b in net.blocks)
    # a flag of the other family is refused
    assert main(["train", "--sigma", "0.1", "--family", "ff", "--unconstrained", "--data", str(image_dir),
                 "--out", str(tmp_path / "x.safetensors")]) == 2
