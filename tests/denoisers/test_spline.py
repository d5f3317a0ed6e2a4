"""Learnable 1-Lipschitz linear-spline activations (monotone by default, slopes in [-1, 1] on
request): the constraint holds by construction under adversarial optimisation, exact
ReLU/identity/absolute-value initialisations, TV(2) and effective knots
against hand computations, gradients, the certificate of a spline network, save/load, training
and the command line."""

import json

import numpy as np
import pytest
import torch

from denoisers import (
    AveragedConfig,
    AveragedResNet,
    adversarial_averagedness,
    adversarial_lipschitz,
    jacobian_spectral_norm,
    load_denoiser,
    save_denoiser,
)
from denoisers.checkpoint import load_checkpoint
from denoisers.layers.spline import (
    LinearSpline,
    plot_activations,
    project_splines_,
    spline_report,
    tv2_penalty,
)
from denoisers.models import GradientStepConv
from denoisers.models.gradient_step import make_activation

TINY = dict(channels=4, hidden=4, depth=2, activation="spline")


def _piecewise_slopes(act: LinearSpline, lo: float, hi: float, n: int = 4001) -> torch.Tensor:
    """Finite-difference slopes of the evaluated function on a dense grid, ``[C, n-1]``."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    with torch.no_grad():
        y = act(x.view(-1, 1).expand(n, act.channels).contiguous())  # float64 evaluation
    return (torch.diff(y, dim=0) / torch.diff(x).view(-1, 1)).T


def test_slopes_stay_in_unit_interval_under_adversarial_adam():
    torch.manual_seed(0)
    act = LinearSpline(3, knots=9, range_=1.0, init="relu")
    opt = torch.optim.Adam(act.parameters(), lr=0.5)
    target = torch.tensor([5.0, -3.0, 5.0]).view(1, 3)  # slopes 5 and -3: both infeasible
    x = 3 * torch.randn(256, 3)
    raw_left = False
    for _ in range(100):
        loss = (act(x) - target * x).pow(2).mean() + (act.slopes() - target.T).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        s = act.slopes().detach()
        assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0
        raw = torch.diff(act.coefficients.detach(), dim=1) / act.spacing
        raw_left |= bool((raw > 1).any() or (raw < 0).any())
    assert raw_left  # the raw parameter did leave the feasible set: the projection did the work
    fd = _piecewise_slopes(act, -3.0, 3.0)  # beyond [-R, R] too (linear extrapolation)
    assert float(fd.min()) >= -1e-9 and float(fd.max()) <= 1 + 1e-9
    # it learned the constrained optimum (the gradient is not stuck at the bounds where the ReLU
    # initialisation starts): channels 0/2 slope 1 everywhere, channel 1 slope 0 everywhere
    torch.testing.assert_close(act.slopes().detach()[0], torch.ones(8))
    torch.testing.assert_close(act.slopes().detach()[1], torch.zeros(8))
    # project_ writes the evaluated function into the parameter; evaluation unchanged
    before = act(x.double()).detach()
    act.project_()
    raw = torch.diff(act.coefficients.detach(), dim=1) / act.spacing
    assert float(raw.min()) >= -1e-6 and float(raw.max()) <= 1 + 1e-6  # float32 round-off
    torch.testing.assert_close(act(x.double()).detach(), before, rtol=0, atol=1e-5)


@pytest.mark.parametrize("slope_min", [0.0, -1.0])
@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_slopes_stay_in_their_range_under_adam_and_sgd(slope_min, opt_name):
    torch.manual_seed(3)
    init = "absolute" if slope_min < 0 else "relu"
    act = LinearSpline(3, knots=9, range_=1.0, init=init, slope_min=slope_min)
    opt = (torch.optim.Adam(act.parameters(), lr=0.5) if opt_name == "adam"
           else torch.optim.SGD(act.parameters(), lr=2.0, momentum=0.9))
    target = torch.tensor([5.0, -3.0, 0.5]).view(1, 3)  # slopes 5 and -3 infeasible for both ranges
    x = 3 * torch.randn(256, 3)
    raw_left = False
    for _ in range(60):
        loss = (act(x) - target * x).pow(2).mean() + (act.slopes() - target.T).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        s = act.slopes().detach()
        assert float(s.min()) >= slope_min and float(s.max()) <= 1.0
        raw = torch.diff(act.coefficients.detach(), dim=1) / act.spacing
        raw_left |= bool((raw > 1).any() or (raw < slope_min).any())
    assert raw_left  # the raw parameter left [slope_min, 1]: the projection did the work
    fd = _piecewise_slopes(act, -3.0, 3.0)  # beyond [-R, R] too (linear extrapolation)
    assert float(fd.min()) >= slope_min - 1e-9 and float(fd.max()) <= 1 + 1e-9
    if opt_name == "adam":  # (SGD with this step oscillates between the bounds: range check only)
        # the constrained optimum: slopes 1 and slope_min everywhere on the saturated channels
        # (channel 1 uses the negative range when allowed), an interior slope ~0.5 on channel 2
        s = act.slopes().detach()
        torch.testing.assert_close(s[0], torch.ones(8))
        torch.testing.assert_close(s[1], torch.full((8,), slope_min))
        assert 0.3 < float(s[2].min()) and float(s[2].max()) < 0.7
    act.project_()  # stored weights = evaluated function, still in range
    raw = torch.diff(act.coefficients.detach(), dim=1) / act.spacing
    assert float(raw.min()) >= slope_min - 1e-6 and float(raw.max()) <= 1 + 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_absolute_init_is_exact(dtype):
    torch.manual_seed(4)
    x = 3.0 * torch.randn(2, 5, 7, 6, dtype=dtype)  # well beyond [-R, R] = [-1, 1]
    x[0, 0, 0, :6] = torch.tensor([0.0, -1e-30, 1e-30, 1.0, -1.0, -1.0 / 16], dtype=dtype)
    act = LinearSpline(5, init="absolute", slope_min=-1).to(dtype)
    assert act.slope_min == -1.0 and not act.monotone and LinearSpline(5).monotone
    # bitwise on the dyadic default grid (T = 1/16): slopes are exactly -1 / +1 and every
    # intercept |t_k| - (+-1) t_k is exactly 0, so f(x) = -x or x with no rounding at all
    assert torch.equal(act(x), torch.abs(x))
    assert torch.equal(act(x[:, :, 0, 0]), torch.abs(x[:, :, 0, 0]))
    assert act.slopes().unique().tolist() == [-1.0, 1.0]
    assert act.effective_knots().tolist() == [1] * 5
    assert float(act.tv2().detach()) == 5 * 2.0  # one jump of 2 per channel
    before = act.coefficients.detach().clone()
    act.project_()  # feasible: P is exactly the identity here
    assert torch.equal(act.coefficients, before)
    # a non-dyadic grid (T = 0.1): the knot values |t_k| are rounded when stored (float32 by
    # default), so the slopes are +-1 up to an ulp: exact to round-off only
    act21 = LinearSpline(5, knots=21, range_=1.0, init="absolute", slope_min=-1.0).to(dtype)
    torch.testing.assert_close(act21(x), torch.abs(x), rtol=1e-6, atol=1e-6)
    # the other initialisations are unchanged by the wider range (bitwise)
    assert torch.equal(LinearSpline(5, init="relu", slope_min=-1).to(dtype)(x), torch.relu(x))
    assert torch.equal(LinearSpline(5, init="identity", slope_min=-1).to(dtype)(x), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_and_identity_inits_are_exact(dtype):
    torch.manual_seed(1)
    x = 3.0 * torch.randn(2, 5, 7, 6, dtype=dtype)  # well beyond [-R, R] = [-1, 1]
    x[0, 0, 0, :6] = torch.tensor([0.0, -1e-30, 1e-30, 1.0, -1.0, 1.0 / 16], dtype=dtype)  # 0, knots
    relu = LinearSpline(5, init="relu").to(dtype)
    ident = LinearSpline(5, init="identity").to(dtype)
    assert torch.equal(relu(x), torch.relu(x))  # bitwise (dyadic default grid T = 1/16)
    assert torch.equal(ident(x), x)
    assert torch.equal(relu(x[:, :, 0, 0]), torch.relu(x[:, :, 0, 0]))  # [B, C] input
    zero = LinearSpline(5, init="zero").to(dtype)
    assert torch.equal(zero(x), torch.zeros_like(x))
    # a non-dyadic grid (T = 0.1): exact up to round-off of the knots, exact zeros for x < 0
    relu21 = LinearSpline(5, knots=21, range_=1.0, init="relu").to(dtype)
    torch.testing.assert_close(relu21(x), torch.relu(x), rtol=1e-6, atol=1e-6)
    assert torch.equal(relu21(x)[x < 0], torch.zeros_like(x[x < 0]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="slope -1"):
        LinearSpline(2, init="absolute")
    with pytest.raises(ValueError, match="slope_min"):
        LinearSpline(2, init="absolute", slope_min=0.0)
    for bad in (0.5, -2.0, True, "-1", float("nan")):
        with pytest.raises(ValueError, match="slope_min"):
            LinearSpline(2, slope_min=bad)
    with pytest.raises(ValueError, match="spline_init"):
        LinearSpline(2, init="tanh", slope_min=-1.0)
    with pytest.raises(ValueError, match="spline_init"):
        LinearSpline(2, init="tanh")
    with pytest.raises(ValueError, match="spline_knots"):
        LinearSpline(2, knots=20)
    with pytest.raises(ValueError, match="spline_range"):
        LinearSpline(2, range_=0.0)
    with pytest.raises(ValueError, match="channels"):
        LinearSpline(3)(torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="channels="):
        make_activation("spline")
    with pytest.raises(ValueError, match="slope -1"):
        AveragedConfig(activation="spline", spline_init="absolute")
    with pytest.raises(ValueError, match="slope -1"):
        GradientStepConv(2, 3, activation="spline", spline_init="absolute")
    with pytest.raises(ValueError, match="slope -1"):
        make_activation("spline", channels=2, spline_init="absolute")
    with pytest.raises(ValueError, match="activation"):
        AveragedConfig(activation="softplus")


def _hand_spline() -> LinearSpline:
    act = LinearSpline(2, knots=5, range_=1.0).double()  # T = 0.5, knots -1, -.5, 0, .5, 1
    with torch.no_grad():
        act.coefficients.copy_(torch.tensor([[0.0, 0.0, 0.25, 0.75, 1.0],  # slopes 0, .5, 1, .5
                                             [0.0, 1.0, 1.0, 1.0, 3.0]],  # raw slopes 2, 0, 0, 4
                                            dtype=torch.float64))
    return act


def test_tv2_equals_hand_computation():
    act = _hand_spline()
    # channel 1 is infeasible: projected slopes 1, 0, 0, 1 re-integrated from the value at 0 (c_2 = 1)
    torch.testing.assert_close(act.projected_coefficients()[1],
                               torch.tensor([0.5, 1.0, 1.0, 1.0, 1.5], dtype=torch.float64))
    # |c_{k+1} - 2 c_k + c_{k-1}| / T: channel 0: (.25 + .25 + .25) / .5 = 1.5;
    # channel 1 (projected): (.5 + 0 + .5) / .5 = 2
    assert float(act.tv2().detach()) == pytest.approx(3.5, abs=1e-12)
    two = torch.nn.Sequential(act, LinearSpline(3, init="relu"))
    assert float(tv2_penalty(two).detach()) == pytest.approx(3.5 + 3.0, abs=1e-6)  # a ReLU channel counts 1
    relu_net = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1))
    assert float(tv2_penalty(relu_net)) == 0.0


def test_effective_knots_on_hand_made_spline():
    act = _hand_spline()
    assert act.effective_knots().tolist() == [3, 2]
    with torch.no_grad():
        act.coefficients[1].copy_(torch.tensor([0.0, 0.0, 0.0, 2.5e-4, 5e-4]))  # slopes 0, 0, 5e-4, 5e-4
    assert act.effective_knots(tol=1e-3).tolist() == [3, 0]
    assert act.effective_knots(tol=1e-4).tolist() == [3, 1]
    assert LinearSpline(4, init="relu").effective_knots().tolist() == [1] * 4
    assert LinearSpline(4, init="identity").effective_knots().tolist() == [0] * 4
    report = spline_report(torch.nn.Sequential(act))
    assert report[0]["name"] == "0" and report[0]["effective_knots"] == [3, 0]
    assert report[0]["mean_effective_knots"] == 1.5 and report[0]["channels"] == 2


def test_gradcheck_off_the_knots():
    torch.manual_seed(2)
    act = LinearSpline(3, knots=9, range_=1.0).double()
    with torch.no_grad():  # interior slopes (clamp inactive): the gradient is the true one
        slopes = 0.1 + 0.8 * torch.rand(3, 8, dtype=torch.float64)
        c = torch.cat([torch.zeros(3, 1, dtype=torch.float64), torch.cumsum(slopes, 1) * act.spacing], 1)
        act.coefficients.copy_(c - c[:, 4:5] + torch.randn(3, 1, dtype=torch.float64))
    x = 1.5 * (2 * torch.rand(2, 3, 4, 4, dtype=torch.float64) - 1)  # inside and beyond [-1, 1]
    frac = x / act.spacing - torch.round(x / act.spacing)
    x = x + (frac.abs() < 0.05) * 0.1 * act.spacing  # keep 5e-3 away from every knot
    x.requires_grad_(True)
    coef = act.coefficients.detach().clone().requires_grad_(True)
    f = lambda xx, cc: torch.func.functional_call(act, {"coefficients": cc}, (xx,))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, coef), eps=1e-6, atol=1e-8)


def test_make_activation_and_block():
    act, lip = make_activation("spline", channels=6, spline_knots=17, spline_range=2.0, spline_init="identity")
    assert isinstance(act, LinearSpline) and lip == 1.0
    assert (act.channels, act.knots, act.range, act.init) == (6, 17, 2.0, "identity")
    blk = GradientStepConv(2, 5, activation="spline", spline_knots=11)
    assert isinstance(blk.act, LinearSpline) and blk.act.channels == 5 and blk.act.knots == 11
    assert blk.lip_act == 1.0
    assert act.slope_min == 0.0 and blk.act.monotone  # the gradient-step blocks: monotone only
    # old checkpoints (no spline keys) still load with the defaults
    old = {k: v for k, v in AveragedConfig().to_dict().items() if not k.startswith("spline_")}
    assert AveragedConfig.from_dict(old) == AveragedConfig()


def _spline_net_after_training(seed: int = 0) -> AveragedResNet:
    """Random (zig-zag) spline coefficients, trained-like weights, then Adam with TV(2), frozen."""
    torch.manual_seed(seed)
    net = AveragedResNet(AveragedConfig(**TINY, alpha_block=0.9)).double()
    with torch.no_grad():
        for i, b in enumerate(net.blocks):
            b.weight.mul_(0.5 + i)
            b.bias.normal_(0.0, 0.3)
            b.act.coefficients.normal_(0.0, 0.3)  # raw slopes ~ N(0, 7): mostly clamped to 0 / 1
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    clean = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    noisy = clean + 0.1 * torch.randn_like(clean)
    net.train()
    for _ in range(8):
        loss = (net(noisy, 0.1) - clean).pow(2).mean() + 1e-4 * tv2_penalty(net)
        opt.zero_grad()
        loss.backward()
        opt.step()
        project_splines_(net)
    net.eval()
    net.freeze()
    return net


def test_runge_kutta_family_only_builds_monotone_splines():
    net = AveragedResNet(AveragedConfig(**TINY))
    assert all(b.act.slope_min == 0.0 and b.act.monotone for b in net.blocks)
    # there is no way to configure a non-monotone spline in the Runge-Kutta family
    with pytest.raises(ValueError, match="unknown architecture keys"):
        AveragedConfig.from_dict({**AveragedConfig(**TINY).to_dict(), "spline_slope_min": -1.0})


def test_spline_network_certificate_holds_under_adversarial_search():
    net = _spline_net_after_training()
    for b in net.blocks:
        s = b.act.slopes().detach()
        assert float(s.min()) >= 0 and float(s.max()) <= 1
        assert float(b.act.effective_knots().float().mean()) > 2  # genuinely non-ReLU functions
    cert = net.certificate
    assert cert.exact and cert.lipschitz_bound == 1.0 and cert.alpha < 1
    assert "spline" in cert.notes
    x0 = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    lip = adversarial_lipschitz(net, x0, steps=50, lr=0.05)
    assert 0.05 < lip.value <= cert.lipschitz_bound + 1e-9
    assert jacobian_spectral_norm(net, x0, iters=15).value <= cert.lipschitz_bound + 1e-9
    assert adversarial_averagedness(net, x0, cert.alpha, steps=50, lr=0.05).value <= 1.0 + 1e-9


def test_save_load_round_trip_and_export(tmp_path):
    net = _spline_net_after_training(seed=1)
    path = tmp_path / "spline.safetensors"
    save_denoiser(net, path, metadata={"sigma": 0.1})
    loaded = load_denoiser(path)
    assert loaded.config == net.config and loaded.config.activation == "spline"
    for a, b in zip(net.blocks, loaded.blocks):
        assert torch.equal(a.act.coefficients, b.act.coefficients)
    x = torch.rand(2, 1, 11, 11, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(loaded(x, 0.1), net(x, 0.1))
        exported = net.export()
        torch.testing.assert_close(exported(x, 0.1), net(x, 0.1))
    assert loaded.certificate.to_dict() == net.certificate.to_dict()
    png = plot_activations(loaded, tmp_path / "acts.png")
    assert png is not None and png.stat().st_size > 0
    assert plot_activations(AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1)), tmp_path / "x.png") is None


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from skimage import data, io
    from skimage.transform import resize

    d = tmp_path_factory.mktemp("imgs")
    for name in ("camera", "moon"):
        img = resize(getattr(data, name)(), (32, 32), anti_aliasing=True)
        io.imsave(d / f"{name}.png", (img * 255).astype(np.uint8), check_contrast=False)
    return d


def test_training_with_tv2_resumes_exactly(tmp_path, image_dir, monkeypatch):
    from denoisers.train import TrainConfig, train

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "no-shared"))  # no validation set: fast
    cfg = TrainConfig(sigma=0.1, steps=6, batch_size=2, patch_size=16, lr=2e-2, checkpoint_every=3,
                      validate_every=1000, tv2_weight=1e-3)
    arch = AveragedConfig(**TINY, spline_knots=17)
    a = tmp_path / "a.safetensors"
    res = train(a, config=cfg, architecture=arch, data=[str(image_dir)], progress=False)
    assert res.history["tv2"] and a.with_suffix(".activations.png").exists()
    assert json.loads(a.with_suffix(".json").read_text())["splines"][0]["knots"] == 17
    b = tmp_path / "b.safetensors"
    train(b, config=cfg, architecture=arch, data=[str(image_dir)], progress=False, stop_after=3)
    train(b, config=cfg, architecture=arch, data=[str(image_dir)], progress=False, resume=True)
    ta, _ = load_checkpoint(a)
    tb, _ = load_checkpoint(b)
    assert ta.keys() == tb.keys() and "blocks.0.act.coefficients" in ta
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    # the splines moved away from the ReLU initialisation and stayed feasible
    net = load_denoiser(a)
    assert not torch.equal(net.blocks[0].act.coefficients, LinearSpline(4, knots=17).coefficients)
    s = net.blocks[0].act.slopes().detach()
    assert float(s.min()) >= 0 and float(s.max()) <= 1


def test_resume_accepts_state_files_written_before_the_spline_fields():
    from denoisers.train.trainer import TrainConfig, _cfg_json, _same_architecture, _same_train_config

    cfg = TrainConfig(sigma=0.1)
    old_cfg = {k: v for k, v in _cfg_json(cfg).items() if k != "tv2_weight"}
    assert _same_train_config(old_cfg, cfg)
    assert not _same_train_config(old_cfg, TrainConfig(sigma=0.1, tv2_weight=0.0))
    arch = AveragedConfig()
    old_arch = {k: v for k, v in arch.to_dict().items() if not k.startswith("spline_")}
    assert _same_architecture(old_arch, arch)
    assert not _same_architecture(old_arch, AveragedConfig(activation="spline"))
    with pytest.raises(ValueError, match="tv2_weight"):
        TrainConfig(tv2_weight=-1.0)


def test_cli_trains_and_certifies_a_spline_network(tmp_path, image_dir, monkeypatch, capsys):
    from pnp.cli import main

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "no-shared"))
    out = tmp_path / "cli.safetensors"
    rc = main(["train", "--sigma", "0.1", "--data", str(image_dir), "--out", str(out), "--steps", "3",
               "--batch-size", "2", "--patch-size", "16", "--channels", "4", "--hidden", "4", "--depth", "2",
               "--activation", "spline", "--spline-knots", "17", "--spline-range", "0.5",
               "--spline-init", "identity", "--tv2-weight", "1e-3", "--checkpoint-every", "3", "--no-progress"])
    assert rc == 0
    net = load_denoiser(out)
    act = net.blocks[0].act
    assert isinstance(act, LinearSpline) and (act.knots, act.range, act.init) == (17, 0.5, "identity")
    _, meta = load_checkpoint(out)
    assert meta["train_config"]["tv2_weight"] == 1e-3
    assert out.with_suffix(".activations.png").exists()
    capsys.readouterr()
    assert main(["certify", str(out), "--size", "8", "--steps", "2", "--json", str(tmp_path / "c.json")]) == 0
    assert "splines" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["splines"][0]["knots"] == 17
    capsys.readouterr()
    # the Runge-Kutta family refuses |x| (not monotone) and the wider slope range: one line, exit 2
    refused = ((["--spline-init", "absolute"], "monotone"), (["--spline-slope-min", "-1"], "--spline-slope-min"))
    for extra, word in refused:
        assert main(["train", "--sigma", "0.1", "--activation", "spline", *extra,
                     "--out", str(tmp_path / "x.safetensors")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and word in err
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    act = _hand_spline().float()
    x = torch.randn(3, 2, 5, 5)
    torch.testing.assert_close(act.cuda()(x.cuda()).cpu(), act.cpu()(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_odd_part_is_the_spline_of_its_knot_values(dtype):
    """``odd`` / ``odd_integral`` (one table look-up) equal ``(f(x) - f(-x)) / 2`` and
    ``(F(x) + F(-x)) / 2`` on and off the grid (beyond it both extrapolate), with the same gradient
    in the coefficients; the odd part is odd, 0 at 0, and its slopes stay in ``[0, 1]``."""
    torch.manual_seed(3)
    act = LinearSpline(5, knots=17, range_=2.0, init="clip").to(dtype)
    with torch.no_grad():
        act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    act.project_()
    x = 3.0 * torch.randn(3, 5, 7, 7, dtype=dtype)
    x[0, :, 0, :4] = torch.tensor([0.0, 2.0, -2.0, 0.25], dtype=dtype)  # 0, the grid's ends, a knot
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    ref = 0.5 * (act(x) - act(-x))
    got = act.odd(x)
    torch.testing.assert_close(got, ref, **tol)
    torch.testing.assert_close(act.odd_integral(x), 0.5 * (act.integral(x) + act.integral(-x)), **tol)
    both = act.odd_with_integral(x)  # one look-up for the pair
    torch.testing.assert_close(both[0], got, rtol=0, atol=0)
    torch.testing.assert_close(both[1], act.odd_integral(x), rtol=0, atol=0)
    assert bool((got[0, :, 0, 0] == 0).all())
    torch.testing.assert_close(act.odd(-x), -got, **tol)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), act.coefficients)
    (g_new,) = torch.autograd.grad(act.odd(x).square().sum(), act.coefficients)
    # float32: the middle value c_m cancels exactly in the odd table, only up to round-off in the reference
    scale = float(g_ref.abs().max())
    gtol = dict(rtol=1e-4, atol=1e-5 * scale) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12 * scale)
    torch.testing.assert_close(g_new, g_ref, **gtol)
    _, s_odd = act.odd_projection()
    s_odd = s_odd.detach()
    assert float(s_odd.min()) >= 0.0 and float(s_odd.max()) <= 1.0
    with pytest.raises(ValueError, match="channels"):
        act.odd(torch.zeros(1, 4, 3, 3, dtype=dtype))
