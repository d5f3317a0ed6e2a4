"""Kernels: Gaussian formula, box, seeded motion, file and named loading, validation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from operators import (
    KernelWarning,
    available_kernels,
    gaussian_kernel,
    load_kernel,
    motion_kernel,
    uniform_kernel,
    validate_kernel,
)


def _gauss_formula(size: int, std: float) -> np.ndarray:
    r = (size - 1) / 2
    u = np.arange(size) - r
    g = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * std**2))
    return g / g.sum()


@pytest.mark.parametrize(("size", "std"), [(25, 1.6), (9, 2.0), (8, 1.0), (1, 0.5)])
def test_gaussian_matches_formula(size: int, std: float) -> None:
    g = gaussian_kernel(size, std)
    assert g.dtype == torch.float64 and g.shape == (size, size)
    np.testing.assert_allclose(g.numpy(), _gauss_formula(size, std), rtol=0, atol=1e-15)
    assert float(g.sum()) == pytest.approx(1.0, abs=1e-14)
    assert torch.equal(g, g.T) and torch.equal(g, g.flip(0))


def test_gaussian_25_16_known_values() -> None:
    g = gaussian_kernel(25, 1.6).numpy()
    assert g.argmax() == 12 * 25 + 12
    # fspecial zeroes entries below eps * max: the corners (offset 12, 12) are 0
    assert g[0, 0] == 0.0 and g[12, 0] > 0.0
    # centre value: 1 / sum over the grid of exp(-(u^2 + v^2) / (2 * 1.6^2))
    u = np.arange(-12, 13)
    s = np.exp(-(u**2) / (2 * 1.6**2)).sum()
    assert g[12, 12] == pytest.approx(1.0 / s**2, rel=1e-12)


def test_uniform() -> None:
    k = uniform_kernel(9)
    assert k.shape == (9, 9) and torch.allclose(k, torch.full((9, 9), 1 / 81, dtype=torch.float64))


@pytest.mark.parametrize("size", [2, 7, 16, 25])
def test_motion_is_valid_and_reproducible(size: int) -> None:
    k = motion_kernel(size, seed=3)
    assert k.shape == (size, size) and k.dtype == torch.float64
    assert float(k.min()) >= 0 and float(k.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(k, motion_kernel(size, seed=3))
    if size >= 7:
        assert not torch.equal(k, motion_kernel(size, seed=4))
        assert int((k > 0).sum()) > size // 2  # a trajectory, not a point
    torch.testing.assert_close(validate_kernel(k), k)


def test_motion_length() -> None:
    short = motion_kernel(21, seed=0, length=3)
    long = motion_kernel(21, seed=0, length=20)
    assert int((short > 0).sum()) < int((long > 0).sum())


def test_generator_errors() -> None:
    with pytest.raises(ValueError, match="size must be a positive integer"):
        gaussian_kernel(0, 1.0)
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        gaussian_kernel(5, -1.0)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        uniform_kernel(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        motion_kernel(9, seed=-1)
    with pytest.raises(ValueError, match="length must be finite"):
        motion_kernel(9, seed=0, length=0)


# --------------------------------------------------------------------------- validation
def test_validate_rules() -> None:
    with pytest.raises(ValueError, match="NaN or Inf"):
        validate_kernel(np.array([[0.5, np.inf]]))
    with pytest.raises(ValueError, match="negative mass"):
        validate_kernel(np.array([[1.2, -0.2]]))
    with pytest.raises(ValueError, match="all zero"):
        validate_kernel(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="must be 2-D"):
        validate_kernel(np.ones((1, 3, 3)) / 9)
    with pytest.raises(ValueError, match="larger than the image of size 4x8"):
        validate_kernel(np.ones((5, 5)) / 25, image_shape=(1, 3, 4, 8))
    with pytest.raises(ValueError, match="not 1"):
        validate_kernel(np.ones((2, 2)), normalize=False)
    with pytest.raises(TypeError, match="must be real"):
        validate_kernel(np.ones((2, 2), dtype=complex))
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        validate_kernel([[1.0]])  # type: ignore[arg-type]


def test_validate_normalises_with_warning() -> None:
    with pytest.warns(KernelWarning, match="sums to 4"):
        k = validate_kernel(np.ones((2, 2)))
    assert torch.allclose(k, torch.full((2, 2), 0.25, dtype=torch.float64))
    # within 1e-6 the kernel is kept bit-identical, without warning
    near = np.full((2, 2), 0.25) * (1 + 5e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = validate_kernel(near)
    assert np.array_equal(out.numpy(), near)


def test_validate_does_not_mutate_input() -> None:
    t = torch.ones(2, 2)
    with pytest.warns(KernelWarning):
        validate_kernel(t)
    assert torch.equal(t, torch.ones(2, 2))


# --------------------------------------------------------------------------- loading
def test_named_parametric_specs() -> None:
    torch.testing.assert_close(load_kernel("gaussian:25:1.6"), gaussian_kernel(25, 1.6))
    torch.testing.assert_close(load_kernel("uniform:9"), uniform_kernel(9))
    torch.testing.assert_close(load_kernel("motion:17:5"), motion_kernel(17, seed=5))
    names = available_kernels()
    assert {"gaussian:SIZE:STD", "uniform:SIZE", "motion:SIZE:SEED"} <= set(names)


def test_bad_specs() -> None:
    with pytest.raises(ValueError, match="gaussian:SIZE:STD"):
        load_kernel("gaussian:25")
    with pytest.raises(ValueError, match="SIZE must be an integer"):
        load_kernel("uniform:x")
    with pytest.raises(ValueError, match="unknown kernel spec"):
        load_kernel("blurry")
    with pytest.raises(ValueError, match="index must be in 0..7"):
        load_kernel("levin:8")
    with pytest.raises(FileNotFoundError, match="kernel file not found"):
        load_kernel("/nonexistent/k.npy")
    with pytest.raises(TypeError, match="spec must be a str"):
        load_kernel(3)  # type: ignore[arg-type]


def test_load_files(tmp_path: Path) -> None:
    k = motion_kernel(11, seed=2).numpy()
    np.save(tmp_path / "k.npy", k)
    np.savez(tmp_path / "one.npz", k)
    np.savez(tmp_path / "two.npz", a=k, b=uniform_kernel(3).numpy())
    (tmp_path / "bad.txt").write_text("1")
    assert np.array_equal(load_kernel(tmp_path / "k.npy").numpy(), k)
    assert np.array_equal(load_kernel(str(tmp_path / "one.npz")).numpy(), k)
    assert np.array_equal(load_kernel(f"{tmp_path / 'two.npz'}:b").numpy(), uniform_kernel(3).numpy())
    with pytest.raises(ValueError, match="holds 2 arrays"):
        load_kernel(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="has no array 'c'"):
        load_kernel(f"{tmp_path / 'two.npz'}:c")
    with pytest.raises(ValueError, match="unsupported suffix"):
        load_kernel(tmp_path / "bad.txt")


def test_load_image(tmp_path: Path) -> None:
    from skimage import io as skio

    img = np.zeros((7, 7), dtype=np.uint8)
    img[3, 1:6] = 200
    img[2, 3] = 100
    skio.imsave(str(tmp_path / "k.png"), img, check_contrast=False)
    skio.imsave(str(tmp_path / "k.tif"), img.astype(np.uint16) * 3, check_contrast=False)
    for name in ("k.png", "k.tif"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", KernelWarning)
            k = load_kernel(tmp_path / name)
        np.testing.assert_allclose(k.numpy(), img / img.sum(), atol=1e-15)


def test_levin_and_kernels12(shared_data: Path) -> None:
    sizes = [19, 17, 15, 27, 13, 21, 23, 23]
    with np.load(shared_data / "kernels" / "levin09.npz") as d:
        raw = [d[f"k{i}"] for i in range(8)]
    for i, s in enumerate(sizes):
        k = load_kernel(f"levin:{i}")
        assert k.shape == (s, s)
        assert np.array_equal(k.numpy(), raw[i])  # kept as published
    assert load_kernel("kernels12:11").shape == (25, 25)
    names = available_kernels()
    assert "levin:7" in names and "kernels12:0" in names


def test_missing_shared_data_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PNP_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"levin09.npz.*Looked in: .*nowhere"):
        load_kernel("levin:0")
    assert "levin:0" not in available_kernels()


def test_env_var_location(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PNP_SHARED_DATA", str(shared_data))
    monkeypatch.chdir("/")
    assert load_kernel("levin:4").shape == (13, 13)
