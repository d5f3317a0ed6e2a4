"""The public adjoint diagnostic and the power-iteration norm estimate."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from operators import AdjointCheck, FFTBlur, check_adjoint, estimate_opnorm


class _Matrix:
    """A dense linear map on [1, 1, n, n] images, with an optionally wrong adjoint."""

    def __init__(self, n: int, *, broken: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        self.M = torch.randn(n * n, n * n, generator=g, dtype=torch.float64)
        self.n, self.broken = n, broken

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return (self.M @ x.reshape(-1)).reshape(x.shape)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        M = self.M if self.broken else self.M.T
        return (M @ y.reshape(-1)).reshape(y.shape)


def test_result_is_frozen_dataclass() -> None:
    res = check_adjoint(FFTBlur(torch.ones(3, 3) / 9), (1, 1, 8, 8))
    assert isinstance(res, AdjointCheck) and res.passed
    assert res.opnorm_source == "opnorm" and res.dtype == "torch.float64" and res.shape == (1, 1, 8, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.passed = False  # type: ignore[misc]


def test_generic_operator_uses_power_iteration_and_detects_wrong_adjoint() -> None:
    good = check_adjoint(_Matrix(4), (1, 1, 4, 4))
    assert good.passed and good.opnorm_source == "power_iteration" and good.relative_error < 1e-12
    bad = check_adjoint(_Matrix(4, broken=True), (1, 1, 4, 4))
    assert not bad.passed and bad.relative_error > 1e-3


def test_estimate_is_lower_bound_close_to_exact() -> None:
    op = _Matrix(4)
    exact = float(torch.linalg.matrix_norm(op.M, ord=2))
    est = estimate_opnorm(op, (1, 1, 4, 4), iters=300, seed=0)
    assert est <= exact * (1 + 1e-12)
    assert est == pytest.approx(exact, rel=1e-3)


def test_bad_arguments() -> None:
    op = FFTBlur(torch.ones(3, 3) / 9)
    with pytest.raises(ValueError, match="trials must be >= 1"):
        check_adjoint(op, (1, 1, 8, 8), trials=0)
    with pytest.raises(ValueError, match="iters must be >= 1"):
        estimate_opnorm(op, (1, 1, 8, 8), iters=0)
