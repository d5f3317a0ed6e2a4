"""The feed-forward 1-Lipschitz family: certificate vs empirical lower bounds after aggressive
training steps, per-layer norms, the denoiser contract, save/load/export, training and the CLI."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import denoisers
from denoisers import (
    AveragedConfig,
    AveragedResNet,
    CheckpointError,
    LipschitzFFConfig,
    LipschitzFFNet,
    adversarial_averagedness,
    adversarial_lipschitz,
    averagedness_ratio,
    count_parameters,
    jacobian_spectral_norm,
    load_denoiser,
    save_denoiser,
)
from denoisers.checkpoint import load_checkpoint, save_checkpoint
from denoisers.layers import (
    LinearSpline,
    NormalizedConv2d,
    conv_norm_sq,
    conv_opnorm_circular,
    conv_opnorm_upper_bound,
    conv_power_iteration,
)


def _adam_trained(cfg: LipschitzFFConfig, *, steps: int = 6, lr: float = 0.2, seed: int = 0) -> LipschitzFFNet:
    """A few Adam steps with a large lr on a loss that rewards a large Lipschitz ratio (weights
    grow much faster than the warm-started power iteration follows), then frozen."""
    torch.manual_seed(seed)
    net = LipschitzFFNet(cfg).double()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x = torch.rand(2, cfg.image_channels, 10, 10, dtype=torch.float64)
    y = x + 0.1 * torch.randn_like(x)
    net.train()
    for _ in range(steps):
        loss = F.mse_loss(net(y, 0.1), x) - (net(x) - net(y)).pow(2).sum() / (x - y).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    net.freeze()
    return net


def _lip_n(cert) -> float:
    """Product of the certified layer bounds: the bound of Lip(N)."""
    out = 1.0
    for layer in cert.layers:
        out *= layer.norm_bound
    return out


@pytest.mark.parametrize("theta", [0.5, 0.99])
def test_certificate_holds_after_aggressive_training(theta):
    net = _adam_trained(LipschitzFFConfig(features=6, depth=3, theta=theta))
    cert = net.certificate
    assert net.frozen and cert.exact
    assert _lip_n(cert) <= 1.0
    assert cert.alpha == theta and cert.lipschitz_bound <= 1.0
    x0 = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    lip = adversarial_lipschitz(net, x0, steps=40, lr=0.05)
    jac = jacobian_spectral_norm(net, x0, iters=15)
    assert 0.05 < lip.value <= cert.lipschitz_bound + 1e-9
    assert jac.value <= cert.lipschitz_bound + 1e-9
    assert adversarial_averagedness(net, x0, cert.alpha, steps=40, lr=0.05).value <= 1.0 + 1e-9
    with torch.no_grad():
        y0 = torch.rand(2, 1, 12, 12, dtype=torch.float64)
        assert float(averagedness_ratio(net, x0, y0, cert.alpha).max()) <= 1.0 + 1e-9


def test_each_frozen_conv_is_normalised_by_a_certified_bound():
    net = _adam_trained(LipschitzFFConfig(features=6, depth=3))
    for conv in net.convs:
        w = conv.normalized_weight().detach()
        ub = conv_opnorm_upper_bound(conv.weight).bound
        assert float(conv.norm_frozen) >= ub  # stored rounded up
        assert conv.normalized_norm_bound() <= 1.0
        # the bound recomputed on the weight actually used, and the exact norm on a grid
        assert conv_opnorm_upper_bound(w).bound <= 1.0 + 1e-12
        assert conv_opnorm_circular(w, (16, 16)) <= 1.0


def test_unfrozen_network_is_reported_as_such_and_bound_is_honest():
    torch.manual_seed(0)
    net = LipschitzFFNet(LipschitzFFConfig(features=4, depth=2)).double()
    with torch.no_grad():
        net.convs[0].weight.mul_(5.0)  # the warm-started estimate now lags far behind
    cert = net.certificate
    assert not net.frozen and not cert.exact and "NOT frozen" in cert.notes
    assert cert.alpha is None and cert.lipschitz_bound > 1
    x0 = torch.rand(1, 1, 10, 10, dtype=torch.float64)
    net.eval()
    assert adversarial_lipschitz(net, x0, steps=40, lr=0.05).value <= cert.lipschitz_bound * (1 + 1e-9)


def test_power_iteration_is_a_converging_lower_bound():
    torch.manual_seed(0)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    u = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    u = u / u.norm()
    exact = conv_opnorm_circular(w, (16, 16))
    prev = 0.0
    for _ in range(4):
        u = conv_power_iteration(w, u, iters=25)
        est = float(conv_norm_sq(w, u).sqrt())
        assert prev - 1e-12 <= est <= exact * (1 + 1e-12)
        prev = est
    assert est == pytest.approx(exact, rel=1e-3)
    # the normalised layer: the frozen scale is the certified bound, above every estimate
    conv = NormalizedConv2d(3, 5).double()
    conv.freeze()
    assert float(conv.norm_frozen) >= conv_opnorm_upper_bound(conv.weight).bound >= conv_opnorm_circular(conv.weight, (32, 32))


def test_parameter_count_matches_the_zoo_rk_model():
    rk = count_parameters(AveragedResNet(AveragedConfig(channels=32, hidden=32, depth=12)))
    ff = count_parameters(LipschitzFFNet())  # defaults: features=64, depth=5
    assert rk == 110976 and ff == 112001
    assert abs(ff - rk) / rk < 0.02


@pytest.mark.parametrize(
    ("field", "value"),
    [("image_channels", 0), ("features", 0), ("features", 2.5), ("depth", 1), ("kernel_size", 2),
     ("power_size", 0), ("theta", 0.0), ("theta", 1.5), ("activation", "tanh"), ("spline_knots", 2),
     ("spline_knots", 4), ("spline_range", -1.0), ("spline_init", "absolute"), ("spline_slope_min", 0.5),
     ("spline_slope_min", True)],
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        LipschitzFFConfig(**{field: value})


def test_config_dict_round_trip_and_unknown_keys():
    cfg = LipschitzFFConfig(features=8, depth=3, theta=0.7)
    assert LipschitzFFConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.family == "lipschitz-ff" and "family" not in cfg.to_dict()
    with pytest.raises(ValueError, match="unknown architecture keys"):
        LipschitzFFConfig.from_dict({**cfg.to_dict(), "hidden": 3})
    with pytest.raises(TypeError, match="not both"):
        LipschitzFFNet(cfg, depth=2)
    signed = LipschitzFFConfig(activation="spline", spline_init="absolute", spline_slope_min=-1)
    assert signed.spline_slope_min == -1.0 and isinstance(signed.spline_slope_min, float)
    assert LipschitzFFConfig.from_dict(signed.to_dict()) == signed
    # configs written before spline_slope_min existed load with the default (monotone)
    old = {k: v for k, v in cfg.to_dict().items() if k != "spline_slope_min"}
    assert LipschitzFFConfig.from_dict(old) == cfg and cfg.spline_slope_min == 0.0


class TestDenoiserContract:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("channels", [1, 3])
    def test_sigma_kinds_batch_dtype_no_mutation(self, dtype, channels):
        net = LipschitzFFNet(LipschitzFFConfig(image_channels=channels, features=4, depth=3)).to(dtype)
        net.eval()
        net.freeze()
        x = torch.rand(3, channels, 9, 10, dtype=dtype)
        x_copy = x.clone()
        out_f = net(x, 0.1)
        out_t = net(x, torch.full((3,), 0.1, dtype=dtype))
        assert out_f.shape == x.shape and out_f.dtype == dtype
        assert torch.equal(x, x_copy)
        torch.testing.assert_close(out_f, out_t)
        torch.testing.assert_close(net(x, None), out_f)
        torch.testing.assert_close(net(x[1:2], 0.1), out_f[1:2])

    def test_bad_inputs(self):
        net = LipschitzFFNet(LipschitzFFConfig(features=2, depth=2))
        with pytest.raises(ValueError, match="shape"):
            net(torch.rand(4, 4), 0.1)
        with pytest.raises(ValueError, match="channels"):
            net(torch.rand(1, 3, 4, 4), 0.1)
        with pytest.raises(ValueError, match="sigma"):
            net(torch.rand(1, 1, 4, 4), -0.1)
        with pytest.raises(ValueError, match="sigma"):
            net(torch.rand(2, 1, 4, 4), torch.tensor([0.1, 0.2, 0.3]))
        with pytest.raises(TypeError, match="floating"):
            net(torch.ones(1, 1, 4, 4, dtype=torch.int64), 0.1)


ABS_SPLINE = dict(activation="spline", spline_init="absolute", spline_slope_min=-1.0)


class TestSaveLoadExport:
    @pytest.mark.parametrize("activation", [{}, ABS_SPLINE], ids=["relu", "spline-absolute"])
    def test_round_trip_export_and_zoo_load(self, tmp_path, activation):
        net = _adam_trained(LipschitzFFConfig(features=4, depth=3, theta=0.8, **activation))
        path = tmp_path / "ff.safetensors"
        save_denoiser(net, path, metadata={"sigma": 0.1})
        loaded = load_denoiser(path)
        assert isinstance(loaded, LipschitzFFNet) and loaded.frozen and loaded.config == net.config
        # every stored tensor bitwise, spline coefficients included (a frozen network is saved
        # without its power-iteration vectors: they do not enter the frozen function)
        stored = load_checkpoint(path)[0]
        sa, sb = net.state_dict(), loaded.state_dict()
        assert set(stored) == {k for k in sa if not k.endswith("power_u")}
        assert any(k.endswith("coefficients") for k in stored) == bool(activation)
        for k in stored:
            assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) and torch.equal(stored[k], sa[k]), k
        for a, b in zip(net.acts, loaded.acts):
            assert type(a) is type(b)
            if isinstance(a, LinearSpline):
                assert torch.equal(a.coefficients, b.coefficients)
                assert (b.slope_min, b.init) == (-1.0, "absolute")
        x = torch.rand(2, 1, 11, 11, dtype=torch.float64)
        with torch.no_grad():
            assert torch.equal(loaded(x, 0.1), net(x, 0.1))
            exported = net.export()
            torch.testing.assert_close(exported(x, 0.1), net(x, 0.1), rtol=0, atol=1e-14)
        assert loaded.certificate.to_dict() == net.certificate.to_dict()
        assert exported.certificate == net.certificate
        assert loaded.metadata["sigma"] == 0.1
        zoo = denoisers.load(path)  # by path, rescaled and per-channel like the zoo's networks
        assert zoo.certificate.alpha == pytest.approx(0.8)
        with torch.no_grad():
            torch.testing.assert_close(zoo(x.float(), 0.1), net(x, 0.1).float(), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="freeze"):
            LipschitzFFNet(LipschitzFFConfig(features=2, depth=2)).export()

    def test_spline_checkpoint_written_before_the_slope_range_field_loads_monotone(self, tmp_path):
        net = _adam_trained(LipschitzFFConfig(features=3, depth=2, activation="spline"))
        save_denoiser(net, tmp_path / "new.safetensors")
        tensors, meta = load_checkpoint(tmp_path / "new.safetensors")
        bare = {k: v for k, v in meta.items() if k not in ("format", "version")}
        bare["architecture"] = {k: v for k, v in bare["architecture"].items() if k != "spline_slope_min"}
        save_checkpoint(tmp_path / "old.safetensors", tensors, bare)
        old = load_denoiser(tmp_path / "old.safetensors")
        assert old.config == net.config and old.acts[0].slope_min == 0.0
        assert torch.equal(old.acts[0].coefficients, net.acts[0].coefficients)

    def test_corrupt_foreign_and_tampered_files_are_refused(self, tmp_path):
        from safetensors.torch import save_file

        net = _adam_trained(LipschitzFFConfig(features=3, depth=2))
        good = tmp_path / "good.safetensors"
        save_denoiser(net, good)
        data = good.read_bytes()
        (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match="not a valid"):
            load_denoiser(tmp_path / "trunc.safetensors")
        save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
        with pytest.raises(CheckpointError, match="not a pnp-toolkit"):
            load_denoiser(tmp_path / "foreign.safetensors")
        tensors, meta = load_checkpoint(good)
        bare = {k: v for k, v in meta.items() if k not in ("format", "version")}
        save_checkpoint(tmp_path / "kind.safetensors", tensors, {**bare, "kind": "training-state"})
        with pytest.raises(CheckpointError, match="expected one of"):
            load_denoiser(tmp_path / "kind.safetensors")
        # an FF checkpoint that claims to be an averaged ResNet does not match its architecture
        save_checkpoint(tmp_path / "liar.safetensors", tensors, {**bare, "kind": "averaged-resnet"})
        with pytest.raises(CheckpointError, match="architecture"):
            load_denoiser(tmp_path / "liar.safetensors")
        tensors["convs.0.weight"] = tensors["convs.0.weight"] * 3
        save_checkpoint(tmp_path / "tampered.safetensors", tensors, bare)
        with pytest.raises(CheckpointError, match="certificate"):
            load_denoiser(tmp_path / "tampered.safetensors")
        with pytest.raises(TypeError, match="cannot save"):
            save_denoiser(torch.nn.Identity(), tmp_path / "x.safetensors")


# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from skimage import data, io
    from skimage.transform import resize

    d = tmp_path_factory.mktemp("imgs")
    for name in ("camera", "moon"):
        img = resize(getattr(data, name)(), (40, 40), anti_aliasing=True)
        io.imsave(d / f"{name}.png", (img * 255).astype(np.uint8), check_contrast=False)
    return d


ARCH = LipschitzFFConfig(features=4, depth=3)


def _cfg(**kw):
    from denoisers.train import TrainConfig

    base = dict(sigma=0.1, steps=3, batch_size=2, patch_size=16, lr=5e-3, validate_every=1000,
                checkpoint_every=2)
    base.update(kw)
    return TrainConfig(**base)


def test_train_ff_gives_a_loadable_certified_file_and_resumes_exactly(tmp_path, image_dir, monkeypatch):
    from denoisers.checkpoint import load_checkpoint
    from denoisers.train import train

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "no-shared"))
    a = tmp_path / "a.safetensors"
    res = train(a, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False)
    net = load_denoiser(a)
    assert isinstance(net, LipschitzFFNet) and net.frozen and net.certificate.exact
    assert net.config == ARCH
    assert res.certificate["alpha"] == net.certificate.alpha == ARCH.theta
    assert res.certificate["lipschitz_bound"] <= 1.0
    assert json.loads(a.with_suffix(".json").read_text())["architecture"] == ARCH.to_dict()
    b = tmp_path / "b.safetensors"
    train(b, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False, stop_after=2)
    train(b, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False, resume=True)
    ta, tb = load_checkpoint(a)[0], load_checkpoint(b)[0]
    assert ta.keys() == tb.keys()
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ValueError, match="different configuration"):  # an rk state is not an ff run
        c = tmp_path / "c.safetensors"
        train(c, config=_cfg(), architecture=AveragedConfig(channels=2, hidden=2, depth=1),
              data=[str(image_dir)], progress=False, stop_after=1)
        train(c, config=_cfg(), architecture=ARCH, data=[str(image_dir)], progress=False, resume=True)


def test_cli_train_ff_and_certify(tmp_path, image_dir, monkeypatch, capsys):
    from pnp.cli import main

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "no-shared"))
    out = tmp_path / "ff.safetensors"
    rc = main(["train", "--family", "ff", "--features", "4", "--depth", "3", "--theta", "0.9",
               "--sigma", "0.1", "--data", str(image_dir), "--out", str(out), "--steps", "3",
               "--batch-size", "2", "--patch-size", "16", "--no-progress"])
    assert rc == 0
    net = load_denoiser(out)
    assert isinstance(net, LipschitzFFNet) and net.config.features == 4 and net.config.depth == 3
    assert net.certificate.alpha == 0.9
    rep = tmp_path / "cert.json"
    assert main(["certify", str(out), "--size", "16", "--steps", "10", "--json", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["alpha"] == 0.9 and report["empirical_checks_consistent"] is True
    capsys.readouterr()
    # flags of the other family are refused with one line and exit code 2
    assert main(["train", "--family", "ff", "--hidden", "4", "--sigma", "0.1",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--hidden" in err
    assert main(["train", "--features", "4", "--sigma", "0.1", "--out", str(tmp_path / "y.safetensors")]) == 2


# --------------------------------------------------------------------------------------------
def test_spline_activation_variant_certificate_holds():
    net = _adam_trained(LipschitzFFConfig(features=4, depth=3, activation="spline", theta=0.9), lr=0.3)
    assert all(isinstance(a, LinearSpline) for a in net.acts)
    cert = net.certificate
    assert cert.exact and cert.alpha == 0.9 and _lip_n(cert) <= 1.0
    for a in net.acts:  # frozen: the stored coefficients are the projected ones
        s = a.slopes().detach()
        assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0 + 1e-12
    x0 = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    assert adversarial_lipschitz(net, x0, steps=40, lr=0.05).value <= cert.lipschitz_bound + 1e-9
    assert adversarial_averagedness(net, x0, cert.alpha, steps=40, lr=0.05).value <= 1.0 + 1e-9
    assert jacobian_spectral_norm(net, x0, iters=15).value <= cert.lipschitz_bound + 1e-9


def test_spline_ff_trains_and_loads(tmp_path, image_dir, monkeypatch):
    from denoisers.train import train

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "no-shared"))
    arch = LipschitzFFConfig(features=3, depth=2, activation="spline", spline_knots=9)
    out = tmp_path / "spline.safetensors"
    train(out, config=_cfg(steps=2, lr=0.1), architecture=arch, data=[str(image_dir)], progress=False)
    net = load_denoiser(out)
    assert net.config == arch and net.certificate.exact and net.certificate.alpha == arch.theta
    slopes = net.acts[0].slopes().detach()
    assert float(slopes.min()) >= 0.0 and float(slopes.max()) <= 1.0 + 1e-12


def test_absolute_init_spline_network_keeps_its_certificate():
    """Non-monotone splines (slopes in [-1, 1], |x| initialisation) after aggressive training:
    the certificate (L_sigma = 1) still holds under adversarial search."""
    cfg = LipschitzFFConfig(features=4, depth=3, theta=0.9, **ABS_SPLINE)
    fresh = LipschitzFFNet(cfg).double()
    x0 = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    with torch.no_grad():  # at initialisation every activation is exactly |x|
        for a in fresh.acts:
            z = torch.randn(2, 4, 5, 5, dtype=torch.float64)
            assert torch.equal(a(z), z.abs())
    net = _adam_trained(cfg, lr=0.3)
    assert all(isinstance(a, LinearSpline) and not a.monotone for a in net.acts)
    slopes = torch.cat([a.slopes().detach().flatten() for a in net.acts])
    assert float(slopes.min()) >= -1.0 and float(slopes.max()) <= 1.0
    assert float(slopes.min()) < -0.5  # genuinely non-monotone functions
    cert = net.certificate
    assert cert.exact and cert.alpha == 0.9 and _lip_n(cert) <= 1.0 and cert.lipschitz_bound <= 1.0
    acts = [layer for layer in cert.layers if layer.name.startswith("acts.")]
    assert acts and all("[-1, 1]" in layer.method and "not monotone" in layer.method for layer in acts)
    assert "[-1, 1]" in cert.notes
    lip = adversarial_lipschitz(net, x0, steps=40, lr=0.05)
    assert 0.05 < lip.value <= cert.lipschitz_bound + 1e-9
    assert adversarial_averagedness(net, x0, cert.alpha, steps=40, lr=0.05).value <= 1.0 + 1e-9
    assert jacobian_spectral_norm(net, x0, iters=15).value <= cert.lipschitz_bound + 1e-9
    # the default FF spline stays monotone and says so
    mono = LipschitzFFNet(LipschitzFFConfig(features=2, depth=2, activation="spline"))
    assert mono.acts[0].monotone and "[0, 1]" in mono.certificate.layers[1].method


def test_cli_train_ff_absolute_splines(tmp_path, image_dir, monkeypatch, capsys):
    from pnp.cli import main

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "no-shared"))
    out = tmp_path / "abs.safetensors"
    rc = main(["train", "--family", "ff", "--features", "3", "--depth", "2", "--activation", "spline",
               "--spline-knots", "9", "--spline-init", "absolute", "--sigma", "0.1", "--data", str(image_dir),
               "--out", str(out), "--steps", "2", "--batch-size", "2", "--patch-size", "16", "--no-progress"])
    assert rc == 0
    net = load_denoiser(out)
    assert net.config.spline_init == "absolute" and net.config.spline_slope_min == -1.0  # switched on
    assert net.certificate.exact and not net.acts[0].monotone
    s = net.acts[0].slopes().detach()
    assert float(s.min()) >= -1.0 and float(s.max()) <= 1.0
    capsys.readouterr()
    bad = [
        (["--family", "ff", "--spline-init", "absolute", "--spline-slope-min", "0"], "slope_min"),
        (["--spline-init", "absolute"], "--family ff"),  # rk (the default family)
        (["--family", "rk", "--spline-slope-min", "-1"], "--spline-slope-min"),
    ]
    for extra, word in bad:
        assert main(["train", "--activation", "spline", *extra, "--sigma", "0.1",
                     "--out", str(tmp_path / "x.safetensors")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and word in err, err
