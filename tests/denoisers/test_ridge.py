"""Ridge regularisers (CRR / WCRR): exact pieces, certified constants against empirical lower
bounds, the prox denoiser, save/load, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from denoisers.checkpoint import CheckpointError
from denoisers.estimate import (
    adversarial_averagedness,
    adversarial_lipschitz,
    adversarial_weak_convexity,
    hessian_min_eigenvalue,
    hessian_spectral_norm,
)
from denoisers.layers.spline import LinearSpline, project_splines_
from denoisers.ridge import MultiConv, RidgeConfig, RidgeDenoiser, RidgeRegularizer, compose_kernels, ridge_prox
from denoisers.ridge.train import load_ridge, save_ridge

SMALL = dict(channels=(1, 3, 6), kernel_size=3, spline_knots=17, spline_range=2.0, grid=64)


def make_reg(kind: str, seed: int = 0, boundary: str = "valid", **config) -> RidgeRegularizer:
    """A small regulariser with generic (randomised, projected) splines, float64 (``config``: more
    ``RidgeConfig`` fields)."""
    torch.manual_seed(seed)
    reg = RidgeRegularizer(RidgeConfig(kind=kind, boundary=boundary, **SMALL, **config)).double()
    with torch.no_grad():
        for s in reg.splines():
            s.coefficients.add_(0.15 * torch.randn_like(s.coefficients))
        for w in reg.conv.weights:
            w.add_(0.2 * torch.randn_like(w))
        reg.mu.values.add_(0.3)
    project_splines_(reg)
    return reg


def test_composed_kernel_equals_the_stack():
    torch.manual_seed(0)
    ws = [torch.randn(3, 1, 3, 3, dtype=torch.float64), torch.randn(5, 3, 3, 3, dtype=torch.float64),
          torch.randn(4, 5, 3, 3, dtype=torch.float64)]
    x = torch.randn(2, 1, 17, 20, dtype=torch.float64)
    y = x
    for w in ws:
        y = F.conv2d(y, w)
    k = compose_kernels(ws)
    assert k.shape == (4, 1, 7, 7)
    assert torch.allclose(F.conv2d(x, k), y, atol=1e-12)


def test_filters_are_zero_mean_and_normalised():
    reg = make_reg("crr")
    k = reg.kernel()
    assert k.sum(dim=(-2, -1)).abs().max() < 1e-12
    cert = reg.certificate()
    assert cert.w_norm_bound <= 1.0 + 1e-9


@pytest.mark.parametrize("size", [(13, 13), (14, 17), (9, 10)])
def test_multiconv_adjoint(size):
    reg = make_reg("crr")
    k = reg.kernel().detach()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, *size, generator=g, dtype=torch.float64)
    u = torch.randn_like(MultiConv.apply(k, x))
    lhs = (MultiConv.apply(k, x) * u).sum()
    rhs = (x * MultiConv.apply_adjoint(k, u)).sum()
    assert abs(lhs - rhs) / (x.norm() * u.norm()) < 1e-12


@pytest.mark.parametrize("size", [(9, 9), (10, 11)])
def test_certified_norm_bounds_the_materialised_operator(size):
    reg = make_reg("crr", seed=3)
    k = reg.kernel().detach()
    n = size[0] * size[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, *size)
    mat = MultiConv.apply(k, basis).reshape(n, -1)
    true = torch.linalg.matrix_norm(mat, ord=2).item()
    cert = reg.certificate()
    assert true <= cert.w_norm_bound * (1 + 1e-12)
    assert true > 0.3 * cert.w_norm_bound  # the bound is not vacuous


def test_spline_integral_is_the_antiderivative():
    torch.manual_seed(0)
    sp = LinearSpline(3, knots=17, range_=2.0, init="clip").double()
    with torch.no_grad():
        sp.coefficients.add_(0.2 * torch.randn_like(sp.coefficients))
    x = (torch.randn(7, 3, dtype=torch.float64) * 2).requires_grad_(True)
    (g,) = torch.autograd.grad(sp.integral(x).sum(), x)
    assert torch.allclose(g, sp(x), atol=1e-12)
    assert sp.integral(torch.zeros(1, 3, dtype=torch.float64)).abs().max() == 0
    # trapezoid check between two points far apart (crossing the grid end)
    t = torch.linspace(-3.0, 2.7, 20001, dtype=torch.float64).view(-1, 1).expand(-1, 3).contiguous()
    with torch.no_grad():
        f = sp(t)
        Fv = sp.integral(t)
    trap = torch.trapezoid(f, t[:, 0], dim=0)
    assert torch.allclose(Fv[-1] - Fv[0], trap, atol=1e-6)


KIND_BOUNDARY = [("crr", "valid"), ("wcrr", "valid"), ("crr", "reflect"), ("crr", "circular"), ("wcrr", "circular")]


def assert_gradient_matches(reg, x, sigma, g):
    """``grad`` against autograd and central finite differences (direction drawn from ``g``), and
    ``energy_and_grad`` against the two separate calls."""
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(reg.energy(xr, sigma).sum(), xr)
    ours = reg.grad(x, sigma)
    assert torch.allclose(ours, auto, atol=1e-10)
    d = torch.randn(x.shape, generator=g, dtype=torch.float64)
    h = 1e-6
    fd = (reg.energy(x + h * d, sigma) - reg.energy(x - h * d, sigma)) / (2 * h)
    assert torch.allclose(fd, (ours * d).flatten(1).sum(1), rtol=1e-5, atol=1e-8)
    e2, g2 = reg.energy_and_grad(x, sigma)
    assert torch.allclose(e2, reg.energy(x, sigma)) and torch.allclose(g2, ours)


@pytest.mark.parametrize("kind, boundary", KIND_BOUNDARY)
def test_gradient_matches_autograd_and_finite_differences(kind, boundary):
    reg = make_reg(kind, boundary=boundary)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 1, 12, 13, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.1], dtype=torch.float64)
    assert_gradient_matches(reg, x, sigma, g)


@pytest.mark.parametrize("kind, boundary", KIND_BOUNDARY)
def test_hessian_and_convexity_within_the_certificate(kind, boundary):
    reg = make_reg(kind, seed=5, boundary=boundary)
    cert = reg.certificate()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    top = hessian_spectral_norm(reg, x, 0.1, iters=60)
    assert 0 < top.value <= cert.lip_grad * (1 + 1e-9)
    low = hessian_min_eigenvalue(reg, x, 0.1, shift=cert.lip_grad, iters=150)
    assert -low.value <= cert.weak_convexity + 1e-9
    adv = adversarial_weak_convexity(reg, x, 0.1, steps=60, lr=5e-2)
    if kind == "crr":
        assert cert.convex and adv.value <= 1e-10
    else:
        assert adv.value <= cert.weak_convexity + 1e-9


def test_prox_optimality_and_error_bound():
    reg = make_reg("wcrr")
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 1, 16, 15, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.03, 0.15], dtype=torch.float64)
    x, info = ridge_prox(reg, y, sigma, tol=1e-9, max_iter=5000)
    assert info.converged
    lam = reg.lambda_of(sigma).view(-1, 1, 1, 1)
    res = (x - y + lam * reg.grad(x, sigma)).flatten(1).norm(dim=1) / math.sqrt(y[0].numel())
    assert (res <= 1e-9).all()
    # the error bound: a looser solve is within tol/m of the tight one
    x_loose, info2 = ridge_prox(reg, y, sigma, tol=1e-4)
    err = (x_loose - x).flatten(1).norm(dim=1) / math.sqrt(y[0].numel())
    assert (err <= torch.tensor(info2.error_bound_rms, dtype=torch.float64) + 1e-9).all()


@pytest.mark.parametrize("boundary", ["valid", "reflect", "circular"])
def test_crr_prox_is_firmly_nonexpansive_under_adversarial_pairs(boundary):
    reg = make_reg("crr", seed=1, boundary=boundary)
    den = RidgeDenoiser(reg, tol=1e-10, max_iter=5000)
    assert den.certificate.alpha == 0.5 and den.certificate.lipschitz_bound == 1.0
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64)

    class Diff(torch.nn.Module):  # the prox is solved without autograd; differentiate by unrolling
        def forward(self, y, s):
            x, _ = ridge_prox(reg, y.detach(), s, tol=1e-10, max_iter=5000)
            lam = reg.lambda_of(torch.full((y.shape[0],), float(s), dtype=y.dtype))
            # one implicit-function step: exact value, first-order exact gradient
            with torch.enable_grad():
                return x + (y - x - lam.view(-1, 1, 1, 1) * reg.grad(x, s)) / (1 + lam.view(-1, 1, 1, 1) * reg.certificate().lip_grad)

    est = adversarial_averagedness(Diff(), x0, 0.5, 0.1, steps=40, lr=5e-2, init_scale=0.2)
    assert est.value <= 1.0 + 1e-6


def test_wcrr_prox_lipschitz_within_certificate():
    reg = make_reg("wcrr", seed=2)
    den = RidgeDenoiser(reg, tol=1e-10, max_iter=5000)
    cert = den.certificate
    assert cert.alpha is None and cert.lipschitz_bound > 1.0
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 12, 12, generator=g, dtype=torch.float64)
    y = x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    dx, dy = den(x, 0.1), den(y, 0.1)
    ratio = (dx - dy).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
    assert (ratio <= cert.lipschitz_bound + 1e-6).all()


@pytest.mark.parametrize("kind", ["crr", "wcrr"])
def test_wider_spline_grid_is_the_same_regulariser(kind):
    """Same spacing, wider grid: R, grad R and the certificate are unchanged; the new splines only
    gain room (and a coarser grid is a different function, so the check can fail)."""
    reg = make_reg(kind)
    wide = reg.with_spline_grid(33, 4.0)  # spacing 0.25 as before, range 2 -> 4
    assert wide.config.spline_knots == 33 and wide.f_plus.range == 4.0
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64)
    for sigma in (0.02, 0.1):
        torch.testing.assert_close(wide.grad(x, sigma), reg.grad(x, sigma), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(wide.energy(x, sigma), reg.energy(x, sigma), rtol=1e-12, atol=1e-14)
    a, b = reg.certificate(), wide.certificate()
    assert a.lip_grad == pytest.approx(b.lip_grad, rel=1e-12) and a.weak_convexity == pytest.approx(b.weak_convexity, rel=1e-12)
    coarse = reg.with_spline_grid(5, 2.0)
    assert not torch.allclose(coarse.grad(x, 0.1), reg.grad(x, 0.1))
    # the original is untouched (dtype and values)
    assert reg.f_plus.coefficients.dtype == torch.float64


def test_save_load_round_trip_and_tampering(tmp_path):
    reg = make_reg("wcrr").float()
    path = tmp_path / "w.safetensors"
    cert = save_ridge(reg, path)
    back, meta = load_ridge(path)
    assert back.certificate() == cert
    x = torch.rand(1, 1, 14, 14)
    assert torch.equal(back.grad(x, 0.1), reg.grad(x, 0.1))
    # tampered weights: a spline slope changed -> the recomputed certificate differs
    from denoisers.checkpoint import load_checkpoint, save_checkpoint

    tensors, meta = load_checkpoint(path)
    tensors["log_kappa"] = tensors["log_kappa"] + 1.0
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, tensors, {k: v for k, v in meta.items() if k not in ("format", "version")})
    with pytest.raises(CheckpointError, match="differs"):
        load_ridge(bad)
    with pytest.raises(CheckpointError):
        load_ridge(tmp_path / "missing.safetensors") if False else load_ridge(_write(tmp_path / "junk.safetensors", b"junk"))


def test_stored_certificate_tolerates_another_cpus_round_off(tmp_path):
    """The stored certificate is compared with the recomputed one to a relative 1e-6, scaled for
    ``prox_lipschitz = 1 / (1 - lambda rho)`` by its amplification of a change of ``rho``: a
    float32 round-off of the kernel on another CPU (``rho`` ~2e-7 apart, seen across machines) is
    accepted, a change of 1e-4 is not."""
    from denoisers.checkpoint import load_checkpoint, save_checkpoint

    reg = make_reg("wcrr").float()
    path = tmp_path / "w.safetensors"
    cert = save_ridge(reg, path)
    tensors, meta = load_checkpoint(path)
    bare = {k: v for k, v in meta.items() if k not in ("format", "version")}
    lam_rho = cert.lambda_max * cert.weak_convexity
    assert 0 < lam_rho < 1
    for rel, ok in ((2e-7, True), (1e-4, False)):
        c = dict(meta["certificate"])
        rho = cert.weak_convexity * (1 + rel)
        c["weak_convexity"] = rho
        c["lip_grad"] = cert.lip_grad * (1 + rel)
        c["w_norm_bound"] = cert.w_norm_bound * (1 + rel / 2)
        c["prox_lipschitz"] = 1.0 / (1.0 - cert.lambda_max * rho)
        p = tmp_path / f"r{rel}.safetensors"
        save_checkpoint(p, tensors, {**bare, "certificate": c})
        if ok:
            load_ridge(p)
        else:
            with pytest.raises(CheckpointError, match="differs"):
                load_ridge(p)


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda reg, y: reg.grad(y, 0.0), "sigma"),
        (lambda reg, y: reg.grad(y, -0.1), "sigma"),
        (lambda reg, y: reg.grad(y, float("nan")), "sigma"),
        (lambda reg, y: ridge_prox(reg, y * float("nan"), 0.1), "y contains NaN"),
        (lambda reg, y: ridge_prox(reg, y, 0.1, lam_scale=0.0), "lam_scale"),
        (lambda reg, y: ridge_prox(reg, y, 0.1, tol=-1.0), "tol"),
        (lambda reg, y: ridge_prox(reg, y[0], 0.1), r"\[B, C, H, W\]"),
        (lambda reg, y: reg.grad(y[..., :3, :3], 0.1), "at least"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(call, match):
    reg = make_reg("crr")
    y = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    with pytest.raises((ValueError, TypeError), match=match):
        call(reg, y)


def test_colour_and_batch_sigma_contract():
    reg = make_reg("crr")
    den = RidgeDenoiser(reg, tol=1e-8)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)
    y0 = y.clone()
    out = den(y, torch.tensor([0.05, 0.1], dtype=torch.float64))
    assert torch.equal(y, y0) and out.shape == y.shape
    # channels are independent: denoising one channel alone gives the same result
    single = den(y[1:2, 2:3], 0.1)
    assert torch.allclose(single, out[1:2, 2:3], atol=1e-6)


# ---- boundary="reflect": R(P x), P the reflection extension --------------------------------------
@pytest.mark.parametrize("size", [(6, 6), (7, 9), (16, 15)])
def test_reflect_boundary_adjoint_and_norm(size):
    """``P^T`` (the fold of the reflected bands) is the adjoint of ``P`` (F.pad, mode reflect), and
    ``||P||^2 = max multiplicity = 4``, the factor the certificate puts into ``Lip(grad R)``; the
    certificate's ``Lip(grad R)`` is 4 times the valid boundary's, and both round-trip through
    save/load."""
    import torch.nn.functional as F

    reg = make_reg("crr", boundary="reflect")
    p = reg.conv.size // 2
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 1, *size, generator=g, dtype=torch.float64)
    u = torch.randn(2, 1, size[0] + 2 * p, size[1] + 2 * p, generator=g, dtype=torch.float64)
    lhs = (F.pad(x, (p, p, p, p), mode="reflect") * u).sum()
    rhs = (x * reg._unpad_adjoint(u)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12)
    ones = torch.ones(1, 1, *size, dtype=torch.float64)
    assert float(reg._unpad_adjoint(F.pad(ones, (p, p, p, p), mode="reflect")).max()) == 4.0
    valid = reg.with_boundary("valid")
    assert reg.certificate().lip_grad == pytest.approx(4.0 * valid.certificate().lip_grad, rel=1e-12)
    assert reg.certificate().boundary == "reflect" and valid.certificate().boundary == "valid"


def test_reflect_boundary_round_trip_and_refusals(tmp_path):
    reg = make_reg("crr", boundary="reflect").float()
    path = tmp_path / "r.safetensors"
    cert = save_ridge(reg, path)
    back, _ = load_ridge(path)
    assert back.config.boundary == "reflect" and back.certificate() == cert
    x = torch.rand(1, 1, 10, 11)
    assert torch.equal(back.grad(x, 0.1), reg.grad(x, 0.1))
    with pytest.raises(ValueError, match="crr only"):
        RidgeConfig(kind="wcrr", boundary="reflect")
    with pytest.raises(ValueError, match="boundary must be one of"):
        RidgeConfig(kind="crr", boundary="replicate")
    with pytest.raises(ValueError, match="at least 6x6"):  # composed size 5: reflect needs 5 + 1
        reg.grad(torch.rand(1, 1, 5, 8), 0.1)
    reg.with_boundary("valid").grad(torch.rand(1, 1, 5, 8), 0.1)  # valid: the filter size is enough


def test_reflect_boundary_regularises_the_border_band():
    """With valid windows a corner pixel lies in a single window; with the reflection it lies in as
    many as an interior pixel: an isolated spike at the corner gets a far larger gradient."""
    reg = make_reg("crr", boundary="reflect")
    x = torch.zeros(1, 1, 12, 12, dtype=torch.float64)
    x[..., 0, 0] = 1.0
    g_reflect = reg.grad(x, 0.1)[..., 0, 0].abs().item()
    g_valid = reg.with_boundary("valid").grad(x, 0.1)[..., 0, 0].abs().item()
    assert g_reflect > 2.0 * g_valid


# ---- boundary="circular": W a circular convolution on the image's torus ---------------------------
@pytest.mark.parametrize("size", [(9, 9), (10, 13)])
def test_circular_boundary_adjoint_norm_and_equivariance(size):
    """``P^T`` (the wrapped fold) is the adjoint of the periodic extension; ``W P`` is the circular
    convolution, whose exact norm (a DFT maximum) is within the certified ``||W||``; R is invariant
    under cyclic shifts of the image."""
    reg = make_reg("crr", boundary="circular")
    p = reg.conv.size // 2
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 1, *size, generator=g, dtype=torch.float64)
    kern = reg.kernel().detach()
    spec = MultiConv.torus_spectrum(kern, size)
    # the FFT on the torus is the correlation with the circularly padded image, and its adjoint
    wx = MultiConv.apply_circular(spec, x)
    torch.testing.assert_close(wx, MultiConv.apply(kern, F.pad(x, (p, p, p, p), mode="circular")), rtol=0, atol=1e-12)
    v = torch.randn(wx.shape, generator=g, dtype=torch.float64)
    assert float((wx * v).sum()) == pytest.approx(float((x * MultiConv.apply_circular_adjoint(spec, v)).sum()), rel=1e-12)
    # exact norm of x -> W P x, materialised, against the certified bound (the same as valid windows)
    n = size[0] * size[1]
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, *size)
    cols = MultiConv.apply(kern, F.pad(eye, (p, p, p, p), mode="circular")).reshape(n, -1)
    exact = float(torch.linalg.matrix_norm(cols, ord=2))
    cert = reg.certificate()
    assert cert.boundary == "circular"
    assert exact <= cert.w_norm_bound * (1 + 1e-12)
    assert cert.lip_grad == pytest.approx(make_reg("crr").certificate().lip_grad)  # no boundary factor
    y = torch.rand(1, 1, *size, generator=g, dtype=torch.float64)
    shifted = torch.roll(y, shifts=(3, -2), dims=(-2, -1))
    with torch.no_grad():
        assert float(reg.energy(shifted, 0.1)) == pytest.approx(float(reg.energy(y, 0.1)), rel=1e-10)
    torch.testing.assert_close(reg.grad(shifted, 0.1), torch.roll(reg.grad(y, 0.1), shifts=(3, -2), dims=(-2, -1)))


@pytest.mark.parametrize("kind", ["crr", "wcrr"])
def test_circular_energy_and_grad_agree_with_autograd_and_track_the_kernel(kind):
    """The torus path: ``energy_and_grad`` (CRR: one spline look-up for psi and psi') equals
    ``energy``/``grad`` and autograd; the cached kernel spectrum follows a kernel changed in place
    or replaced."""
    reg = make_reg(kind, boundary="circular")
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 15, 14, generator=g, dtype=torch.float64)
    kern = reg.kernel().detach()
    with torch.no_grad():
        e, gr = reg.energy_and_grad(x, 0.1, kernel=kern)
        torch.testing.assert_close(e, reg.energy(x, 0.1, kernel=kern))
        torch.testing.assert_close(gr, reg.grad(x, 0.1, kernel=kern))
    xa = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(reg.energy(xa, 0.1).sum(), xa)
    torch.testing.assert_close(gr, auto)
    with torch.no_grad():
        kern.mul_(0.5)  # in place: the spectrum must be recomputed
        torch.testing.assert_close(reg.grad(x, 0.1, kernel=kern), reg.grad(x, 0.1, kernel=kern.clone()))
        assert not torch.allclose(reg.grad(x, 0.1, kernel=kern), gr)


def test_circular_boundary_is_allowed_for_wcrr_and_round_trips(tmp_path):
    reg = make_reg("wcrr", boundary="circular").float()
    cert = reg.certificate()
    assert cert.weak_convexity == make_reg("wcrr").float().certificate().weak_convexity
    path = tmp_path / "w.safetensors"
    save_ridge(reg, path)
    back, _ = load_ridge(path)
    assert back.config.boundary == "circular" and back.certificate() == cert


# ------------------------------------------------------------------ per-filter conditioning
def make_conditioned(kind: str, seed: int = 0, boundary: str = "valid") -> RidgeRegularizer:
    """``make_reg`` with per-filter weights and widths, randomised (weights spread over ~e^-2)."""
    reg = make_reg(kind, seed=seed, boundary=boundary).with_channel_conditioning()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        reg.chan_w.values.copy_(torch.randn(reg.chan_w.values.shape, generator=g, dtype=torch.float64))
        reg.chan_mu.values.copy_(0.5 * torch.randn(reg.chan_mu.values.shape, generator=g, dtype=torch.float64))
    return reg


def test_log_sigma_spline_rows_are_the_scalar_functions():
    from denoisers.ridge.noise import LogSigmaSpline

    g = torch.Generator().manual_seed(0)
    vals = torch.randn(3, 6, generator=g, dtype=torch.float64)
    many = LogSigmaSpline(vals, sigma_min=1 / 255, sigma_max=60 / 255).double()
    sigma = torch.tensor([0.5 / 255, 2 / 255, 25 / 255, 0.3], dtype=torch.float64)
    out = many(sigma)
    assert out.shape == (4, 3)
    for c in range(3):
        one = LogSigmaSpline(vals[c], sigma_min=1 / 255, sigma_max=60 / 255).double()
        assert torch.allclose(out[:, c], one(sigma), atol=1e-15)
    with pytest.raises(ValueError, match="values"):
        LogSigmaSpline(torch.zeros(2, 2, 3), sigma_min=0.1, sigma_max=0.2)


@pytest.mark.parametrize("kind, boundary", [("crr", "valid"), ("crr", "circular"), ("wcrr", "valid")])
def test_channel_conditioning_added_at_zero_is_the_same_regulariser(kind, boundary):
    reg = make_reg(kind, seed=4, boundary=boundary)
    new = reg.with_channel_conditioning()
    assert new.config.channel_conditioning and not reg.config.channel_conditioning
    x = torch.rand(2, 1, 14, 15, dtype=torch.float64)
    sigma = torch.tensor([0.02, 0.2], dtype=torch.float64)
    assert torch.equal(new.energy(x, sigma), reg.energy(x, sigma))
    assert torch.equal(new.grad(x, sigma), reg.grad(x, sigma))
    import dataclasses

    c_new, c_old = new.certificate(), reg.certificate()
    assert "Per-filter weights" in c_new.notes
    assert dataclasses.replace(c_new, notes="") == dataclasses.replace(c_old, notes="")  # every constant equal


@pytest.mark.parametrize("kind, boundary", [("crr", "circular"), ("crr", "reflect"), ("wcrr", "valid")])
def test_channel_conditioned_gradient_and_curvature_within_the_certificate(kind, boundary):
    reg = make_conditioned(kind, seed=6, boundary=boundary)
    sigma = torch.tensor([0.05, 0.1], dtype=torch.float64)
    w = reg.channel_weights(sigma)
    assert w.shape == (2, reg.conv.out_channels) and (w > 0).all() and (w.max(1).values == 1).all()
    assert w.min() < 0.5  # the weights really differ across filters
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 1, 12, 13, generator=g, dtype=torch.float64)
    assert_gradient_matches(reg, x, sigma, g)
    # curvature: the certificate (computed without the weights) still bounds the Hessian
    cert = reg.certificate()
    x1 = x[:1]
    top = hessian_spectral_norm(reg, x1, 0.1, iters=60)
    assert 0 < top.value <= cert.lip_grad * (1 + 1e-9)
    low = hessian_min_eigenvalue(reg, x1, 0.1, shift=cert.lip_grad, iters=150)
    assert -low.value <= cert.weak_convexity + 1e-9
    adv = adversarial_weak_convexity(reg, x1, 0.1, steps=60, lr=5e-2)
    assert adv.value <= (1e-10 if kind == "crr" else cert.weak_convexity + 1e-9)


def test_channel_conditioned_crr_prox_is_firmly_nonexpansive_and_round_trips(tmp_path):
    reg = make_conditioned("crr", seed=1, boundary="circular")
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64)

    class Diff(torch.nn.Module):
        def forward(self, y, s):
            x, _ = ridge_prox(reg, y.detach(), s, tol=1e-10, max_iter=5000)
            lam = reg.lambda_of(torch.full((y.shape[0],), float(s), dtype=y.dtype)).view(-1, 1, 1, 1)
            with torch.enable_grad():
                return x + (y - x - lam * reg.grad(x, s)) / (1 + lam * reg.certificate().lip_grad)

    est = adversarial_averagedness(Diff(), x0, 0.5, 0.1, steps=40, lr=5e-2, init_scale=0.2)
    assert est.value <= 1.0 + 1e-6
    path = tmp_path / "c.safetensors"
    cert = save_ridge(reg.float(), path)
    back, _ = load_ridge(path)
    assert back.config.channel_conditioning and back.certificate() == cert
    y = torch.rand(1, 1, 14, 14)
    assert torch.equal(back.grad(y, 0.07), reg.grad(y, 0.07))


@pytest.mark.parametrize("boundary, conditioned", [("valid", False), ("circular", True)])
def test_crr_as_wcrr_is_the_same_prior_at_the_knots(boundary, conditioned):
    """``as_wcrr``: the crr is the wcrr with ``f- = 0``; ``lambda R`` and its gradient agree at the knots of
    ``lambda(sigma)``, ``sup lambda`` is the requested one, ``lambda Lip(grad R)`` is kept and ``rho = 0``."""
    reg = make_conditioned("crr", seed=2, boundary=boundary) if conditioned else make_reg("crr", seed=2, boundary=boundary)
    with torch.no_grad():
        reg.lam.values.copy_(torch.linspace(0.5, 4.0, reg.lam.values.numel(), dtype=torch.float64))  # lambda up to e^4
    w = reg.as_wcrr(0.4)
    assert w.kind == "wcrr" and w.config.channel_conditioning == conditioned and w.config.boundary == boundary
    cert_c, cert_w = reg.certificate(), w.certificate()
    assert cert_w.weak_convexity == 0.0 and math.isclose(cert_w.lambda_max, 0.4, rel_tol=1e-12)
    assert math.isclose(cert_w.lambda_max * cert_w.lip_grad, cert_c.lambda_max * cert_c.lip_grad, rel_tol=1e-9)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 1, 13, 12, generator=g, dtype=torch.float64)
    for s in reg.lam.knots.tolist():
        sv = torch.full((2,), s, dtype=torch.float64)
        lc, lw = reg.lambda_of(sv)[0], w.lambda_of(sv)[0]
        assert torch.allclose(lw * w.grad(x, s), lc * reg.grad(x, s), rtol=1e-9, atol=1e-12)
        assert torch.allclose(lw * w.energy(x, s), lc * reg.energy(x, s), rtol=1e-9)
    # between the knots the two differ only through the interpolation of lambda: same x-dependence
    s = 0.5 * (reg.lam.knots[2] + reg.lam.knots[3]).item()
    ratio = (w.grad(x, s) / reg.grad(x, s))[reg.grad(x, s).abs() > 1e-8]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-9)
    # the weakly convex part trains from zero: a gradient reaches f-
    w.energy(x, 0.05).sum().backward()
    assert w.f_minus.coefficients.grad is not None


def test_as_wcrr_refusals():
    with pytest.raises(ValueError, match="converts a crr"):
        make_reg("wcrr").as_wcrr()
    with pytest.raises(ValueError, match="lambda_max"):
        make_reg("crr").as_wcrr(0.99)
    with pytest.raises(ValueError, match="reflect"):
        make_reg("crr", boundary="reflect").as_wcrr()


def make_minus_scaled(seed: int = 0, log_nu: float = 1.2) -> RidgeRegularizer:
    """A wcrr whose weakly convex part has its own width ``nu`` (``minus_scale``), generic splines."""
    reg = make_reg("wcrr", seed=seed, minus_scale=True)
    with torch.no_grad():
        reg.log_kappa.fill_(0.8)
        reg.log_nu.fill_(log_nu)
    return reg


def test_minus_scale_at_one_is_the_model_without_it():
    reg = make_reg("wcrr", seed=3)
    cfg = RidgeConfig(kind="wcrr", minus_scale=True, **SMALL)
    new = RidgeRegularizer(cfg).double()
    missing, unexpected = new.load_state_dict(reg.state_dict(), strict=False)
    assert missing == ["log_nu"] and not unexpected
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    assert torch.equal(new.energy(x, 0.1), reg.energy(x, 0.1)) and torch.equal(new.grad(x, 0.1), reg.grad(x, 0.1))
    assert new.certificate() == reg.certificate()
    with pytest.raises(ValueError, match="minus_scale"):
        RidgeConfig(kind="crr", minus_scale=True)


@pytest.mark.parametrize("log_nu", [1.2, -0.7])
def test_minus_scaled_gradient_and_curvature_within_the_certificate(log_nu, tmp_path):
    reg = make_minus_scaled(seed=7, log_nu=log_nu)
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 1, 12, 13, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.1], dtype=torch.float64)
    assert_gradient_matches(reg, x, sigma, g)  # the exact integral over the knots {t/kappa} U {t/nu}
    cert = reg.certificate()
    x1 = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    top = hessian_spectral_norm(reg, x1, 0.1, iters=60)
    assert 0 < top.value <= cert.lip_grad * (1 + 1e-9)
    low = hessian_min_eigenvalue(reg, x1, 0.1, shift=cert.lip_grad, iters=150)
    assert -low.value <= cert.weak_convexity + 1e-9
    adv = adversarial_weak_convexity(reg, x1, 0.1, steps=60, lr=5e-2)
    assert adv.value <= cert.weak_convexity + 1e-9
    path = tmp_path / "w.safetensors"
    save_ridge(reg.float(), path)
    back, _ = load_ridge(path)
    assert back.config.minus_scale and torch.equal(back.log_nu, reg.float().log_nu)


@pytest.mark.parametrize("log_nu", [None, 1.2, -0.7])
def test_wcrr_profile_is_the_integral_of_its_derivative_and_differentiable_in_the_parameters(log_nu):
    """The merged-knot tables (one look-up for ``psi`` and ``psi'``) against ``max(0, g)`` from the two
    spline look-ups and the trapezoid rule over it, beyond the last knot too; and d energy / d parameters
    (``kappa``, ``nu``, ``mu(sigma)``) against central finite differences (not in the spline coefficients:
    their projection onto the slope constraints has kinks at the feasible point)."""
    reg = make_reg("wcrr", seed=4) if log_nu is None else make_minus_scaled(seed=4, log_nu=log_nu)
    c = reg.f_plus.channels
    mu = torch.tensor(1.3, dtype=torch.float64).view(1, 1, 1, 1)
    u = torch.linspace(-4.0, 4.0, 40001, dtype=torch.float64).view(1, 1, -1, 1).expand(1, c, -1, 1).contiguous()
    with torch.no_grad():
        p, dp = reg.psi_and_prime(u, mu)
        a = mu * u
        ref_dp = torch.sign(a) * reg._g(a.abs()).clamp_min(0.0) / mu
    assert torch.allclose(dp, ref_dp, atol=1e-12) and torch.allclose(reg.psi_prime(u, mu), ref_dp, atol=1e-12)
    assert torch.allclose(p, reg.psi(u, mu), atol=1e-12)
    mid = u.shape[2] // 2
    assert p[:, :, mid].abs().max() <= 1e-20  # psi(0) = 0 (u there is 0 up to linspace round-off)
    quad = torch.cumulative_trapezoid(ref_dp[0, :, mid:, 0], u[0, :, mid:, 0], dim=1)
    assert torch.allclose(p[0, :, mid + 1 :, 0], quad, atol=1e-6)
    # parameter gradients of the energy (the tables' knots are detached: exact, as g is linear on each piece)
    g = torch.Generator().manual_seed(9)
    x = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64) * 3
    params = [reg.log_kappa, reg.mu.values] + ([] if log_nu is None else [reg.log_nu])
    energy = reg.energy_and_grad(x, 0.1)[0].sum()
    auto = torch.autograd.grad(energy, params)
    for prm, a in zip(params, auto):
        d = torch.randn(prm.shape, generator=g, dtype=torch.float64)
        h = 1e-6
        with torch.no_grad():
            prm.add_(h * d)
            ep = reg.energy(x, 0.1).sum()
            prm.sub_(2 * h * d)
            em = reg.energy(x, 0.1).sum()
            prm.add_(h * d)
        fd = (ep - em) / (2 * h)
        assert torch.allclose(fd, (a * d).sum(), rtol=1e-5, atol=1e-9), (prm.shape, fd, (a * d).sum())
