"""l-inf contractive implicit networks: well-posedness, convergence, gradients, certificates."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from denoisers.implicit import (
    ConvergenceWarning,
    ConvLinfImplicitNetwork,
    FixedPointConfig,
    ImplicitCertificate,
    LinfImplicitNetwork,
    average_iteration,
    average_step,
    conv_kernel_measure_1,
    conv_kernel_measure_inf,
    conv_kernel_norm_1,
    conv_kernel_norm_inf,
    conv_linf_contractive_kernel,
    conv_matrix_measure_inf,
    implicit_fixed_point,
    linf_contractive_matrix,
    materialize_conv,
    matrix_measure_1,
    matrix_measure_inf,
    norm_1,
    norm_inf,
)

f64 = torch.float64


def _measure_by_definition(A: torch.Tensor, eta: torch.Tensor | None = None) -> float:
    n = A.shape[0]
    eta = torch.ones(n, dtype=A.dtype) if eta is None else eta
    best = -math.inf
    for i in range(n):
        s = float(A[i, i]) + sum(abs(float(A[i, j])) * float(eta[j]) / float(eta[i]) for j in range(n) if j != i)
        best = max(best, s)
    return best


def _net(n=12, m=5, p=3, *, gamma=0.6, weighted=False, scale=3.0, seed=0, tol=1e-12, anderson=0):
    torch.manual_seed(seed)
    net = LinfImplicitNetwork(m, n, p, gamma=gamma, weighted=weighted,
                              solver=FixedPointConfig(tol=tol, max_iter=20000, anderson=anderson)).double()
    with torch.no_grad():
        net.T.copy_(torch.randn(n, n, dtype=f64) * scale / math.sqrt(n))
        net.b.copy_(torch.randn(n, dtype=f64) * 0.3)
        if weighted:
            net.log_eta.copy_(torch.randn(n, dtype=f64) * 0.5)
    return net


# ------------------------------------------------------------------------------- well-posedness
@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.9, 0.999])
@pytest.mark.parametrize("weighted", [False, True])
def test_parametrisation_keeps_measure_below_gamma(gamma, weighted):
    g = torch.Generator().manual_seed(1)
    for n in (1, 2, 7, 40):
        for scale in (0.01, 1.0, 100.0):
            T = torch.randn(n, n, generator=g, dtype=f64) * scale
            eta = torch.rand(n, generator=g, dtype=f64) * 5 + 0.01 if weighted else None
            A = linf_contractive_matrix(T, gamma=gamma, eta=eta)
            mu = float(matrix_measure_inf(A, eta=eta))
            assert mu <= gamma + 1e-12 * max(1.0, scale * n)
            assert abs(mu - _measure_by_definition(A, eta)) <= 1e-9 * max(1.0, scale * n)


def test_measure_is_gamma_when_some_diagonal_of_T_nonnegative_and_map_is_onto():
    T = torch.randn(6, 6, dtype=f64)
    T[2, 2] = abs(T[2, 2])
    A = linf_contractive_matrix(T, gamma=0.7)
    assert float(matrix_measure_inf(A)) == pytest.approx(0.7, abs=1e-12)
    # surjectivity: any A with mu_inf(A) <= gamma is reached by t_ij = a_ij, t_ii = -(gamma - mu_i)/2
    A0 = torch.randn(6, 6, dtype=f64)
    rows = torch.diagonal(A0) + A0.abs().sum(1) - torch.diagonal(A0).abs()
    A0 = A0 - torch.diag(rows - 0.7 + torch.rand(6, dtype=f64))  # now mu_i <= 0.7
    rows = torch.diagonal(A0) + A0.abs().sum(1) - torch.diagonal(A0).abs()
    T0 = A0.clone()
    T0.diagonal().copy_(-(0.7 - rows) / 2)
    assert torch.allclose(linf_contractive_matrix(T0, gamma=0.7), A0, atol=1e-12)


def test_measure_1_and_norms():
    A = torch.randn(5, 5, dtype=f64)
    assert float(matrix_measure_1(A)) == pytest.approx(_measure_by_definition(A.T), abs=1e-12)
    assert float(norm_inf(A)) == pytest.approx(float(torch.linalg.matrix_norm(A, ord=math.inf)))
    assert float(norm_1(A)) == pytest.approx(float(torch.linalg.matrix_norm(A, ord=1)))


# -------------------------------------------------------------------------------- convolutions
@pytest.mark.parametrize("padding", ["zeros", "circular"])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 3), (5, 4)])
@pytest.mark.parametrize("k", [1, 3])
def test_conv_measure_matches_materialised_operator(padding, size, k):
    H, W = size
    if padding == "circular" and (k > H or k > W):
        with pytest.raises(ValueError, match="circular"):
            conv_matrix_measure_inf(torch.randn(2, 2, k, k, dtype=f64), H, W, padding=padding)
        return
    g = torch.Generator().manual_seed(H * 10 + W + k)
    for C in (1, 3):
        T = torch.randn(C, C, k, k, generator=g, dtype=f64)
        K = conv_linf_contractive_kernel(T, gamma=0.4)
        M = materialize_conv(K, H, W, padding=padding)
        # materialisation is the convolution
        x = torch.randn(1, C, H, W, generator=g, dtype=f64)
        y = (M @ x.reshape(-1)).reshape(1, C, H, W)
        if padding == "zeros":
            ref = torch.nn.functional.conv2d(x, K, padding=k // 2)
        else:
            ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (k // 2,) * 4, mode="circular"), K)
        assert torch.allclose(y, ref, atol=1e-12)
        mu_mat = _measure_by_definition(M)
        assert float(conv_matrix_measure_inf(K, H, W, padding=padding)) == pytest.approx(mu_mat, abs=1e-10)
        assert mu_mat <= 0.4 + 1e-12
        assert mu_mat <= float(conv_kernel_measure_inf(K)) + 1e-12
        assert _measure_by_definition(M.T) <= float(conv_kernel_measure_1(K)) + 1e-12
        assert float(norm_inf(M)) <= float(conv_kernel_norm_inf(K)) + 1e-12
        assert float(norm_1(M)) <= float(conv_kernel_norm_1(K)) + 1e-12
        if H >= k and W >= k:  # some row is interior: the kernel formula is exact
            assert float(conv_kernel_measure_inf(K)) == pytest.approx(mu_mat, abs=1e-10)


def test_conv_network_equals_dense_fixed_point_of_materialised_operator():
    torch.manual_seed(0)
    net = ConvLinfImplicitNetwork(2, 3, 1, gamma=0.5, solver=FixedPointConfig(tol=1e-12, max_iter=5000)).double()
    with torch.no_grad():
        net.T.mul_(40.0)
    u = torch.rand(2, 2, 5, 6, dtype=f64)
    x = net.equilibrium(u)
    M = materialize_conv(net.A.detach(), 5, 6)
    z = torch.nn.functional.conv2d(u, net.B.detach(), padding=1) + net.b.detach()[None, :, None, None]
    xf = x.reshape(2, -1)
    assert torch.allclose(xf, torch.relu(xf @ M.T + z.reshape(2, -1)), atol=1e-10)
    assert float(matrix_measure_inf(M)) <= 0.5 + 1e-12


# ------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("weighted", [False, True])
def test_forward_converges_to_same_point_from_any_start(weighted):
    net = _net(weighted=weighted)
    u = torch.randn(4, 5, dtype=f64)
    x_ref = net.equilibrium(u).detach()
    info = net.last_forward_info
    assert info.converged and info.residual <= 1e-12 and info.iterations > 1
    for s in range(3):
        x0 = torch.randn(4, 12, dtype=f64, generator=torch.Generator().manual_seed(s)) * 10 ** s
        x = net.equilibrium(u, x0=x0).detach()
        assert torch.allclose(x, x_ref, atol=1e-10)
    # it is the fixed point
    A = net.A.detach()
    assert torch.allclose(x_ref, torch.relu(x_ref @ A.T + u @ net.B.detach().T + net.b.detach()), atol=1e-11)


@pytest.mark.parametrize("padding", ["zeros", "circular"])
def test_conv_forward_converges_to_same_point_from_any_start(padding):
    torch.manual_seed(0)
    net = ConvLinfImplicitNetwork(2, 3, 1, gamma=0.6, padding=padding,
                                  solver=FixedPointConfig(tol=1e-12, max_iter=20000)).double()
    with torch.no_grad():
        net.T.mul_(30.0)  # far from the identity: a non-trivial contraction
        net.b.copy_(torch.randn(3, dtype=f64) * 0.3)
    u = torch.rand(2, 2, 5, 6, dtype=f64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        x_ref = net.equilibrium(u).detach()
        info = net.last_forward_info
        assert info.converged and info.residual <= 1e-12 and info.iterations > 1
        g = torch.Generator().manual_seed(7)
        for scale in (1.0, 100.0, 1e4):
            x0 = torch.randn(x_ref.shape, generator=g, dtype=f64) * scale
            x = net.equilibrium(u, x0=x0).detach()
            assert net.last_forward_info.converged
            assert torch.allclose(x, x_ref, atol=1e-10, rtol=0)
    # it is the fixed point of x = relu(A * x + B * u + b)
    assert torch.allclose(x_ref, torch.relu(net._conv(x_ref, net.A.detach()) + net._conv(u, net.B.detach())
                                            + net.b.detach()[None, :, None, None]), atol=1e-11, rtol=0)


def test_anderson_reaches_the_same_point():
    net = _net(scale=6.0)
    u = torch.randn(3, 5, dtype=f64)
    x = net.equilibrium(u).detach()
    plain_iters = net.last_forward_info.iterations
    net_a = _net(scale=6.0, anderson=5)
    xa = net_a.equilibrium(u).detach()
    info = net_a.last_forward_info
    assert info.accelerated and info.converged
    assert torch.allclose(x, xa, atol=1e-9)
    assert info.iterations <= plain_iters


def test_average_iteration_is_a_contraction_with_the_stated_factor():
    net = _net(scale=5.0)
    A = net.A.detach()
    a = float(average_step(torch.diagonal(A)))
    mu = float(matrix_measure_inf(A))
    rho = 1 - a * (1 - max(mu, 0.0))
    assert rho < 1
    z = torch.randn(1, 12, dtype=f64)

    def G(x):
        return (1 - a) * x + a * torch.relu(x @ A.T + z)

    g = torch.Generator().manual_seed(3)
    for _ in range(200):
        x, y = torch.randn(2, 1, 12, generator=g, dtype=f64)
        assert float((G(x) - G(y)).abs().max()) <= rho * float((x - y).abs().max()) + 1e-12


def test_stopping_rule_and_budget():
    net = _net(scale=5.0)
    net.solver = FixedPointConfig(tol=1e-12, max_iter=2)
    with pytest.warns(ConvergenceWarning):
        net.equilibrium(torch.randn(2, 5, dtype=f64))
    info = net.last_forward_info
    assert info.iterations == 2 and not info.converged and info.residual > 1e-12
    x, info = average_iteration(lambda v: 0.5 * v + 1.0, torch.zeros(1, 3, dtype=f64), step=1.0,
                                config=FixedPointConfig(tol=1e-10))
    assert info.converged and torch.allclose(x, torch.full((1, 3), 2.0, dtype=f64), atol=1e-9)


def _small_conv_net(**kw):
    torch.manual_seed(0)
    net = ConvLinfImplicitNetwork(2, 3, 1, gamma=0.6, **kw).double()
    with torch.no_grad():
        net.T.mul_(30.0)
    return net


@pytest.mark.parametrize("kind", ["dense", "dense_anderson", "conv"])
def test_too_small_budget_warns_and_reports_not_converged(kind):
    cfg = FixedPointConfig(tol=1e-12, max_iter=3, anderson=3 if kind == "dense_anderson" else 0)
    if kind == "conv":
        net, u = _small_conv_net(solver=cfg), torch.rand(2, 2, 5, 5, dtype=f64)
    else:
        net, u = _net(scale=5.0), torch.randn(2, 5, dtype=f64)
        net.solver = cfg
    with pytest.warns(ConvergenceWarning) as rec:
        net.equilibrium(u)  # the warning points at this line (stacklevel=2)
    info = net.last_forward_info
    assert not info.converged and info.residual > cfg.tol and info.iterations >= cfg.max_iter
    assert len(rec) == 1 and rec[0].filename == __file__
    msg = str(rec[0].message)
    assert type(net).__name__ in msg and "did not converge" in msg and "budget exhausted" in msg
    assert f"after {info.iterations} iterations" in msg and "max_iter=3" in msg
    assert f"l-inf residual {info.residual:.3e}" in msg and "tol 1.000e-12" in msg
    # through forward() as well, and no warning once the budget suffices
    with pytest.warns(ConvergenceWarning):
        net(u)
    net.solver = FixedPointConfig(tol=1e-8, max_iter=20000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        net(u)
    assert net.last_forward_info.converged


def test_convergence_warning_is_a_user_warning_of_denoisers_not_pnp():
    import denoisers.implicit.exceptions as exc_mod

    assert issubclass(ConvergenceWarning, UserWarning) and exc_mod.ConvergenceWarning is ConvergenceWarning
    assert ConvergenceWarning.__module__ == "denoisers.implicit.exceptions"


# ------------------------------------------------------------------------------------ backward
def test_implicit_gradients_match_finite_differences_dense():
    torch.manual_seed(0)
    cfg = FixedPointConfig(tol=1e-13, max_iter=20000)
    n, m = 4, 2
    T = (torch.randn(n, n, dtype=f64) * 2).requires_grad_()
    B = torch.randn(n, m, dtype=f64, requires_grad=True)
    u = torch.randn(2, m, dtype=f64, requires_grad=True)

    def fn(x, z, params):
        return torch.nn.functional.leaky_relu(x @ params[0].T + z, 0.1)  # smooth away from 0

    def f(u, T, B):
        A = linf_contractive_matrix(T, gamma=0.5)
        step = float(average_step(torch.diagonal(A.detach())))
        x, _ = implicit_fixed_point(fn, u @ B.T + 0.1, (A,), x0=torch.zeros(2, n, dtype=f64), step=step, config=cfg)
        return x

    assert torch.autograd.gradcheck(f, (u, T, B), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_network_gradients_match_finite_differences_and_report_backward_info():
    net = _net(n=8, m=4, p=3, scale=3.0, weighted=True)
    u = torch.randn(3, 4, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: net(v), (u,), eps=1e-6, atol=1e-6, rtol=1e-5)
    net.zero_grad()
    net(u).pow(2).sum().backward()
    info = net.last_backward_info
    assert info is not None and info.converged and info.norm == "1"
    for name in ("T", "B", "b", "C", "c", "D", "log_eta"):
        g = getattr(net, name).grad
        assert g is not None and torch.isfinite(g).all()


def test_conv_gradients_match_finite_differences():
    torch.manual_seed(0)
    net = ConvLinfImplicitNetwork(1, 2, 1, gamma=0.5, activation="tanh",
                                  solver=FixedPointConfig(tol=1e-13, max_iter=5000)).double()
    with torch.no_grad():
        net.T.mul_(20.0)
    u = torch.rand(1, 1, 4, 4, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: net(v), (u,), eps=1e-6, atol=1e-6, rtol=1e-5)
    T = net.T

    def of_T(t):
        K = conv_linf_contractive_kernel(t, gamma=0.5)
        step = float(average_step(torch.diagonal(K.detach()[:, :, 1, 1])))
        z = torch.nn.functional.conv2d(u.detach(), net.B.detach(), padding=1)
        x, _ = implicit_fixed_point(lambda x, zz, p: torch.tanh(torch.nn.functional.conv2d(x, p[0], padding=1) + zz),
                                    z, (K,), x0=torch.zeros_like(z), step=step, config=net.solver)
        return x

    assert torch.autograd.gradcheck(of_T, (T.detach().clone().requires_grad_(),), eps=1e-6, atol=1e-6, rtol=1e-5)


# -------------------------------------------------------------------------------- certificates
def _empirical_lipschitz(f, m, p_in, p_out, *, steps=25, pairs=8, seed=0):
    """Gradient ascent on ||f(u1) - f(u2)||_q / ||u1 - u2||_p over pairs (an empirical lower bound)."""
    g = torch.Generator().manual_seed(seed)
    u1 = torch.randn(pairs, m, generator=g, dtype=f64).requires_grad_()
    d = (torch.randn(pairs, m, generator=g, dtype=f64) * 0.1).requires_grad_()
    opt = torch.optim.Adam([u1, d], lr=0.02)
    best = 0.0
    for _ in range(steps):
        num = torch.linalg.vector_norm(f(u1 + d) - f(u1), ord=p_out, dim=1)
        den = torch.linalg.vector_norm(d, ord=p_in, dim=1).clamp_min(1e-9)
        ratio = num / den
        best = max(best, float(ratio.detach().max()))
        opt.zero_grad()
        (-ratio.sum()).backward()
        opt.step()
    return best


def _jacobian_lower_bounds(net, m, *, samples=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    linf = l2 = 0.0
    for _ in range(samples):
        u = torch.randn(1, m, generator=g, dtype=f64)
        J = torch.autograd.functional.jacobian(lambda v: net(v)[0], u)[:, 0, :]
        linf = max(linf, float(norm_inf(J)))
        l2 = max(l2, float(torch.linalg.matrix_norm(J, ord=2)))
    return linf, l2


@pytest.mark.parametrize(
    ("weighted", "scale"),
    [(False, 3.0), (True, 1.0), pytest.param(False, 6.0, marks=pytest.mark.slow),
     pytest.param(True, 5.0, marks=pytest.mark.slow)],
)
def test_certified_bounds_dominate_empirical_estimates(weighted, scale):
    net = _net(n=10, m=6, p=4, scale=scale, weighted=weighted, tol=1e-9, anderson=5)
    with torch.no_grad():
        net.B.mul_(3.0)
        net.C.mul_(3.0)
    cert = net.certificate
    assert cert.mu <= net.gamma + 1e-12 and 0 < cert.contraction < 1
    jinf, j2 = _jacobian_lower_bounds(net, 6)
    einf = _empirical_lipschitz(net, 6, math.inf, math.inf)
    e2 = _empirical_lipschitz(net, 6, 2, 2)
    e2inf = _empirical_lipschitz(net, 6, 2, math.inf)
    assert cert.lipschitz_linf >= max(jinf, einf) * (1 - 1e-9)
    assert cert.lipschitz_l2 >= max(j2, e2) * (1 - 1e-9)
    assert cert.lipschitz_l2_to_linf >= e2inf * (1 - 1e-9)
    assert einf >= 0.5 * jinf > 0  # the pair search is not vacuous


def test_linf_certificate_is_tight_when_all_units_are_active():
    """T = 0 (A = gamma I), B, C >= 0, large bias: x = (B u + b) / (1 - gamma) near u = 0, so
    ||f(u1) - f(u2)||_inf = ||C B||_inf / (1 - gamma) ||du||_inf = the certificate (D = 0)."""
    net = LinfImplicitNetwork(4, 5, 3, gamma=0.5, solver=FixedPointConfig(tol=1e-13, max_iter=2000)).double()
    with torch.no_grad():
        net.T.zero_()
        B = torch.rand(5, 4, dtype=f64)
        net.B.copy_(B / B.sum(dim=1, keepdim=True))  # equal row sums: ||C B||_inf = ||C||_inf ||B||_inf
        net.C.copy_(torch.rand(3, 5, dtype=f64))
        net.b.fill_(10.0)
        net.D.zero_()
    cert = net.certificate
    assert cert.lipschitz_linf == pytest.approx(float(norm_inf(net.C.detach())) / 0.5, rel=1e-12)
    u = torch.zeros(1, 4, dtype=f64)
    du = torch.full((1, 4), 1e-3, dtype=f64)  # aligned with the nonnegative rows
    with torch.no_grad():
        ratio = float((net(u + du) - net(u)).abs().max()) / 1e-3
    assert ratio == pytest.approx(cert.lipschitz_linf, rel=1e-8)


def test_conv_certificate_dominates_jacobian_norms():
    torch.manual_seed(2)
    net = ConvLinfImplicitNetwork(1, 2, 1, gamma=0.5, solver=FixedPointConfig(tol=1e-11, max_iter=5000)).double()
    with torch.no_grad():
        net.T.mul_(10.0)
    cert = net.certificate
    for s in range(5):
        u = torch.rand(1, 1, 5, 5, dtype=f64, generator=torch.Generator().manual_seed(s))
        J = torch.autograd.functional.jacobian(lambda v: net(v.reshape(1, 1, 5, 5)).reshape(-1), u.reshape(-1))
        assert float(norm_inf(J)) <= cert.lipschitz_linf * (1 + 1e-9)
        if cert.lipschitz_l2 is not None:
            assert float(torch.linalg.matrix_norm(J, ord=2)) <= cert.lipschitz_l2 * (1 + 1e-9)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_certificate_is_a_read_only_property(kind):
    net = _net() if kind == "dense" else _small_conv_net()
    cert = net.certificate
    assert isinstance(cert, ImplicitCertificate) and cert == net.compute_certificate()
    with pytest.raises(AttributeError):
        net.certificate = cert
    with torch.no_grad():  # derived from the current weights
        net.C.mul_(2.0)
    assert net.certificate.lipschitz_linf > cert.lipschitz_linf


def test_certificate_round_trip():
    cert = _net().certificate
    assert isinstance(cert, ImplicitCertificate)
    assert ImplicitCertificate.from_dict(cert.to_dict()) == cert
    with pytest.raises(ValueError, match="unknown"):
        ImplicitCertificate.from_dict({**cert.to_dict(), "bogus": 1})


def test_float32_forward_and_lipschitz_bounds_are_differentiable():
    torch.manual_seed(0)
    net = LinfImplicitNetwork(8, 16, 3)
    y = net(torch.rand(5, 8))
    assert y.dtype == torch.float32 and y.shape == (5, 3)
    bd = net.lipschitz_bounds()
    (bd["linf"] + bd["l2"]).backward()
    assert torch.isfinite(net.T.grad).all() and torch.isfinite(net.D.grad).all()


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("gamma", [1.0, 1.5, -0.1, float("nan"), float("inf")])
def test_bad_gamma_is_rejected(gamma):
    with pytest.raises(ValueError, match="gamma"):
        LinfImplicitNetwork(3, 4, 2, gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        ConvLinfImplicitNetwork(1, 2, 1, gamma=gamma)
    with pytest.raises(ValueError, match="gamma"):
        linf_contractive_matrix(torch.zeros(3, 3), gamma=gamma)


def test_bad_shapes_and_arguments_are_rejected():
    net = LinfImplicitNetwork(3, 4, 2)
    with pytest.raises(ValueError, match=r"u must have shape \[N, 3\]"):
        net(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="u must have shape"):
        net(torch.zeros(3))
    with pytest.raises(TypeError, match="floating"):
        net(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="x0"):
        net.equilibrium(torch.zeros(2, 3), x0=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="square"):
        linf_contractive_matrix(torch.zeros(3, 4), gamma=0.5)
    with pytest.raises(ValueError, match="eta"):
        linf_contractive_matrix(torch.zeros(3, 3), gamma=0.5, eta=-torch.ones(3))
    with pytest.raises(ValueError, match="state_features"):
        LinfImplicitNetwork(3, 0, 2)
    with pytest.raises(ValueError, match="activation"):
        LinfImplicitNetwork(3, 4, 2, activation="gelu")
    with pytest.raises(TypeError, match="solver"):
        LinfImplicitNetwork(3, 4, 2, solver={"tol": 1e-3})
    with pytest.raises(ValueError, match="tol"):
        FixedPointConfig(tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        FixedPointConfig(max_iter=0)
    with pytest.raises(ValueError, match="x0 must be finite"):
        net.equilibrium(torch.zeros(2, 3), x0=torch.full((2, 4), float("nan")))
    conv = ConvLinfImplicitNetwork(2, 3, 1, padding="circular")
    with pytest.raises(ValueError, match="u must have shape"):
        conv(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="circular"):
        conv(torch.zeros(1, 2, 2, 8))
    with pytest.raises(ValueError, match="kernel_size"):
        ConvLinfImplicitNetwork(1, 2, 1, kernel_size=2)
    with pytest.raises(ValueError, match="padding"):
        ConvLinfImplicitNetwork(1, 2, 1, padding="reflect")


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_empty_batch_is_rejected(dtype):
    net = LinfImplicitNetwork(3, 4, 2).to(dtype)
    with pytest.raises(ValueError, match=r"u must be a non-empty batch, got shape \(0, 3\)"):
        net(torch.zeros(0, 3, dtype=dtype))
    with pytest.raises(ValueError, match="u must be a non-empty batch"):
        net.equilibrium(torch.zeros(0, 3, dtype=dtype))
    conv = ConvLinfImplicitNetwork(2, 3, 1).to(dtype)
    with pytest.raises(ValueError, match=r"u must be a non-empty batch, got shape \(0, 2, 4, 4\)"):
        conv(torch.zeros(0, 2, 4, 4, dtype=dtype))
    with pytest.raises(ValueError, match="u must be a non-empty batch"):
        conv(torch.zeros(1, 2, 0, 4, dtype=dtype))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_rejected(bad):
    net = LinfImplicitNetwork(3, 4, 2)
    u = torch.rand(2, 3)
    u[1, 2] = bad
    with pytest.raises(ValueError, match=r"u must be finite, got 1 non-finite value"):
        net(u)
    conv = ConvLinfImplicitNetwork(2, 3, 1)
    v = torch.rand(1, 2, 4, 4)
    v[0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"u must be finite, got 1 non-finite value"):
        conv(v)
    with pytest.raises(ValueError, match="x0 must be finite"):
        conv.equilibrium(torch.rand(1, 2, 4, 4), x0=torch.full((1, 3, 4, 4), bad))
    # the input is not modified by the check, and a finite input still works
    assert torch.isfinite(net(torch.rand(2, 3))).all() and int((~torch.isfinite(u)).sum()) == 1
