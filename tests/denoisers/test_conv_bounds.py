"""Certified conv-norm upper bounds against exact norms of materialised operators."""

import math

import pytest
import torch
import torch.nn.functional as F

from denoisers.layers import conv_opnorm_circular, conv_opnorm_upper_bound


def _materialise(op, shape):
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    cols = op(eye)
    return cols.reshape(n, -1).T  # columns are A e_i


def _zero_pad_op(w):
    k1, k2 = w.shape[-2:]
    # "full" convolution: zero padding on all sides (the largest zero-padded output)
    return lambda x: F.conv2d(x, w, padding=(k1 - 1, k2 - 1))


def _circular_op(w):
    k1, k2 = w.shape[-2:]
    pads = (k2 - 1 - (k2 - 1) // 2, (k2 - 1) // 2, k1 - 1 - (k1 - 1) // 2, (k1 - 1) // 2)
    return lambda x: F.conv2d(F.pad(x, pads, mode="circular"), w)


@pytest.mark.parametrize("ksize", [(3, 3), (2, 2), (5, 3), (4, 4)])
@pytest.mark.parametrize("n", [5, 8])
def test_bound_dominates_exact_norm_zero_and_circular(ksize, n):
    g = torch.Generator().manual_seed(n)
    w = torch.randn(3, 2, *ksize, generator=g, dtype=torch.float64)
    bound = conv_opnorm_upper_bound(w).bound
    for op in (_zero_pad_op(w), _circular_op(w)):
        if max(ksize) > n:
            continue
        mat = _materialise(op, (2, n, n))
        exact = float(torch.linalg.matrix_norm(mat, ord=2))
        assert exact <= bound * (1 + 1e-12), (exact, bound)


def test_circular_grid_norm_matches_materialised_operator():
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mat = _materialise(_circular_op(w), (3, 7, 7))
    assert conv_opnorm_circular(w, (7, 7)) == pytest.approx(float(torch.linalg.matrix_norm(mat, ord=2)), rel=1e-10)


def test_bound_is_tight_on_large_grids():
    w = torch.randn(16, 8, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    b = conv_opnorm_upper_bound(w, grid=64)
    fine = conv_opnorm_circular(w, (512, 512))
    assert fine <= b.bound
    assert b.bound <= fine * 1.006  # Bernstein slack (pi d / n)^2 / 2 at n = 64


def test_reshaped_kernel_norm_is_not_a_bound():
    """The norm of the reshaped kernel matrix can underestimate the conv norm (why we never use it)."""
    w = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    reshaped = float(torch.linalg.matrix_norm(w.reshape(1, -1), ord=2))  # = 3
    assert conv_opnorm_upper_bound(w).bound >= 9.0 > reshaped


def test_bad_weight_rejected():
    with pytest.raises(ValueError, match="weight"):
        conv_opnorm_upper_bound(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="NaN"):
        conv_opnorm_upper_bound(torch.full((1, 1, 3, 3), float("nan")))
