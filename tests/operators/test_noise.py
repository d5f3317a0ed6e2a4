"""Gaussian noise: seeds, generators, per-image sigma, the numpy literature protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from operators import add_gaussian_noise, numpy_gaussian_noise


def test_numpy_protocol_bit_identical() -> None:
    state = np.random.get_state()
    try:
        np.random.seed(0)
        ref = np.random.normal(0, 2.55 / 255, (256, 256))
    finally:
        np.random.set_state(state)
    before = np.random.get_state()[1].copy()
    out = numpy_gaussian_noise((256, 256), 2.55 / 255, seed=0)
    assert np.array_equal(out, ref)
    assert np.array_equal(np.random.get_state()[1], before)  # global state untouched
    assert not np.array_equal(out, numpy_gaussian_noise((256, 256), 2.55 / 255, seed=1))


def test_numpy_noise_errors() -> None:
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        numpy_gaussian_noise((2, 2), -0.1, seed=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        numpy_gaussian_noise((2, 2), 0.1, seed=0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_seed_reproducible(dtype: torch.dtype) -> None:
    x = torch.zeros(2, 3, 64, 64, dtype=dtype)
    a = add_gaussian_noise(x, 0.1, seed=7)
    b = add_gaussian_noise(x, 0.1, seed=7)
    assert torch.equal(a, b) and a.dtype == dtype
    assert not torch.equal(a, add_gaussian_noise(x, 0.1, seed=8))
    assert float(a.std()) == pytest.approx(0.1, rel=0.05)
    assert torch.equal(x, torch.zeros_like(x))  # input not mutated


def test_generator_and_per_image_sigma() -> None:
    x = torch.zeros(3, 1, 64, 64, dtype=torch.float64)
    g1 = torch.Generator().manual_seed(3)
    g2 = torch.Generator().manual_seed(3)
    sig = torch.tensor([0.0, 0.05, 0.2])
    a = add_gaussian_noise(x, sig, generator=g1)
    assert torch.equal(a, add_gaussian_noise(x, sig, generator=g2))
    assert float(a[0].abs().max()) == 0.0
    assert float(a[1].std()) == pytest.approx(0.05, rel=0.1)
    assert float(a[2].std()) == pytest.approx(0.2, rel=0.1)
    # seed = fresh CPU generator with that seed
    g3 = torch.Generator().manual_seed(3)
    assert torch.equal(add_gaussian_noise(x, sig, seed=3), add_gaussian_noise(x, sig, generator=g3))


def test_noise_errors() -> None:
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        add_gaussian_noise(x, -0.01)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        add_gaussian_noise(x, torch.tensor([0.1, -0.1]))
    with pytest.raises(ValueError, match="sigma has 3 entries but the batch has 2"):
        add_gaussian_noise(x, torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match="either generator or seed"):
        add_gaussian_noise(x, 0.1, generator=torch.Generator(), seed=1)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        add_gaussian_noise(torch.zeros(1, 1, 2, 2, dtype=torch.int32), 0.1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_seed_same_noise_on_cuda() -> None:
    x = torch.zeros(1, 1, 16, 16)
    a = add_gaussian_noise(x, 0.1, seed=5)
    b = add_gaussian_noise(x.cuda(), 0.1, seed=5)
    assert b.device.type == "cuda"
    torch.testing.assert_close(a, b.cpu())
