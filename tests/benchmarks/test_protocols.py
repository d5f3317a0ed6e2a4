"""Protocols: the shipped ones are exactly the literature's; TOML round-trips; the rule; the
degradation equals scipy.ndimage.convolve(mode='wrap') + numpy.random.seed(0) noise."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from benchmarks.degrade import blur_wrap, degrade, load_clean
from benchmarks.protocols import (
    ParameterRule,
    RuleEntry,
    available_protocols,
    dump_protocol,
    load_protocol,
    parse_noise,
    protocol_from_dict,
)
from operators import gaussian_kernel, uniform_kernel


def _shared() -> Path | None:
    env = os.environ.get("PNP_SHARED_DATA")
    p = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return p if p.is_dir() else None


def test_levin10_is_the_literature_protocol():
    p = load_protocol("levin10")
    assert p.kernels == tuple(f"levin:{i}" for i in range(8)) + ("uniform:9", "gaussian:25:1.6")
    assert p.noise_levels == (2.55 / 255, 7.65 / 255, 12.75 / 255)
    assert p.boundary == "circular" and p.seed == 0 and p.quantize_blurred is False
    assert p.images == "set12"
    assert "clipped to [0, 1]" in p.psnr and "no border crop" in p.psnr


def test_gauss25_is_the_literature_protocol():
    p = load_protocol("gauss25")
    assert p.kernels == ("gaussian:25:1.6", "gaussian:25:2.0")
    assert p.noise_levels == (2.55 / 255,)
    assert p.boundary == "circular" and p.seed == 0


def test_shipped_protocols_listed_and_round_trip(tmp_path):
    assert {"levin10", "gauss25"} <= set(available_protocols())
    for name in ("levin10", "gauss25"):
        p = load_protocol(name)
        path = tmp_path / f"{name}.toml"
        dump_protocol(p, path)
        q = load_protocol(path)
        assert q == p and q.to_dict() == p.to_dict()


def test_rule_most_specific_entry_wins():
    rule = ParameterRule(entries=(
        RuleEntry("*", scale=1.0),
        RuleEntry("tv", scale=0.2, power=0.5),
        RuleEntry("tv", scale=0.3, power=0.5, solver="fbs", noise=0.01),
    ))
    s, g = rule.parameters("tv", solver="fbs", noise=0.01, opnorm=2.0)
    assert s == pytest.approx(0.3 * 0.01**0.5) and g == pytest.approx(0.25)
    s, _ = rule.parameters("tv", solver="hqs", noise=0.01, opnorm=1.0)
    assert s == pytest.approx(0.2 * 0.1)  # other solver: the generic tv entry
    s, _ = rule.parameters("tv", solver="fbs", noise=0.04, opnorm=1.0)
    assert s == pytest.approx(0.2 * 0.2)  # other noise: the generic power law
    s, _ = rule.parameters("my-net.safetensors", solver="fbs", noise=0.03, opnorm=1.0)
    assert s == pytest.approx(0.03)
    s, _ = rule.parameters("rk-averaged", solver="fbs", noise=0.0, opnorm=1.0)
    assert s == pytest.approx(rule.noise_floor)


def test_rule_and_protocol_errors():
    with pytest.raises(ValueError, match="catch-all"):
        ParameterRule(entries=(RuleEntry("tv", scale=1.0),))
    with pytest.raises(ValueError, match="scale"):
        RuleEntry("tv", scale=-1.0)
    d = load_protocol("levin10").to_dict()
    with pytest.raises(ValueError, match="unknown protocol keys"):
        protocol_from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="boundary"):
        protocol_from_dict({**d, "boundary": "reflect"})
    with pytest.raises(FileNotFoundError, match="levin10"):
        load_protocol("no-such-protocol")


def test_parse_noise():
    assert parse_noise("7.65/255") == 7.65 / 255
    assert parse_noise("0.03") == 0.03 and parse_noise(0.01) == 0.01
    for bad in ("x", "1/0", "-0.1", "2"):
        with pytest.raises(ValueError):
            parse_noise(bad)


def _reference(x: np.ndarray, k: np.ndarray, nu: float) -> np.ndarray:
    """The published recipe, literally."""
    b = ndimage.convolve(x, np.expand_dims(k, axis=2), mode="wrap")
    np.random.seed(seed=0)
    return b + np.random.normal(0, nu, b.shape)


@pytest.mark.parametrize("shape", [(33, 40, 1), (32, 27, 3)])
@pytest.mark.parametrize("kernel", [gaussian_kernel(25, 1.6), uniform_kernel(9), gaussian_kernel(6, 1.0)])
def test_degradation_matches_scipy_and_seeded_numpy(shape, kernel):
    rng = np.random.default_rng(1)
    x = np.round(rng.random(shape) * 255) / 255
    k = kernel.numpy()
    if k.shape[0] > min(shape[:2]):
        pytest.skip("kernel larger than image")
    deg = degrade(x, k, 7.65 / 255, seed=0)
    ref = _reference(x, k, 7.65 / 255)
    np.testing.assert_allclose(deg.observed, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(deg.blurred, ndimage.convolve(x, k[:, :, None], mode="wrap"), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(deg.clean, x)


def test_degradation_same_noise_for_every_kernel():
    x = np.random.default_rng(2).random((30, 30, 1))
    a = degrade(x, uniform_kernel(3).numpy(), 0.01)
    b = degrade(x, gaussian_kernel(5, 1.0).numpy(), 0.01)
    np.testing.assert_allclose(a.observed - a.blurred, b.observed - b.blurred, atol=1e-15)


def test_quantized_degradation_is_the_uint8_recipe():
    rng = np.random.default_rng(3)
    u8 = (rng.random((24, 28, 3)) * 255).astype(np.uint8)
    k = gaussian_kernel(7, 1.2).numpy()
    deg = degrade(u8 / 255.0, k, 0.01, quantize=True)
    b = ndimage.convolve(u8, np.expand_dims(k, axis=2), mode="wrap") / 255.0
    np.random.seed(seed=0)
    np.testing.assert_allclose(deg.observed, b + np.random.normal(0, 0.01, b.shape), atol=1e-12)
    with pytest.raises(ValueError, match="8-bit"):
        degrade(np.full((24, 28, 1), 0.5001), k, 0.01, quantize=True)


def test_degradation_levin_kernels_on_set12():
    shared = _shared()
    if shared is None or not (shared / "kernels" / "levin09.npz").is_file() or not (shared / "set12").is_dir():
        pytest.skip("../shared/data (levin09.npz, set12) not found; set PNP_SHARED_DATA to run this test")
    x, bits = load_clean(shared / "set12" / "01.png")
    assert bits == 8 and x.shape == (256, 256, 1)
    with np.load(shared / "kernels" / "levin09.npz") as data:
        for key in ("k0", "k3"):
            k = np.asarray(data[key], dtype=np.float64)
            np.testing.assert_allclose(degrade(x, k, 2.55 / 255).observed, _reference(x, k, 2.55 / 255), atol=1e-12)


def test_blur_wrap_even_kernel_matches_scipy():
    x = np.random.default_rng(4).random((20, 22, 1))
    k = np.random.default_rng(5).random((4, 6))
    k /= k.sum()
    np.testing.assert_allclose(blur_wrap(x, k), ndimage.convolve(x, k[:, :, None], mode="wrap"), atol=1e-12)
