"""FFTBlur: direct convolution, delta response, adjoint, A^T A, prox optimality, norms, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from operators import FFTBlur, NonFiniteInputError, check_adjoint, estimate_opnorm

SIZES = [(16, 16), (17, 15), (15, 18)]
KSIZES = [(3, 3), (4, 4), (5, 2), (6, 7)]


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("kh_kw", KSIZES)
def test_matches_scipy_convolve_wrap(hw: tuple[int, int], kh_kw: tuple[int, int]) -> None:
    k = _rand(*kh_kw, seed=1)
    x = _rand(2, 3, *hw, seed=2)
    y = FFTBlur(k).A(x)
    for b in range(2):
        for c in range(3):
            ref = ndi.convolve(x[b, c].numpy(), k.numpy(), mode="wrap")
            np.testing.assert_allclose(y[b, c].numpy(), ref, rtol=0, atol=1e-13)


def test_numpy_kernel_accepted() -> None:
    k = np.random.default_rng(0).random((4, 3))
    x = _rand(1, 1, 9, 9)
    ref = ndi.convolve(x[0, 0].numpy(), k, mode="wrap")
    np.testing.assert_allclose(FFTBlur(k).A(x)[0, 0].numpy(), ref, atol=1e-13)


@pytest.mark.parametrize("kh_kw", KSIZES)
def test_delta_returns_centred_wrapped_kernel(kh_kw: tuple[int, int]) -> None:
    h, w = kh_kw
    k = _rand(h, w, seed=3)
    H, W = 12, 11
    x = torch.zeros(1, 1, H, W, dtype=torch.float64)
    x[0, 0, 0, 1] = 1.0  # near a corner: the kernel must wrap around
    y = FFTBlur(k).A(x)[0, 0]
    expected = torch.zeros(H, W, dtype=torch.float64)
    for p in range(h):
        for q in range(w):
            expected[(0 + p - h // 2) % H, (1 + q - w // 2) % W] += k[p, q]
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-14)


def test_corner_centre_is_causal() -> None:
    k = _rand(3, 4, seed=4)
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[0, 0, 2, 2] = 1.0
    y = FFTBlur(k, center="corner").A(x)[0, 0]
    torch.testing.assert_close(y[2:5, 2:6], k, rtol=0, atol=1e-14)


@pytest.mark.parametrize("hw", [(16, 16), (17, 15)])
@pytest.mark.parametrize("kh_kw", [(3, 3), (4, 4), (5, 2)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("per_image", [False, True])
def test_adjoint_float64(hw, kh_kw, channels, batch, per_image) -> None:
    kshape = (batch, 1, *kh_kw) if per_image else kh_kw
    k = _rand(*kshape, seed=5) - 0.3  # signed kernel: a harder test than a PSF
    op = FFTBlur(k)
    res = check_adjoint(op, (batch, channels, *hw), dtype=torch.float64, seed=1, trials=2)
    assert res.passed and res.relative_error < 1e-10, res


def test_adjoint_per_channel_kernels() -> None:
    k = _rand(2, 3, 4, 5, seed=6)
    res = check_adjoint(FFTBlur(k), (2, 3, 13, 14))
    assert res.relative_error < 1e-10


def test_per_image_kernels_apply_to_their_image() -> None:
    k = _rand(2, 1, 3, 3, seed=7)
    x = _rand(2, 3, 10, 10, seed=8)
    y = FFTBlur(k).A(x)
    for b in range(2):
        torch.testing.assert_close(y[b : b + 1], FFTBlur(k[b, 0]).A(x[b : b + 1]))


@pytest.mark.parametrize("kh_kw", [(3, 3), (4, 5), (6, 2)])
def test_adjoint_is_circular_correlation(kh_kw: tuple[int, int]) -> None:
    # (A^T y)[i, j] = sum_{p, q} k[p, q] y[(i + p - h//2) mod H, (j + q - w//2) mod W]
    h, w = kh_kw
    k = _rand(h, w, seed=9).numpy()
    y = _rand(1, 1, 11, 13, seed=10)
    adj = FFTBlur(k).A_adjoint(y)[0, 0].numpy()
    ref = np.zeros((11, 13))
    for p in range(h):
        for q in range(w):
            ref += k[p, q] * np.roll(y[0, 0].numpy(), shift=(-(p - h // 2), -(q - w // 2)), axis=(0, 1))
    np.testing.assert_allclose(adj, ref, rtol=0, atol=1e-13)


def test_adjoint_A_equals_composition() -> None:
    op = FFTBlur(_rand(4, 6, seed=11))
    x = _rand(2, 3, 16, 19, seed=12)
    torch.testing.assert_close(op.A_adjoint_A(x), op.A_adjoint(op.A(x)), rtol=0, atol=1e-13)
    torch.testing.assert_close(op.A_A_adjoint(x), op.A(op.A_adjoint(x)), rtol=0, atol=1e-13)


@pytest.mark.parametrize("gamma", [0.05, 1.0, 30.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prox_l2_optimality(gamma: float, dtype: torch.dtype) -> None:
    op = FFTBlur(_rand(5, 4, seed=13))
    z = _rand(2, 3, 16, 15, seed=14, dtype=dtype)
    y = _rand(2, 3, 16, 15, seed=15, dtype=dtype)
    x = op.prox_l2(z, y, gamma)
    assert x.dtype == dtype and x.shape == z.shape
    grad = op.A_adjoint(op.A(x) - y) + (x - z) / gamma
    tol = 1e-11 if dtype == torch.float64 else 1e-4
    scale = float(op.A_adjoint(y).abs().max() + z.abs().max() / gamma)
    assert float(grad.abs().max()) < tol * scale


def test_prox_l2_per_image_gamma_and_none_z() -> None:
    op = FFTBlur(_rand(3, 3, seed=16))
    z = _rand(3, 1, 12, 12, seed=17)
    y = _rand(3, 1, 12, 12, seed=18)
    gam = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    x = op.prox_l2(z, y, gam)
    for b in range(3):
        torch.testing.assert_close(x[b : b + 1], op.prox_l2(z[b : b + 1], y[b : b + 1], float(gam[b])))
    torch.testing.assert_close(op.prox_l2(None, y, 0.5), op.prox_l2(torch.zeros_like(y), y, 0.5))
    torch.testing.assert_close(op.prox_l2(0.0, y, torch.tensor(0.5)), op.prox_l2(None, y, 0.5))
    # deepinv's iterative-solver options are accepted and ignored
    torch.testing.assert_close(op.prox_l2(z, y, 0.5, solver="CG", max_iter=3), op.prox_l2(z, y, 0.5))


@pytest.mark.parametrize("hw", [(16, 16), (17, 13)])
@pytest.mark.parametrize("kh_kw", [(3, 3), (4, 5)])
def test_opnorm_equals_spectrum_max(hw, kh_kw) -> None:
    k = _rand(*kh_kw, seed=19) - 0.4
    op = FFTBlur(k)
    padded = np.zeros(hw)
    padded[: kh_kw[0], : kh_kw[1]] = k.numpy()
    expected = np.abs(np.fft.fft2(padded)).max()  # the shift is a phase: |.| unchanged
    assert op.opnorm(image_size=hw) == pytest.approx(expected, rel=1e-13)
    est = estimate_opnorm(op, (1, 1, *hw), iters=200, seed=0)
    assert est <= op.opnorm(image_size=hw) * (1 + 1e-12)
    assert est >= 0.9 * op.opnorm(image_size=hw)
    assert op.opnorm_sup() == pytest.approx(float(k.abs().sum()))
    assert op.opnorm_sup() >= op.opnorm(image_size=hw)


def test_opnorm_default_size() -> None:
    k = _rand(3, 3, seed=20)  # non-negative: norm = sum k on every grid
    assert FFTBlur(k).opnorm() == pytest.approx(float(k.sum()))
    signed = k - 0.5
    op = FFTBlur(signed, image_size=(8, 9))
    assert op.opnorm() == op.opnorm(image_size=(8, 9))


def test_opnorm_is_norm_of_operator() -> None:
    # ||A x|| <= opnorm ||x|| for random x, and equality (up to FP) at the top Fourier mode
    op = FFTBlur(_rand(4, 4, seed=21) - 0.3)
    x = _rand(3, 1, 16, 16, seed=22) - 0.5
    L = op.opnorm(image_size=(16, 16))
    assert float(op.A(x).flatten(1).norm(dim=1).max()) <= L * float(x.flatten(1).norm(dim=1).max()) + 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_preserved_and_close(dtype: torch.dtype) -> None:
    k = _rand(5, 5, seed=23)
    x64 = _rand(2, 3, 20, 20, seed=24)
    op = FFTBlur(k)
    y = op.A(x64.to(dtype))
    assert y.dtype == dtype
    assert op.A_adjoint(y).dtype == dtype and op.A_adjoint_A(y).dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    ref = op.A(x64)
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=tol * float(ref.abs().max()))
    assert check_adjoint(op, (2, 3, 20, 20), dtype=dtype).passed


def test_spectrum_cache_bounded_and_reused() -> None:
    op = FFTBlur(_rand(3, 3, seed=25))
    s1 = op.spectrum((16, 16))
    assert op.spectrum((16, 16)) is s1
    for n in range(17, 25):
        op.spectrum((n, n))
    assert len(op._spectra) <= 4
    op.update_parameters(kernel=_rand(3, 3, seed=26))
    assert len(op._spectra) == 0


def test_input_not_mutated() -> None:
    op = FFTBlur(_rand(3, 3, seed=27))
    x = _rand(1, 1, 9, 9, seed=28)
    x0 = x.clone()
    op.A(x), op.A_adjoint(x), op.prox_l2(x, x, 1.0)
    assert torch.equal(x, x0)


def test_forward_applies_noise_model() -> None:
    import deepinv as dinv

    k = _rand(3, 3, seed=29)
    x = _rand(1, 1, 10, 10, seed=30)
    clean = FFTBlur(k)
    torch.testing.assert_close(clean(x), clean.A(x))
    noisy = FFTBlur(k, noise_model=dinv.physics.GaussianNoise(sigma=0.1))
    r = noisy(x) - clean.A(x)
    assert 0.05 < float(r.std()) < 0.15


# --------------------------------------------------------------------------- bad inputs
def test_bad_boundary_and_center() -> None:
    k = torch.ones(3, 3) / 9
    with pytest.raises(ValueError, match="boundary='symmetric'.*not supported"):
        FFTBlur(k, boundary="symmetric")
    with pytest.raises(ValueError, match="boundary='zeros'"):
        FFTBlur(k, boundary="zeros")
    with pytest.raises(ValueError, match="center"):
        FFTBlur(k, center="top")


def test_bad_kernels() -> None:
    with pytest.raises(ValueError, match="kernel must have shape"):
        FFTBlur(torch.ones(3))
    with pytest.raises(ValueError, match="kernel holds NaN"):
        FFTBlur(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(TypeError, match="kernel must be real"):
        FFTBlur(torch.ones(2, 2, dtype=torch.complex64))
    with pytest.raises(TypeError, match="kernel must be a torch.Tensor"):
        FFTBlur([[1.0]])


def test_bad_x() -> None:
    op = FFTBlur(torch.ones(5, 4, dtype=torch.float64) / 20)
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, H, W\]"):
        op.A(torch.rand(8, 8))
    with pytest.raises(ValueError, match="kernel of size 5x4 is larger than the image of size 4x8"):
        op.A(torch.rand(1, 1, 4, 8))
    with pytest.raises(ValueError, match="kernel of size 5x4 is larger than the image of size 8x3"):
        op.A_adjoint(torch.rand(1, 1, 8, 3))
    with pytest.raises(NonFiniteInputError, match="x holds NaN or Inf"):
        op.A(torch.full((1, 1, 8, 8), float("inf")))
    with pytest.raises(ValueError, match="y holds NaN or Inf"):
        op.A_adjoint(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(TypeError, match="x must be real, got complex"):
        op.A(torch.ones(1, 1, 8, 8, dtype=torch.complex128))
    with pytest.raises(TypeError, match="floating-point"):
        op.A(torch.ones(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        op.A(np.ones((1, 1, 8, 8)))
    with pytest.raises(TypeError, match="unexpected keyword"):
        op.A(torch.rand(1, 1, 8, 8), scale=2)


def test_check_finite_can_be_disabled() -> None:
    op = FFTBlur(torch.ones(3, 3) / 9, check_finite=False)
    assert torch.isnan(op.A(torch.full((1, 1, 8, 8), float("nan")))).all()


def test_batch_mismatch_per_image_kernels() -> None:
    op = FFTBlur(torch.rand(3, 1, 3, 3))
    with pytest.raises(ValueError, match="3 per-image kernels but x has batch size 2"):
        op.A(torch.rand(2, 1, 8, 8))
    op_c = FFTBlur(torch.rand(1, 2, 3, 3))
    with pytest.raises(ValueError, match="2 per-channel kernels but x has 3 channels"):
        op_c.A(torch.rand(1, 3, 8, 8))


def test_bad_gamma() -> None:
    op = FFTBlur(torch.ones(3, 3, dtype=torch.float64) / 9)
    y = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="gamma must be finite and > 0"):
            op.prox_l2(y, y, bad)
    with pytest.raises(ValueError, match="gamma must be finite and > 0"):
        op.prox_l2(y, y, torch.tensor([1.0, -2.0]))
    with pytest.raises(ValueError, match="gamma has 3 entries but the batch has 2"):
        op.prox_l2(y, y, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="gamma must be a float or a tensor"):
        op.prox_l2(y, y, "1")
    with pytest.raises(ValueError, match="z has shape"):
        op.prox_l2(y[:, :, :7], y, 1.0)


def test_bad_opnorm_size() -> None:
    op = FFTBlur(torch.ones(5, 5) / 25)
    with pytest.raises(ValueError, match="larger than the image"):
        op.opnorm(image_size=(4, 4))
    with pytest.raises(ValueError, match="image_size"):
        FFTBlur(torch.ones(3, 3) / 9, image_size=(8,))


# --------------------------------------------------------------------------- devices
def test_module_to_moves_kernel_and_clears_cache() -> None:
    op = FFTBlur(torch.ones(3, 3) / 9)
    op.spectrum((8, 8))
    op.to(torch.float32)
    assert len(op._spectra) == 0
    x = torch.rand(1, 1, 8, 8)
    assert op.A(x).dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    dev = torch.device("cuda")
    k = _rand(2, 1, 5, 4, seed=31)
    x = _rand(2, 3, 32, 33, seed=32)
    op = FFTBlur(k)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        xd = x.to(dev, dtype)
        y = op.A(xd)
        assert y.device.type == "cuda" and y.dtype == dtype
        torch.testing.assert_close(y.cpu().double(), op.A(x), rtol=0, atol=tol)
        p = op.prox_l2(xd, y, torch.tensor([0.5, 2.0], device=dev))
        torch.testing.assert_close(p.cpu().double(), op.prox_l2(x, op.A(x), torch.tensor([0.5, 2.0])),
                                   rtol=0, atol=tol * 10)
    op_cuda = FFTBlur(k.to(dev))
    res = check_adjoint(op_cuda, (2, 3, 32, 33))
    assert res.passed and res.relative_error < 1e-10
    assert op_cuda.opnorm(image_size=(32, 33)) == pytest.approx(op.opnorm(image_size=(32, 33)), rel=1e-12)


def test_finite_check_has_no_false_positive_on_overflowing_sum() -> None:
    op = FFTBlur(torch.ones(1, 1))
    x = torch.full((1, 1, 4, 4), 3e38, dtype=torch.float32)  # finite entries, sum overflows
    assert torch.isinf(x.sum())
    op.A(x)  # no NonFiniteInputError (the float32 FFT itself overflows here, as any would)


def test_cache_follows_in_place_kernel_changes() -> None:
    k1, k2 = _rand(3, 3, seed=40), _rand(3, 3, seed=41)
    op = FFTBlur(k1)
    x = _rand(1, 1, 9, 9, seed=42)
    op.A(x)  # fills the cache
    op.load_state_dict(FFTBlur(k2).state_dict())
    torch.testing.assert_close(op.A(x), FFTBlur(k2).A(x))
    with torch.no_grad():
        op.kernel.copy_(k1[None, None])
    torch.testing.assert_close(op.A(x), FFTBlur(k1).A(x))
