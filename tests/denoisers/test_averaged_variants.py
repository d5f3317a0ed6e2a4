"""Variants of the averaged network (issue 15): multi-convolution blocks, odd spline activations
without biases, blocks anchored to the input, tied blocks, distillation. Each certificate is
checked against an empirical lower bound (adversarial pairs, or the exact alpha of a linear
network), and each variant survives save/load/export."""

import math

import pytest
import torch
import torch.nn.functional as F

from denoisers import (
    AveragedConfig,
    AveragedResNet,
    adversarial_averagedness,
    adversarial_lipschitz,
    averagedness_ratio,
    compose_alpha,
    load_denoiser,
    save_denoiser,
)
from denoisers.layers.conv_bounds import conv_opnorm_upper_bound
from denoisers.models.averaged import anchored_alpha
from denoisers.layers.conv_bounds import compose_kernels
from denoisers.models.gradient_step import GradientStepConv, OddLinearSpline
from tests.denoisers.test_averaged import _materialise, _min_alpha


def _trained_like(cfg: AveragedConfig, seed: int = 0, anchors: float | None = None) -> AveragedResNet:
    """Weights, biases and anchors of trained-like scale, frozen (float64)."""
    torch.manual_seed(seed)
    net = AveragedResNet(cfg).double()
    with torch.no_grad():
        for i, b in enumerate(net.blocks):
            for p in ([b.weight] if b.factors == 1 else list(b.weight_factors)):
                p.mul_(0.5 + i)
            if b.has_bias:
                b.bias.normal_(0.0, 0.3)
        if cfg.anchor:
            c = torch.linspace(0.05, 0.4, cfg.depth, dtype=torch.float64) if anchors is None else torch.full(
                (cfg.depth,), anchors, dtype=torch.float64)
            net.anchor_logits.copy_(torch.log(c / (1 - c)))
    net.eval()
    net.freeze()
    return net


VARIANTS = {
    "multiconv": dict(factors=2),
    "multiconv3": dict(factors=3, kernel_size=3),
    "oddspline": dict(activation="odd_spline", spline_init="clip", bias=False),
    "anchor": dict(anchor=True),
    "tied": dict(tied=True),
    "tied-anchor": dict(tied=True, anchor=True),
    "all": dict(factors=2, activation="odd_spline", spline_init="clip", bias=False, anchor=True, tied=True),
}


# ------------------------------------------------------------------------------ multi-convolution
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
def test_composed_kernel_is_the_composition_of_full_convolutions(size):
    torch.manual_seed(0)
    k1, k2, k3 = torch.randn(4, 2, 3, 3), torch.randn(5, 4, 3, 3), torch.randn(3, 5, 5, 5)
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    ks = [k.double() for k in (k1, k2, k3)]
    seq = x
    for k in ks:
        seq = F.conv2d(seq, k, padding=k.shape[-1] - 1)  # full linear convolution
    K = compose_kernels(ks)
    assert K.shape == (3, 2, 9, 9)
    torch.testing.assert_close(F.conv2d(x, K, padding=8), seq)


@pytest.mark.parametrize("size", [(7, 7), (8, 6)])
def test_multiconv_block_adjoint_and_certified_norm(size):
    torch.manual_seed(1)
    blk = GradientStepConv(2, 3, factors=2, kernel_size=3).double()
    K = blk.kernel().detach()
    assert K.shape == (3, 2, 5, 5) and blk.effective_kernel_size == 5
    p = K.shape[-1] // 2
    x = torch.randn(1, 2, *size, dtype=torch.float64)
    z = torch.randn(1, 3, *size, dtype=torch.float64)
    lhs = float((F.conv2d(x, K, padding=p) * z).sum())
    rhs = float((x * F.conv_transpose2d(z, K, padding=p)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10)
    # certified bound of the composed kernel >= the norm of the materialised operator
    mat = _materialise(lambda v: F.conv2d(v, K, padding=p), (2, *size))
    exact = float(torch.linalg.matrix_norm(mat, ord=2))
    ub = blk.norm_upper_bound()
    assert exact <= ub
    assert ub <= 1.5 * conv_opnorm_upper_bound(K, grid=64).bound  # the same bound, not a product of norms
    # and it is at most the product of the factors' bounds (up to the sampling slack)
    prod = math.prod(conv_opnorm_upper_bound(f.detach(), grid=64).bound for f in blk.weight_factors)
    assert ub <= prod * 1.05


def test_odd_spline_is_odd_monotone_and_one_lipschitz():
    torch.manual_seed(2)
    act = OddLinearSpline(3, init="relu")
    with torch.no_grad():
        act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    x = torch.linspace(-1.5, 1.5, 601).repeat(3, 1).T[None, :, :, None].permute(0, 2, 1, 3)  # [1, 3, 601, 1]
    y = act(x)
    torch.testing.assert_close(act(-x), -y)
    d = torch.diff(y[0, :, :, 0], dim=1) / torch.diff(x[0, :, :, 0], dim=1)
    d = d.detach()
    assert float(d.min()) >= -1e-6 and float(d.max()) <= 1 + 1e-6


# ------------------------------------------------------------------------------ anchored chain
def test_anchored_alpha_closed_forms():
    assert anchored_alpha([0.7], [0.2]) == pytest.approx(0.8 * 0.7)
    # no anchoring: the pairwise Combettes-Yamada composition, at most the m/(m-1+1/max) formula
    cy = lambda a, b: (a + b - 2 * a * b) / (1 - a * b)  # noqa: E731
    assert anchored_alpha([0.9, 0.8, 0.95], [0.0] * 3) == pytest.approx(cy(0.95, cy(0.8, 0.9)))
    assert anchored_alpha([0.9, 0.8, 0.95], [0.0] * 3) <= compose_alpha([0.9, 0.8, 0.95])
    assert anchored_alpha([1.0, 1.0], [0.1, 0.3]) == pytest.approx(0.7)  # non-expansive blocks
    # more anchoring, smaller alpha; strong anchoring gives a firmly non-expansive map
    a = [anchored_alpha([0.98] * 12, [c] * 12) for c in (0.0, 0.1, 0.3, 0.6)]
    assert all(x > y for x, y in zip(a, a[1:]))
    assert a[-1] <= 0.5
    with pytest.raises(ValueError, match="anchor"):
        anchored_alpha([0.5], [1.0])


def test_exact_alpha_of_a_linear_anchored_network_is_below_the_certificate():
    # linear blocks (leaky slope 1): the network is an affine map; its exact alpha is computed
    cfg = AveragedConfig(channels=3, hidden=3, depth=3, alpha_block=0.9, activation="leaky_relu", anchor=True)
    net = _trained_like(cfg, anchors=0.3)
    for b in net.blocks:
        b.act.negative_slope = 1.0
    with torch.no_grad():
        zero = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
        mat = _materialise(lambda v: net(v) - net(zero), (1, 6, 6))
    exact = _min_alpha(mat)
    cert = net.certificate.alpha
    assert exact <= cert + 1e-9
    assert cert < compose_alpha([0.9] * 3)  # anchoring lowers the certified alpha


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_certificate_holds_under_adversarial_search(name):
    cfg = AveragedConfig(channels=4, hidden=5, depth=3, alpha_block=0.9, pixel_unshuffle=2, **VARIANTS[name])
    net = _trained_like(cfg)
    cert = net.certificate
    assert cert.exact and cert.lipschitz_bound == 1.0
    if not cfg.anchor:
        assert cert.alpha == pytest.approx(compose_alpha([0.9] * 3), rel=1e-6)
    x0 = torch.rand(2, 1, 11, 12, dtype=torch.float64)
    lip = adversarial_lipschitz(net, x0, steps=40, lr=0.05)
    assert 0.05 < lip.value <= 1.0 + 1e-9
    assert adversarial_averagedness(net, x0, cert.alpha, steps=40, lr=0.05).value <= 1.0 + 1e-9
    y0 = torch.rand(2, 1, 11, 12, dtype=torch.float64)
    with torch.no_grad():
        assert float(averagedness_ratio(net, x0, y0, cert.alpha).max()) <= 1.0 + 1e-9


def test_strong_anchoring_certifies_a_firmly_non_expansive_network():
    cfg = AveragedConfig(channels=4, hidden=4, depth=4, alpha_block=0.95, anchor=True)
    net = _trained_like(cfg, anchors=0.5)
    cert = net.certificate
    assert cert.alpha <= 0.5
    x0 = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    assert adversarial_averagedness(net, x0, 0.5, steps=60, lr=0.05).value <= 1.0 + 1e-9


def test_tied_network_applies_one_block_depth_times():
    cfg = AveragedConfig(channels=1, hidden=3, depth=4, tied=True)  # one state channel: lift/project are exact
    net = _trained_like(cfg)
    assert len(net.blocks) == 1
    untied = AveragedResNet(AveragedConfig(channels=1, hidden=3, depth=1)).double()
    untied.load_state_dict(net.state_dict())
    x = torch.rand(1, 1, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        ref = x
        for _ in range(4):
            ref = untied(ref)
        torch.testing.assert_close(net(x), ref)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_round_trip_and_export(name, tmp_path):
    cfg = AveragedConfig(channels=4, hidden=4, depth=2, pixel_unshuffle=2, **VARIANTS[name])
    net = _trained_like(cfg)
    path = tmp_path / "m.safetensors"
    save_denoiser(net, path, metadata={"sigma": 0.1})
    loaded = load_denoiser(path).double()
    x = torch.rand(2, 1, 9, 10, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 0.1), net(x, 0.1))
        torch.testing.assert_close(net.export()(x, 0.1), net(x, 0.1))
    assert loaded.config == cfg
    assert loaded.certificate.to_dict() == net.certificate.to_dict()


def test_training_mode_runs_and_backpropagates_for_every_variant():
    for kw in VARIANTS.values():
        net = AveragedResNet(AveragedConfig(channels=4, hidden=4, depth=2, pixel_unshuffle=2, **kw))
        net.train()
        net(torch.rand(2, 1, 12, 12), 0.1).square().mean().backward()
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        if kw.get("anchor"):
            assert float(net.anchor_logits.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(factors=0), "factors"),
        (dict(bias=0), "bias"),
        (dict(anchor="yes"), "anchor"),
        (dict(noise_conditional=True, bias=False), "bias"),
        (dict(anchor=True, constrained=False), "anchor"),
    ],
)
def test_bad_variant_configs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AveragedConfig(**kwargs)


# ------------------------------------------------------------------------------ distillation
def test_distillation_regresses_on_the_teacher(tmp_path):
    from denoisers.train import TrainConfig, train

    with pytest.raises(ValueError, match="teacher"):
        TrainConfig(teacher=str(tmp_path / "missing.safetensors"))
    # the teacher is the identity map (a network whose blocks do nothing): the student, trained
    # on its outputs, must move towards the identity, i.e. its output towards the noisy input
    arch = AveragedConfig(channels=2, hidden=2, depth=1)
    teacher = AveragedResNet(arch)
    with torch.no_grad():
        teacher.blocks[0].weight.zero_()
        teacher.blocks[0].weight[0, 0, 1, 1] = 1e-6
        teacher.blocks[0].bias.fill_(-1.0)  # ReLU(W x - 1) = 0 on images: D = I
    teacher.eval()
    teacher.freeze()
    tpath = tmp_path / "teacher.safetensors"
    save_denoiser(teacher, tpath)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(imgs / f"{i}.png")
    torch.manual_seed(0)
    cfg = TrainConfig(sigma=0.2, steps=30, batch_size=4, patch_size=16, lr=1e-2, validate_every=1000,
                      teacher=str(tpath))
    res = train(tmp_path / "s.safetensors", config=cfg, architecture=arch, data=[str(imgs)], progress=False)
    student = load_denoiser(res.path)
    y = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        dist = float((student(y) - y).norm() / y.norm())
    assert dist < 0.05
    meta = load_denoiser(res.path).metadata
    assert meta["train_config"]["teacher"] == str(tpath)


def _tiny_folder(path, n=2, size=40):
    import numpy as np
    from PIL import Image

    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(path / f"{i}.png")
    return path


def test_cli_fine_tunes_into_a_firmly_non_expansive_relaxation(tmp_path, monkeypatch):
    from pnp.cli import main

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "none"))
    data = _tiny_folder(tmp_path / "imgs")
    net = _trained_like(AveragedConfig(channels=2, hidden=2, depth=2, alpha_block=0.98)).float()
    src = tmp_path / "src.safetensors"
    save_denoiser(net, src, metadata={"sigma": 0.1})
    out = tmp_path / "firm.safetensors"
    rc = main(["train", "--sigma", "0.1", "--init", str(src), "--theta", "0.5", "--steps", "2", "--batch-size", "2",
               "--patch-size", "16", "--data", str(data), "--out", str(out), "--no-progress"])
    assert rc == 0
    firm = load_denoiser(out)
    assert firm.config.theta == 0.5 and firm.config.depth == 2
    assert firm.certificate.alpha <= 0.5
    x0 = torch.rand(1, 1, 12, 12)
    assert adversarial_averagedness(firm.double(), x0.double(), 0.5, steps=40, lr=0.05).value <= 1.0 + 1e-9


def test_cli_refuses_variant_flags_where_they_do_not_apply(tmp_path, capsys):
    from pnp.cli import main

    data = _tiny_folder(tmp_path / "imgs")
    rc = main(["train", "--family", "crr", "--tied", "--sigma", "0.1", "--data", str(data), "--steps", "1",
               "--out", str(tmp_path / "c.safetensors")])
    assert rc != 0 and "--tied" in capsys.readouterr().err
    rc = main(["train", "--sigma", "0.1", "--teacher", str(tmp_path / "nope.safetensors"), "--data", str(data),
               "--steps", "1", "--out", str(tmp_path / "t.safetensors")])
    assert rc != 0 and "--teacher" in capsys.readouterr().err


# ------------------------------------------------------------------------------ rescaled init
@pytest.mark.parametrize("kwargs", [
    dict(), dict(pixel_unshuffle=2, channels=4), dict(anchor=True), dict(tied=True), dict(factors=2),
    dict(activation="leaky_relu"), dict(integrator="rk4"), dict(theta=0.5),
], ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "plain")
def test_conjugate_scale_is_exactly_the_rescaled_network(kwargs):
    """``conjugate_scale_(c)`` (biases / c) gives ``x -> N(c x) / c`` for every homogeneous variant, on odd
    and even sizes, with the weights, steps and certificate unchanged."""
    import copy

    cfg = AveragedConfig(**{**dict(channels=3, hidden=4, depth=3, alpha_block=0.98), **kwargs})
    net = _trained_like(cfg, seed=1)
    for c in (0.4, 2.5):
        scaled = copy.deepcopy(net).conjugate_scale_(c)
        for shape in ((2, 1, 11, 9), (1, 1, 12, 12)):
            x = torch.rand(*shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
            torch.testing.assert_close(scaled(x), net(c * x) / c, rtol=1e-12, atol=1e-12)
        assert scaled.certificate.alpha == net.certificate.alpha
        if net.blocks[0].has_bias:
            assert not torch.equal(scaled.blocks[0].bias, net.blocks[0].bias)  # not a no-op


def test_conjugate_scale_refuses_what_it_cannot_rescale():
    spline = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1, activation="odd_spline", bias=False))
    with pytest.raises(ValueError, match="homogeneous"):
        spline.conjugate_scale_(2.0)
    cond = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1, noise_conditional=True))
    with pytest.raises(ValueError, match="noise-conditional"):
        cond.conjugate_scale_(2.0)
    plain = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1))
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="c must be"):
            plain.conjugate_scale_(bad)


def test_cli_fine_tune_to_another_level_starts_from_the_rescaled_network(tmp_path, monkeypatch, capsys):
    """``--init`` trained at 0.1, fine-tuned to 0.05 with a vanishing learning rate: the saved biases are the
    init's halved (``N(2x)/2``); ``--init-as-is`` keeps them."""
    from pnp.cli import main

    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "none"))
    data = _tiny_folder(tmp_path / "imgs")
    net = _trained_like(AveragedConfig(channels=2, hidden=2, depth=2, alpha_block=0.98)).float()
    src = tmp_path / "src.safetensors"
    save_denoiser(net, src, metadata={"sigma": 0.1})
    for extra, factor in (([], 0.5), (["--init-as-is"], 1.0)):
        out = tmp_path / f"ft{len(extra)}.safetensors"
        rc = main(["train", "--sigma", "0.05", "--init", str(src), "--steps", "1", "--lr", "1e-12", "--batch-size", "2",
                   "--patch-size", "16", "--data", str(data), "--out", str(out), "--no-progress", *extra])
        assert rc == 0
        said = capsys.readouterr().out
        assert ("rescaled from 25.5/255 to 12.75/255" in said) == (not extra)
        ft = load_denoiser(out)
        assert ("rescaled to --sigma" in ft.metadata["init"]) == (not extra)
        for b, b0 in zip(ft.blocks, net.blocks):
            torch.testing.assert_close(b.bias, factor * b0.bias, rtol=0, atol=1e-6)
