"""FFTBlur with non-periodic boundaries ("valid", "reflect", "replicate"): direct convolution,
alignment, exact adjoint, certified norm bound against the materialised operator, the CG prox's
optimality condition, deepinv's valid blur, and errors that name the argument."""

from __future__ import annotations

import deepinv as dinv
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as ss
import torch

from operators import (
    BOUNDARIES,
    FFTBlur,
    InexactProxWarning,
    check_adjoint,
    estimate_opnorm,
    gaussian_kernel,
    motion_kernel,
)

NONPERIODIC = ("valid", "reflect", "replicate")
SIZES = [(16, 16), (17, 15)]
KSIZES = [(3, 3), (4, 4), (5, 2), (6, 7)]


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


def _materialise(op: FFTBlur, x_hw: tuple[int, int]) -> torch.Tensor:
    """The matrix of ``op`` on one-channel ``x_hw`` images, column by column."""
    n = x_hw[0] * x_hw[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, *x_hw)
    return op.A(basis).reshape(n, -1).T


def test_boundaries_listed() -> None:
    assert BOUNDARIES == ("circular", "valid", "reflect", "replicate")


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("kh_kw", KSIZES)
@pytest.mark.parametrize("center", ["middle", "corner"])
def test_valid_is_linear_convolution(hw, kh_kw, center) -> None:
    k = _rand(*kh_kw, seed=1)
    x = _rand(2, 3, *hw, seed=2)
    op = FFTBlur(k, boundary="valid", center=center)
    y = op.A(x)
    assert y.shape == (2, 3, hw[0] - kh_kw[0] + 1, hw[1] - kh_kw[1] + 1)
    for b in range(2):
        for c in range(3):
            ref = ss.convolve2d(x[b, c].numpy(), k.numpy(), mode="valid")
            np.testing.assert_allclose(y[b, c].numpy(), ref, rtol=0, atol=1e-13)
    assert op.x_shape(tuple(y.shape)) == tuple(x.shape)


@pytest.mark.parametrize("kh_kw", KSIZES)
@pytest.mark.parametrize("center", ["middle", "corner"])
def test_valid_observed_region_is_aligned_with_y(kh_kw, center) -> None:
    # a delta kernel at the origin makes A the pure crop: y must equal observed_region(x)
    op0 = FFTBlur(torch.ones(*kh_kw), center=center)
    k = torch.zeros(*kh_kw, dtype=torch.float64)
    k[op0.origin] = 1.0
    op = FFTBlur(k, boundary="valid", center=center)
    x = _rand(1, 2, 15, 14, seed=3)
    torch.testing.assert_close(op.A(x), op.observed_region(x), rtol=0, atol=1e-14)
    # and the valid blur equals the circular blur of x away from the border
    kr = _rand(*kh_kw, seed=4)
    v, c = FFTBlur(kr, boundary="valid", center=center), FFTBlur(kr, center=center)
    torch.testing.assert_close(v.A(x), v.observed_region(c.A(x)), rtol=0, atol=1e-13)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("kh_kw", KSIZES)
@pytest.mark.parametrize(("boundary", "mode"), [("reflect", "reflect"), ("replicate", "nearest")])
def test_reflect_replicate_match_scipy(hw, kh_kw, boundary, mode) -> None:
    k = _rand(*kh_kw, seed=5)
    x = _rand(1, 2, *hw, seed=6)
    y = FFTBlur(k, boundary=boundary).A(x)
    for c in range(2):
        ref = ndi.convolve(x[0, c].numpy(), k.numpy(), mode=mode)
        np.testing.assert_allclose(y[0, c].numpy(), ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("boundary", NONPERIODIC)
@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("kh_kw", KSIZES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_adjoint_float64(boundary, hw, kh_kw, channels, batch) -> None:
    k = _rand(*kh_kw, seed=7) - 0.3  # signed kernel
    op = FFTBlur(k, boundary=boundary)
    res = check_adjoint(op, (batch, channels, *hw), dtype=torch.float64, seed=1, trials=2)
    assert res.passed and res.relative_error < 1e-12, res
    assert res.opnorm_source == "opnorm"


@pytest.mark.parametrize("boundary", NONPERIODIC)
def test_adjoint_per_image_and_per_channel_kernels(boundary) -> None:
    k = _rand(2, 3, 4, 5, seed=8)
    assert check_adjoint(FFTBlur(k, boundary=boundary), (2, 3, 13, 14)).relative_error < 1e-12


@pytest.mark.parametrize("boundary", NONPERIODIC)
@pytest.mark.parametrize("hw", [(10, 9), (9, 12)])
@pytest.mark.parametrize("kh_kw", [(3, 3), (4, 3), (2, 5)])
@pytest.mark.parametrize("signed", [False, True])
def test_opnorm_is_an_upper_bound_of_the_materialised_norm(boundary, hw, kh_kw, signed) -> None:
    k = _rand(*kh_kw, seed=9)
    k = k - 0.4 if signed else k / k.sum()
    op = FFTBlur(k, boundary=boundary)
    matrix = _materialise(op, hw)
    exact = float(torch.linalg.matrix_norm(matrix, ord=2))
    bound = op.opnorm(image_size=hw)
    power = estimate_opnorm(op, (1, 1, *hw), iters=500)
    assert power <= exact * (1 + 1e-9)
    assert exact <= bound * (1 + 1e-12), (exact, bound)
    assert op.opnorm_kind == "upper bound"
    if boundary == "valid":
        # ||C K|| <= ||K|| = max|K(omega)| on the x grid, = sum k for a PSF
        assert bound == pytest.approx(FFTBlur(k).opnorm(image_size=hw), rel=1e-12)
        if not signed:
            assert bound == pytest.approx(1.0, rel=1e-12) and exact > 0.75
    if not signed and boundary != "valid":
        # Collatz-Wielandt on the non-negative A: the bound meets the norm
        assert bound == pytest.approx(exact, rel=1e-3)


def test_reflect_bound_is_exact_for_symmetric_psf() -> None:
    k = gaussian_kernel(5, 1.0)
    op = FFTBlur(k, boundary="reflect")
    exact = float(torch.linalg.matrix_norm(_materialise(op, (11, 10)), ord=2))
    assert op.opnorm(image_size=(11, 10)) == pytest.approx(1.0, abs=1e-9)
    assert exact == pytest.approx(1.0, abs=1e-10)


def test_circular_opnorm_still_exact() -> None:
    k = _rand(4, 3, seed=10) - 0.2
    op = FFTBlur(k)
    exact = float(torch.linalg.matrix_norm(_materialise(op, (9, 8)), ord=2))
    assert op.opnorm(image_size=(9, 8)) == pytest.approx(exact, rel=1e-10)
    assert op.opnorm_kind == "exact" and op.prox_is_exact


@pytest.mark.parametrize("boundary", NONPERIODIC)
@pytest.mark.parametrize("gamma", [0.05, 1.0, 30.0])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-8), (torch.float32, 1e-3)])
def test_prox_l2_optimality(boundary, gamma, dtype, tol) -> None:
    k = motion_kernel(7, seed=3).to(dtype)
    op = FFTBlur(k, boundary=boundary)
    y = _rand(2, 3, 19, 18, seed=11, dtype=dtype)
    z = _rand(*op.x_shape(tuple(y.shape)), seed=12, dtype=dtype)
    x = op.prox_l2(z, y, gamma)
    assert x.shape == z.shape and x.dtype == dtype
    # first-order optimality of 1/2||Ax - y||^2 + 1/(2 gamma)||x - z||^2
    grad = op.A_adjoint(op.A(x) - y) + (x - z) / gamma
    scale = float((op.A_adjoint(y) + z / gamma).norm())
    assert float(grad.norm()) / scale < tol
    assert not op.prox_is_exact and "conjugate gradients" in op.prox_description()
    iters, resid = op.last_prox_info
    assert resid < tol and iters < 200


@pytest.mark.parametrize("boundary", NONPERIODIC)
def test_prox_l2_per_image_gamma_and_none_z(boundary) -> None:
    op = FFTBlur(gaussian_kernel(5, 1.0), boundary=boundary)
    y = _rand(2, 1, 12, 13, seed=13)
    gam = torch.tensor([0.3, 3.0], dtype=torch.float64)
    x = op.prox_l2(None, y, gam)
    for b in range(2):
        xb = op.prox_l2(None, y[b:b + 1], float(gam[b]))
        torch.testing.assert_close(x[b:b + 1], xb, rtol=0, atol=1e-9)


def test_prox_warns_when_cg_budget_runs_out() -> None:
    op = FFTBlur(motion_kernel(9, seed=1), boundary="valid", prox_tol=1e-14, prox_max_iter=1)
    y = _rand(1, 1, 20, 20, seed=14)
    with pytest.warns(InexactProxWarning, match="CG stopped after 1 iterations"):
        op.prox_l2(None, y, 100.0)


def test_valid_matches_deepinv_blur_valid() -> None:
    k = motion_kernel(6, seed=2)
    x = _rand(2, 3, 24, 21, seed=15)
    ours = FFTBlur(k, boundary="valid")
    theirs = dinv.physics.Blur(filter=k[None, None], padding="valid")
    y = ours.A(x)
    torch.testing.assert_close(y, theirs.A(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(ours.A_adjoint(y), theirs.A_adjoint(y), rtol=0, atol=1e-12)


@pytest.mark.parametrize("algo", ["PGD", "HQS"])
def test_deepinv_solvers_give_same_iterates_with_our_valid_blur(algo) -> None:
    k = gaussian_kernel(5, 1.2)
    x = _rand(1, 1, 22, 20, seed=16)
    ours = FFTBlur(k, boundary="valid")
    theirs = dinv.physics.Blur(filter=k[None, None], padding="valid")
    y = ours.A(x) + 0.01 * torch.randn(ours.A(x).shape, generator=torch.Generator().manual_seed(1),
                                       dtype=torch.float64)
    outs = []
    for physics in (ours, theirs):
        model = dinv.optim.optim_builder(
            algo, max_iter=10, params_algo={"stepsize": 0.9, "lambda": 0.02}, early_stop=False,
            data_fidelity=dinv.optim.data_fidelity.L2(), prior=dinv.optim.prior.L1Prior(),
            custom_init=lambda y, physics: {"est": (physics.A_adjoint(y),)},
        )
        outs.append(model(y, physics))
    assert outs[0].shape == x.shape
    # PGD: identical up to round-off; HQS: deepinv's own CG (tol 1e-4 by default) against ours
    atol = 1e-12 if algo == "PGD" else 1e-3
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=atol)


# ------------------------------------------------------------------------------ bad inputs
def test_valid_x_smaller_than_kernel_names_x() -> None:
    op = FFTBlur(torch.ones(9, 9) / 81, boundary="valid")
    with pytest.raises(ValueError, match=r"x of size 5x12 is smaller than the kernel \(9x9\)"):
        op.A(torch.rand(1, 1, 5, 12))
    with pytest.raises(ValueError, match="image_size of size 4x4 is smaller than the kernel"):
        op.opnorm(image_size=(4, 4))


@pytest.mark.parametrize("boundary", ["reflect", "replicate"])
def test_kernel_larger_than_image_names_argument(boundary) -> None:
    op = FFTBlur(torch.ones(9, 9) / 81, boundary=boundary)
    with pytest.raises(ValueError, match=r"kernel of size 9x9 is larger than the image of size 5x12 \(argument x\)"):
        op.A(torch.rand(1, 1, 5, 12))
    with pytest.raises(ValueError, match=r"\(argument y\)"):
        op.A_adjoint(torch.rand(1, 1, 12, 5))


def test_corner_origin_reflect_uses_one_reflection() -> None:
    # corner origin: the whole extension (kh - 1 = 8 rows) on one side of a 9-row image
    k = _rand(9, 9, seed=17)
    x = _rand(1, 1, 9, 9, seed=18)
    y = FFTBlur(k, boundary="reflect", center="corner").A(x)
    ref = ndi.convolve(x[0, 0].numpy(), k.numpy(), mode="reflect", origin=(-4, -4))
    np.testing.assert_allclose(y[0, 0].numpy(), ref, rtol=0, atol=1e-13)


def test_bad_prox_arguments() -> None:
    op = FFTBlur(torch.ones(3, 3) / 9, boundary="valid")
    y = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"z has shape \(1, 1, 8, 8\) but must have shape \(1, 1, 10, 10\)"):
        op.prox_l2(y, y, 1.0)
    with pytest.raises(ValueError, match="prox_tol must be in"):
        FFTBlur(torch.ones(3, 3), boundary="valid", prox_tol=0.0)
    with pytest.raises(ValueError, match="prox_max_iter"):
        FFTBlur(torch.ones(3, 3), boundary="valid", prox_max_iter=0)
    with pytest.raises(ValueError, match="needs image_size"):
        FFTBlur(torch.ones(3, 3), boundary="reflect").opnorm()
    assert FFTBlur(torch.ones(3, 3) / 9, boundary="valid").opnorm() == pytest.approx(1.0)


def test_valid_bound_tightens_as_the_image_grows() -> None:
    # ||C K|| < ||K|| = 1 for a PSF, but the gap closes with the image size
    op = FFTBlur(gaussian_kernel(5, 1.0), boundary="valid")
    small = estimate_opnorm(op, (1, 1, 16, 16), iters=400)
    large = estimate_opnorm(op, (1, 1, 64, 64), iters=400)
    assert small < 0.97 < 0.99 < large <= op.opnorm(image_size=(64, 64)) == pytest.approx(1.0)


@pytest.mark.parametrize("boundary", ["reflect", "replicate"])
def test_extension_norm_exceeds_kernel_mass_for_motion_blur(boundary) -> None:
    # the extension repeats border pixels: ||A|| > sum k = 1, and the bound (certified) follows it
    k = motion_kernel(7, seed=4)
    op = FFTBlur(k, boundary=boundary)
    exact = float(torch.linalg.matrix_norm(_materialise(op, (12, 12)), ord=2))
    assert exact > 1.0 + 1e-3
    assert exact <= op.opnorm(image_size=(12, 12)) <= exact * (1 + 1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("boundary", NONPERIODIC)
def test_cuda_matches_cpu(boundary) -> None:
    k = motion_kernel(7, seed=5)
    cpu = FFTBlur(k, boundary=boundary)
    gpu = FFTBlur(k, boundary=boundary).to("cuda")
    x = _rand(2, 3, 30, 29, seed=19)
    y = cpu.A(x)
    torch.testing.assert_close(gpu.A(x.cuda()).cpu(), y, rtol=0, atol=1e-12)
    torch.testing.assert_close(gpu.A_adjoint(y.cuda()).cpu(), cpu.A_adjoint(y), rtol=0, atol=1e-12)
    torch.testing.assert_close(gpu.prox_l2(x.cuda(), y.cuda(), 0.5).cpu(), cpu.prox_l2(x, y, 0.5),
                               rtol=0, atol=1e-8)
    assert gpu.opnorm(image_size=(30, 29)) == pytest.approx(cpu.opnorm(image_size=(30, 29)), rel=1e-9)
