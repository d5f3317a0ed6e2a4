"""The certified averaged network: alpha formulas, certificates vs empirical lower bounds,
the denoiser contract, save/load/export."""

import math
import pickle

import pytest
import torch

from denoisers import (
    AveragedConfig,
    AveragedResNet,
    CheckpointError,
    adversarial_averagedness,
    adversarial_lipschitz,
    averagedness_ratio,
    compose_alpha,
    jacobian_spectral_norm,
    load_denoiser,
    save_denoiser,
)
from denoisers.models import GradientStepConv


def _trained_like(cfg: AveragedConfig, seed: int = 0) -> AveragedResNet:
    """A network with weights and biases of trained-like scale (non-zero biases, varied norms)."""
    torch.manual_seed(seed)
    net = AveragedResNet(cfg).double()
    with torch.no_grad():
        for i, b in enumerate(net.blocks):
            b.weight.mul_(0.5 + i)
            b.bias.normal_(0.0, 0.3)
            if cfg.noise_conditional:
                b.bias_sigma.normal_(0.0, 2.0)
    net.eval()
    net.freeze()
    return net


def _round_trip(net: AveragedResNet, tmp_path, size):
    """Save/load and export ``net``; both must give its outputs, the loaded one its certificate."""
    path = tmp_path / "m.safetensors"
    save_denoiser(net, path, metadata={"sigma": 0.1})
    loaded = load_denoiser(path).double()
    x = torch.rand(2, 1, *size, dtype=torch.float64)
    exported = net.export()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 0.1), net(x, 0.1))
        torch.testing.assert_close(exported(x, 0.1), net(x, 0.1))
    assert loaded.certificate.to_dict() == net.certificate.to_dict()
    assert loaded.metadata["sigma"] == 0.1
    return loaded, exported


def _materialise(fn, shape):
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return fn(eye).reshape(n, -1).T


def _min_alpha(mat: torch.Tensor) -> float:
    """Smallest alpha with (T - (1 - alpha) I) / alpha non-expansive (bisection)."""
    eye = torch.eye(mat.shape[0], dtype=mat.dtype)
    lo, hi = 1e-6, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(torch.linalg.matrix_norm((mat - (1 - mid) * eye) / mid, ord=2)) <= 1 + 1e-12:
            hi = mid
        else:
            lo = mid
    return hi


def test_euler_alpha_formula_matches_direct_numerical_check():
    # identity activation (leaky slope 1): the block is the symmetric linear map I - h W^T W
    torch.manual_seed(0)
    blk = GradientStepConv(2, 3, activation="leaky_relu", alpha_target=0.8).double()
    blk.act.negative_slope = 1.0
    blk.eval()
    blk.freeze()
    alpha_cert, ub, h = blk.step_alpha()
    with torch.no_grad():
        mat = _materialise(lambda v: blk(v) , (2, 12, 12))
    alpha_exact = _min_alpha(mat)
    assert alpha_exact <= alpha_cert + 1e-9
    assert alpha_exact >= 0.9 * alpha_cert  # the bound is tight up to the size/padding effects
    assert alpha_cert == pytest.approx(0.8, rel=1e-6)


def test_composition_formula_dominates_exact_alpha_of_composition():
    torch.manual_seed(1)
    blocks = []
    for a in (0.6, 0.9):
        blk = GradientStepConv(1, 2, activation="leaky_relu", alpha_target=a).double()
        blk.act.negative_slope = 1.0
        blk.eval()
        blk.freeze()
        blocks.append(blk)
    with torch.no_grad():
        mat = _materialise(lambda v: blocks[1](blocks[0](v)), (1, 8, 8))
    alpha_exact = _min_alpha(mat)
    alphas = [b.step_alpha()[0] for b in blocks]
    assert alpha_exact <= compose_alpha(alphas) + 1e-9


@pytest.mark.parametrize("integrator", ["euler", "heun", "rk4"])
def test_certificate_holds_under_adversarial_search(integrator):
    theta = 1.0 if integrator == "euler" else 0.5
    cfg = AveragedConfig(channels=4, hidden=6, depth=3, integrator=integrator, theta=theta, alpha_block=0.9)
    net = _trained_like(cfg)
    cert = net.certificate
    assert cert.exact and cert.lipschitz_bound == 1.0
    if integrator == "euler":
        assert cert.alpha == pytest.approx(compose_alpha([0.9] * 3), rel=1e-6)
    else:
        assert cert.alpha == pytest.approx(0.5)
    x0 = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    lip = adversarial_lipschitz(net, x0, steps=60, lr=0.05)
    jac = jacobian_spectral_norm(net, x0, iters=20)
    assert 0.05 < lip.value <= cert.lipschitz_bound + 1e-9
    assert jac.value <= cert.lipschitz_bound + 1e-9
    avg = adversarial_averagedness(net, x0, cert.alpha, steps=60, lr=0.05)
    assert avg.value <= 1.0 + 1e-9
    # random pairs too
    y0 = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        assert float(averagedness_ratio(net, x0, y0, cert.alpha).max()) <= 1.0 + 1e-9


def test_alpha_claim_is_not_vacuous():
    """A smaller alpha than certified is refuted by the same search (the check can fail)."""
    cfg = AveragedConfig(channels=2, hidden=4, depth=1, alpha_block=0.9, activation="leaky_relu")
    net = _trained_like(cfg)
    net.blocks[0].act.negative_slope = 1.0  # linear block: alpha is attained
    x0 = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    found = adversarial_averagedness(net, x0, 0.3, steps=150, lr=0.05)
    assert found.value > 1.0


def test_noise_conditional_certificate_holds_for_every_level():
    cfg = AveragedConfig(channels=4, hidden=4, depth=2, noise_conditional=True)
    net = _trained_like(cfg)
    alpha = net.certificate.alpha
    x0 = torch.rand(1, 1, 10, 10, dtype=torch.float64)
    for s in (0.0, 0.05, 0.5):
        assert adversarial_averagedness(net, x0, alpha, sigma=s, steps=40, lr=0.05).value <= 1.0 + 1e-9
    with pytest.raises(ValueError, match="sigma"):
        net(x0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unconstrained_baseline_reports_a_valid_lipschitz_bound(seed):
    torch.manual_seed(seed)
    net = AveragedResNet(AveragedConfig(channels=2, hidden=3, depth=2, constrained=False)).double()
    with torch.no_grad():
        net.blocks[0].log_h.add_(1.5)  # step far beyond 2 / ||W||^2
    net.eval()
    net.freeze()
    cert = net.certificate
    assert cert.alpha is None and cert.lipschitz_bound > 1
    x0 = torch.rand(1, 1, 10, 10, dtype=torch.float64)
    found = adversarial_lipschitz(net, x0, steps=80, lr=0.05)
    assert found.value <= cert.lipschitz_bound * (1 + 1e-9)


def test_not_frozen_network_is_reported_as_such():
    net = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1))
    assert not net.frozen
    assert not net.certificate.exact
    assert "NOT frozen" in net.certificate.notes


class TestDenoiserContract:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("channels", [1, 3])
    def test_sigma_kinds_batch_dtype_no_mutation(self, dtype, channels):
        net = AveragedResNet(AveragedConfig(image_channels=channels, channels=4, hidden=4, depth=2)).to(dtype)
        net.eval()
        net.freeze()
        x = torch.rand(3, channels, 9, 10, dtype=dtype)
        x_copy = x.clone()
        out_f = net(x, 0.1)
        out_t = net(x, torch.full((3,), 0.1, dtype=dtype))
        assert out_f.shape == x.shape and out_f.dtype == dtype
        assert torch.equal(x, x_copy)
        torch.testing.assert_close(out_f, out_t)
        # batch independence
        torch.testing.assert_close(net(x[1:2], 0.1), out_f[1:2])

    def test_bad_inputs(self):
        net = AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1))
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
        with pytest.raises(ValueError, match="theta"):
            AveragedConfig(theta=0.0)
        with pytest.raises(ValueError, match="alpha_block"):
            AveragedConfig(alpha_block=1.0)


class TestSaveLoadExport:
    def test_round_trip_and_export(self, tmp_path):
        net = _trained_like(AveragedConfig(channels=4, hidden=4, depth=2, theta=0.8))
        loaded, exported = _round_trip(net, tmp_path, (11, 11))
        assert exported.certificate == net.certificate
        assert loaded.metadata["sigma"] == 0.1

    def test_export_requires_freeze(self):
        with pytest.raises(ValueError, match="freeze"):
            AveragedResNet(AveragedConfig(channels=2, hidden=2, depth=1)).export()

    def test_corrupt_foreign_and_pickled_files_are_refused(self, tmp_path):
        net = _trained_like(AveragedConfig(channels=2, hidden=2, depth=1))
        good = tmp_path / "good.safetensors"
        save_denoiser(net, good)
        data = good.read_bytes()
        truncated = tmp_path / "trunc.safetensors"
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match="not a valid"):
            load_denoiser(truncated)
        from safetensors.torch import save_file

        foreign = tmp_path / "foreign.safetensors"
        save_file({"w": torch.zeros(2)}, str(foreign))
        with pytest.raises(CheckpointError, match="not a pnp-toolkit"):
            load_denoiser(foreign)
        # a pickle that would create a file if it were ever unpickled
        marker = tmp_path / "PWNED"

        class Evil:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        evil = tmp_path / "evil.safetensors"
        evil.write_bytes(pickle.dumps(Evil()))
        with pytest.raises(CheckpointError):
            load_denoiser(evil)
        assert not marker.exists()
        with pytest.raises(FileNotFoundError):
            load_denoiser(tmp_path / "missing.safetensors")

    def test_tampered_weights_break_the_stored_certificate(self, tmp_path):
        from denoisers.checkpoint import load_checkpoint, save_checkpoint

        net = _trained_like(AveragedConfig(channels=2, hidden=2, depth=1))
        path = tmp_path / "m.safetensors"
        save_denoiser(net, path)
        tensors, meta = load_checkpoint(path)
        tensors["blocks.0.weight"] = tensors["blocks.0.weight"] * 3
        save_checkpoint(path, tensors, {k: v for k, v in meta.items() if k not in ("format", "version")})
        with pytest.raises(CheckpointError, match="certificate"):
            load_denoiser(path)


class TestPixelUnshuffle:
    """Blocks on r x r cells stacked as channels: E = zero-pad + space-to-depth + zero channels."""

    def test_lift_is_an_isometry_and_project_its_adjoint(self):
        from denoisers.models.averaged import lift, project

        cfg = AveragedConfig(channels=6, hidden=2, depth=1, pixel_unshuffle=2)
        for shape in ((1, 1, 7, 9), (2, 1, 8, 6)):
            x = torch.rand(*shape, dtype=torch.float64)
            z = lift(x, cfg)
            assert z.shape[1] == 6
            assert float(z.norm()) == pytest.approx(float(x.norm()), rel=1e-12)
            torch.testing.assert_close(project(z, cfg, x.shape), x)
            # <E x, w> = <x, E^T w>: E^T is the adjoint
            w = torch.randn_like(z)
            assert float((z * w).sum()) == pytest.approx(float((x * project(w, cfg, x.shape)).sum()), rel=1e-10)

    @pytest.mark.parametrize("size", [(12, 12), (11, 13)])
    def test_certificate_holds_under_adversarial_search(self, size):
        cfg = AveragedConfig(channels=6, hidden=6, depth=3, alpha_block=0.9, pixel_unshuffle=2)
        net = _trained_like(cfg)
        cert = net.certificate
        assert cert.exact and cert.lipschitz_bound == 1.0
        assert cert.alpha == pytest.approx(compose_alpha([0.9] * 3), rel=1e-6)
        assert "space-to-depth" in cert.notes
        x0 = torch.rand(2, 1, *size, dtype=torch.float64)
        lip = adversarial_lipschitz(net, x0, steps=60, lr=0.05)
        assert 0.05 < lip.value <= 1.0 + 1e-9
        assert jacobian_spectral_norm(net, x0, iters=20).value <= 1.0 + 1e-9
        assert adversarial_averagedness(net, x0, cert.alpha, steps=60, lr=0.05).value <= 1.0 + 1e-9

    def test_exact_alpha_of_materialised_network_is_below_certificate(self):
        # linear blocks (leaky slope 1): the whole network is a matrix whose alpha we compute
        cfg = AveragedConfig(channels=4, hidden=3, depth=2, alpha_block=0.8, activation="leaky_relu",
                             pixel_unshuffle=2)
        net = _trained_like(cfg)
        for b in net.blocks:
            b.act.negative_slope = 1.0
        with torch.no_grad():
            bias_free = lambda v: net(v) - net(torch.zeros(1, 1, 6, 6, dtype=torch.float64))  # noqa: E731
            mat = _materialise(bias_free, (1, 6, 6))
        assert _min_alpha(mat) <= net.certificate.alpha + 1e-9

    def test_round_trip_export_and_bad_config(self, tmp_path):
        net = _trained_like(AveragedConfig(channels=4, hidden=4, depth=2, pixel_unshuffle=2))
        loaded, _ = _round_trip(net, tmp_path, (9, 10))
        assert loaded.config.pixel_unshuffle == 2
        with pytest.raises(ValueError, match="pixel_unshuffle"):
            AveragedConfig(channels=3, pixel_unshuffle=2)
        with pytest.raises(ValueError, match="pixel_unshuffle"):
            AveragedConfig(pixel_unshuffle=0)


def test_cli_certify_json_dominates_empirical_bounds(tmp_path, capsys):
    """``pnp certify WEIGHTS --json``: certified values, and an empirical lower bound below them."""
    import json

    from pnp.cli import main

    net = _trained_like(AveragedConfig(channels=4, hidden=4, depth=2, activation="relu"))
    weights, out = tmp_path / "tiny.safetensors", tmp_path / "out.json"
    save_denoiser(net, weights, metadata={"sigma": 0.1})
    rc = main(["certify", str(weights), "--sigma", "0.1", "--size", "16", "--steps", "20",
               "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    for key in ("lipschitz_bound", "alpha", "empirical_lipschitz"):
        assert key in report, key
    assert report["lipschitz_bound"] == pytest.approx(net.certificate.lipschitz_bound)
    assert 0.0 < report["empirical_lipschitz"] <= report["lipschitz_bound"] + 1e-9
    assert report["alpha"] == pytest.approx(net.certificate.alpha)
    assert report["empirical_checks_consistent"] is True


@pytest.mark.parametrize("noise_conditional", [False, True])
@pytest.mark.parametrize("integrator", ["heun", "rk4"])
def test_export_matches_network_for_every_integrator(integrator, noise_conditional):
    cfg = AveragedConfig(channels=4, hidden=4, depth=2, integrator=integrator, theta=0.5,
                         noise_conditional=noise_conditional)
    net = _trained_like(cfg)
    assert net.certificate.alpha == pytest.approx(0.5)
    exported = net.export()
    assert exported.certificate == net.certificate
    x = torch.rand(2, 1, 9, 11, dtype=torch.float64)
    outs = []
    with torch.no_grad():
        for s in (0.05, 0.3):
            ref = net(x, s)
            torch.testing.assert_close(exported(x, s), ref)
            assert ref.dtype == torch.float64
            outs.append(ref)
    if noise_conditional:  # the noise level really enters (so the comparison covers bias_sigma)
        assert not torch.allclose(outs[0], outs[1])
