"""FFTBlur inside deepinv: same operator as deepinv's BlurFFT, and deepinv's solvers run with it."""

from __future__ import annotations

import deepinv as dinv
import pytest
import torch

from operators import FFTBlur, check_adjoint, gaussian_kernel, motion_kernel


def _problem(kernel: torch.Tensor, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 22, generator=g, dtype=dtype)
    ours = FFTBlur(kernel)
    theirs = dinv.physics.BlurFFT(img_size=(3, 24, 22), filter=kernel[None, None].to(dtype))
    return x, ours, theirs


@pytest.mark.parametrize("ksize", [5, 6])  # odd and even: deepinv also centres at h // 2
def test_same_operator_as_deepinv_blurfft(ksize: int) -> None:
    k = motion_kernel(ksize, seed=1)
    x, ours, theirs = _problem(k)
    torch.testing.assert_close(ours.A(x), theirs.A(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(ours.A_adjoint(x), theirs.A_adjoint(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(ours.prox_l2(x, 0.5 * x, 0.7), theirs.prox_l2(x, 0.5 * x, 0.7), rtol=0, atol=1e-12)
    # deepinv's compute_norm (power iteration, a lower bound) returns the squared norm by
    # default; ours is the exact norm, not squared
    x0 = torch.rand(1, 3, 24, 22, dtype=torch.float64)
    sq = float(theirs.compute_norm(x0, max_iter=200, tol=1e-6, verbose=False, squared=True))
    exact = ours.opnorm(image_size=(24, 22))
    assert 0.9 * exact**2 <= sq <= exact**2 * (1 + 1e-9)


def test_deepinv_adjointness_test_agrees() -> None:
    op = FFTBlur(gaussian_kernel(5, 1.0))
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    assert abs(float(op.adjointness_test(x))) < 1e-12
    assert check_adjoint(op, (1, 1, 16, 16)).passed


@pytest.mark.parametrize("algo", ["PGD", "HQS", "DRS"])
def test_deepinv_solvers_match_with_our_operator(algo: str) -> None:
    k = gaussian_kernel(7, 1.5)
    x, ours, theirs = _problem(k)
    y = ours.A(x) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    params = {"stepsize": 0.9, "lambda": 0.02, "g_param": 0.05}
    outs = []
    for physics in (ours, theirs):
        model = dinv.optim.optim_builder(
            algo, max_iter=15, params_algo=params, early_stop=False,
            data_fidelity=dinv.optim.data_fidelity.L2(), prior=dinv.optim.prior.L1Prior(),
        )
        outs.append(model(y, physics))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-12)
    assert float((outs[0] - y).abs().max()) > 1e-3  # the solver did something


def test_deepinv_pgd_iterates_equal_hand_written_pgd() -> None:
    # x_{k+1} = soft(x_k - s (A^T A x_k - A^T y), s * lambda) with deepinv's L1Prior prox
    k = motion_kernel(9, seed=2)
    x, ours, _ = _problem(k, dtype=torch.float32)
    y = ours.A(x)
    s, lam, iters = 1.0 / ours.opnorm(image_size=(24, 22)) ** 2, 0.01, 10
    model = dinv.optim.optim_builder(
        "PGD", max_iter=iters, params_algo={"stepsize": s, "lambda": lam}, early_stop=False,
        data_fidelity=dinv.optim.data_fidelity.L2(), prior=dinv.optim.prior.L1Prior(),
        custom_init=lambda y, physics: {"est": (physics.A_adjoint(y),)},
    )
    out = model(y, ours)
    xk = ours.A_adjoint(y)
    for _ in range(iters):
        v = xk - s * (ours.A_adjoint_A(xk) - ours.A_adjoint(y))
        xk = torch.sign(v) * torch.clamp(v.abs() - s * lam, min=0)
    torch.testing.assert_close(out, xk, rtol=0, atol=1e-5)
