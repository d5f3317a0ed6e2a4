"""One-call Python API for the common case: ``pnp.deblur(y, kernel, noise_level=...)``.

The lower-level solver classes (:mod:`pnp.solvers`) stay available for full control.

Default parameter rule
----------------------
With ``A`` the circular blur (:class:`operators.FFTBlur`, exact ``||A||``; with
``boundary="valid"``/``"reflect"``/``"replicate"`` the same rule uses its certified upper bound):

* ``gamma = 1 / ||A||^2`` for every solver (FBS's mid-range step; for HQS/ADMM it is the prox
  parameter), except learned denoisers inside FBS: ``gamma = LEARNED_FBS_GAMMA_SCALE / ||A||^2``
  (1.95, still below the ``2 / ||A||^2`` that the FBS guarantee needs).
* For the classical denoisers, which are ``D(x, sigma) = prox_{sigma^2 R}`` with
  ``R = w * TV`` or ``R = (w/2)||grad x||^2`` (:mod:`denoisers.classical`), the FBS/ADMM fixed
  point minimises ``1/2 ||Ax - y||^2 + lambda_eff * TV-or-quadratic(x)`` with
  ``lambda_eff = sigma^2 w / gamma``. The rule picks ``lambda_eff`` from the noise level ``nu``
  (values chosen on a 128x128 camera image, Gaussian 9x9 std 1.6 and a 15x15 motion kernel,
  noise 0.01 and 0.05, PnP-FBS 80 iterations; see :data:`TV_LAMBDA_PER_NOISE`,
  :data:`QUADRATIC_LAMBDA_PER_NOISE`) and sets ``sigma = sqrt(lambda_eff * gamma / w)``:

  - TV: ``lambda_eff = TV_LAMBDA_PER_NOISE * nu``;
  - quadratic: ``lambda_eff = QUADRATIC_LAMBDA_PER_NOISE * nu``.

* For any other (e.g. learned, certified) denoiser: inside FBS
  ``sigma = learned_fbs_sigma_factor(nu) * nu`` (the factors calibrated for the shipped family,
  :data:`LEARNED_FBS_SIGMA_PER_NOISE`), inside HQS/ADMM ``sigma = LEARNED_SIGMA_PER_NOISE * nu``
  (ADMM with a firmly non-expansive zoo member ``rk-firm-*``: :data:`FIRM_ADMM_RULE`),
  with ``nu = max(noise_level, 1e-3)`` (see the constants for how they were chosen).

``noise_level = 0`` is floored at ``1e-3`` in the rule. ``denoiser="tv"`` by name runs the TV
prox with :data:`PNP_TV_INNER_ITERATIONS` warm-started inner iterations per call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from torch import Tensor

from pnp.solvers import PnPADMM, PnPFBS, PnPHQS, SolverResult

__all__ = [
    "FIRM_ADMM_RULE",
    "LEARNED_FBS_GAMMA_SCALE",
    "LEARNED_FBS_SIGMA_PER_NOISE",
    "LEARNED_SIGMA_PER_NOISE",
    "QUADRATIC_LAMBDA_PER_NOISE",
    "SOLVERS",
    "PNP_TV_INNER_ITERATIONS",
    "TV_LAMBDA_PER_NOISE",
    "available_denoisers",
    "deblur",
    "default_acceleration",
    "default_parameters",
    "get_denoiser",
    "make_blur",
]

#: ``lambda_eff / noise_level`` for the TV denoiser (fixed-point objective weight of TV).
TV_LAMBDA_PER_NOISE = 0.25
#: ``lambda_eff / noise_level`` for the quadratic-gradient denoiser.
QUADRATIC_LAMBDA_PER_NOISE = 2.0

#: ``sigma / noise_level`` for learned (zoo) denoisers inside HQS/ADMM (inside FBS:
#: :data:`LEARNED_FBS_SIGMA_PER_NOISE`, which replaced it there), and (FBS only) the step
#: ``gamma = LEARNED_FBS_GAMMA_SCALE / ||A||^2``. Chosen by ``pnp bench calibrate`` on development
#: images (train400 test_001/test_002, kernels levin:0 and gaussian:25:1.6, noise 7.65/255, 100
#: FBS iterations) for a certified 110,976-parameter RK network: the grid scale x {1, 1.5, 2, 3, 4}
#: and gamma x {1, 1.5, 1.95} gave the best mean PSNR at scale 2, gamma 1.95 (29.90 dB, against
#: 29.62 at gamma 1). Any gamma < 2 / ||A||^2 keeps the FBS guarantee with an averaged denoiser.
#: On the README demo (not used to choose) factor 2 gave 28.76 dB against 27.07 for the earlier rule
#: (sigma = 4 nu, gamma = 1 / ||A||^2); the calibrated FBS factors give 28.90 dB.
LEARNED_SIGMA_PER_NOISE = 2.0
LEARNED_FBS_GAMMA_SCALE = 1.95

#: ``(nu, sigma / nu)`` for learned denoisers inside FBS (with ``gamma = 1.95 / ||A||^2``): the rule
#: of the ``levin10-cal2`` protocol, calibrated for the shipped family ``rk-averaged`` by
#: ``pnp bench calibrate`` on development images only (train400 test_001/test_002; kernels levin:0,
#: uniform:9, gaussian:25:1.6; 100 iterations; factors 0.5 to 3): 1.5 at 2.55/255 (31.28 dB against
#: 31.15 for the former factor 2), 1 at 7.65/255 (30.02 against 29.78) and at 12.75/255 (29.47
#: against 29.28). Between the levels the factor is interpolated linearly in ``log nu``; outside
#: them it is held at the nearest one.
LEARNED_FBS_SIGMA_PER_NOISE: tuple[tuple[float, float], ...] = ((2.55 / 255, 1.5), (7.65 / 255, 1.0), (12.75 / 255, 1.0))


def learned_fbs_sigma_factor(noise_level: float) -> float:
    """``sigma / nu`` for a learned denoiser inside FBS at noise level ``nu``
    (:data:`LEARNED_FBS_SIGMA_PER_NOISE`, log-linear in between, constant outside).

    >>> learned_fbs_sigma_factor(7.65 / 255)
    1.0
    """
    nu = float(noise_level)
    if not (math.isfinite(nu) and nu > 0):
        raise ValueError(f"noise_level must be finite and > 0, got {noise_level!r}")
    pts = LEARNED_FBS_SIGMA_PER_NOISE
    if nu <= pts[0][0]:
        return pts[0][1]
    for (n0, f0), (n1, f1) in zip(pts, pts[1:]):
        if nu <= n1:
            t = math.log(nu / n0) / math.log(n1 / n0)
            return f0 + t * (f1 - f0)
    return pts[-1][1]

#: Inner Chambolle-Pock iterations per TV call inside ``deblur`` (warm-started from the previous
#: call, so the inner solve keeps converging along the outer iterations). On the 256x256 demo
#: (Gaussian 25x25 std 1.6, noise 0.01, FBS, tol 1e-4) 30 gave the same PSNR as 200 (28.36 dB)
#: and converged in 93 outer iterations, about 4x faster.
PNP_TV_INNER_ITERATIONS = 30

SOLVERS: dict[str, type] = {"fbs": PnPFBS, "hqs": PnPHQS, "admm": PnPADMM}
#: every ``solver`` that :func:`deblur` accepts: the PnP solvers, the direct minimisation of an
#: explicit ridge prior, and ``"auto"`` (variational for a ridge prior, else FBS)
SOLVER_CHOICES = ("auto", *SOLVERS, "variational")

#: ``(sigma / nu, lambda multiplier)`` of the variational solver with a ridge prior at noise level
#: ``nu``: the prior is evaluated at ``sigma`` and weighted by ``multiplier * lambda(sigma)``. Chosen by
#: ``pnp bench calibrate`` on a development image (train400 test_001; kernels levin:0, uniform:9,
#: gaussian:25:1.6; factors 0.25/0.5/1/2; the ``levin10-cal4`` protocol's header has the commands):
#: crr 1 at 7.65/255 (27.55 dB) and 12.75/255 (26.95 dB), wcrr 0.5 at 7.65/255 (27.57 dB; the former wcrr weights).
#: ``crr-circular`` (the crr weights on the image's torus, zoo name ``crr-circular``): a 2-D search
#: over factors 0.71/1/1.41 and multipliers 0.5/1/2 on test_001 (levin:0, gaussian:25:1.6,
#: 7.65/255) put the optimum at 0.71 and 0.5 (28.20 dB against 27.84 for 1 and 1; the
#: ``levin10-cal5`` protocol's header has the command). The shipped ``wcrr`` is the crr on the torus
#: turned weakly convex (``RidgeRegularizer.as_wcrr``: the same ``lambda R`` at the knots of
#: ``lambda(sigma)``), so it takes ``crr-circular``'s rule (the ``levin10-cal9`` protocol), not re-scanned.
RIDGE_VARIATIONAL_RULE: dict[str, tuple[float, float]] = {
    "crr": (1.0, 1.0), "crr-circular": (0.7071, 0.5), "wcrr": (0.7071, 0.5),
}

#: ``(sigma / nu, gamma ||A||^2)`` of PnP-ADMM with a shipped firmly non-expansive network (zoo names
#: ``rk-firm-*``, alpha <= 1/2, so the ADMM/DRS guarantee holds). Chosen by ``pnp bench calibrate`` on
#: development images only (train400 test_001/test_002; kernels levin:0, uniform:9, gaussian:25:1.6;
#: 7.65/255, 300 iterations; sigma factors 1/1.5/2/3, gamma factors 0.5/1/2) for ``rk-firm-s10``: 29.97 dB
#: at sigma = nu, gamma = 2/||A||^2 (the grid's corner; 29.95 at gamma 1, 29.89 at sigma 2 nu, gamma 2),
#: against 29.72 for the generic rule (sigma 2 nu, gamma 1). The ``levin10-cal7`` protocol's header has the
#: command. Re-scanned for ``rk-firm-ps2-s10`` (sigma factors 0.7071/1, gamma 2/4): the same cell was the best
#: (30.03 dB; 29.85 at sigma 0.7071 nu, 29.32 at gamma 4; ``levin10-cal8``).
FIRM_ADMM_RULE: tuple[float, float] = (1.0, 2.0)

_NOISE_FLOOR = 1e-3


def available_denoisers() -> list[str]:
    """Names accepted by :func:`get_denoiser` (besides checkpoint paths and ``py:MODULE:CALLABLE``):
    ``"tv"``, ``"quadratic"``, ``"bm3d"`` and the zoo's names (:func:`pnp.resolve.known_denoisers`)."""
    from pnp.resolve import known_denoisers

    return known_denoisers()


def get_denoiser(name: str) -> Callable[..., Tensor]:
    """The denoiser that ``name`` stands for: ``"tv"`` (:class:`denoisers.TVDenoiser`),
    ``"quadratic"`` (:class:`denoisers.QuadraticProxDenoiser`), ``"bm3d"``, a zoo name, a
    checkpoint path or ``py:MODULE:CALLABLE``; resolved by :func:`pnp.resolve.resolve_denoiser`
    (the one resolver of every entry point), whose errors it raises."""
    from pnp.resolve import resolve_denoiser

    return resolve_denoiser(name, argument="denoiser")


def make_blur(kernel: Any, *, image_shape: tuple[int, ...] | None = None, name: str = "kernel",
              boundary: str = "circular") -> Any:
    """An :class:`operators.FFTBlur` from a tensor/array kernel or a ``load_kernel`` spec, checked
    by :func:`pnp.validate.check_kernel` (finite, no negative or zero mass, no larger than
    ``image_shape`` when given; normalised to sum 1 with a ``KernelWarning`` if needed), with the
    given ``boundary`` (``"circular"``, ``"valid"``, ``"reflect"``, ``"replicate"``)."""
    from operators import FFTBlur

    from pnp.validate import check_kernel

    return FFTBlur(check_kernel(kernel, name=name, image_shape=image_shape), boundary=boundary)


def default_parameters(
    noise_level: float, *, denoiser: Any, opnorm: float, solver: str = "fbs"
) -> tuple[float, float]:
    """``(sigma, gamma)`` from the rule in this module's docstring (``solver``: fbs, hqs, admm)."""
    nu = max(float(noise_level), _NOISE_FLOOR)
    gamma = 1.0 / float(opnorm) ** 2
    from denoisers.classical import QuadraticProxDenoiser, TVDenoiser

    if isinstance(denoiser, TVDenoiser):
        lam = TV_LAMBDA_PER_NOISE * nu
        return math.sqrt(lam * gamma / denoiser.weight), gamma
    if isinstance(denoiser, QuadraticProxDenoiser):
        lam = QUADRATIC_LAMBDA_PER_NOISE * nu
        return math.sqrt(lam * gamma / denoiser.weight), gamma
    kind = _ridge_kind(denoiser)
    if str(solver).lower() == "variational":
        if kind is None:
            raise ValueError("solver 'variational' needs a ridge prior (denoiser 'crr' or 'wcrr')")
        factor, mult = RIDGE_VARIATIONAL_RULE[_ridge_rule_key(denoiser)]
        return factor * nu, mult
    if kind is not None:
        # the prox of lambda(s) R inside FBS / ADMM with step gamma: their fixed points minimise
        # 1/2||Ax - y||^2 + lambda(s) R(x, s) / (gamma ||A||^2), the variational objective (with the
        # rule's multiplier m) at gamma = 1 / (m ||A||^2); FBS keeps gamma = 1/||A||^2 (its step bound
        # is 2/||A||^2), so there m = 1
        factor, mult = RIDGE_VARIATIONAL_RULE[_ridge_rule_key(denoiser)]
        return factor * nu, (gamma if str(solver).lower() == "fbs" else gamma / mult)
    if str(solver).lower() == "fbs":
        return learned_fbs_sigma_factor(nu) * nu, LEARNED_FBS_GAMMA_SCALE * gamma
    if str(solver).lower() == "admm" and _is_firm_member(denoiser):
        factor, gscale = FIRM_ADMM_RULE
        return factor * nu, gscale * gamma
    return LEARNED_SIGMA_PER_NOISE * nu, gamma


def _ridge_rule_key(denoiser: Any) -> str:
    """The :data:`RIDGE_VARIATIONAL_RULE` key of a ridge prior: ``"<kind>-<boundary>"`` when the rule
    has one for the prior's boundary (``crr-circular``), else its kind."""
    reg = denoiser.reg
    key = f"{reg.kind}-{getattr(reg.config, 'boundary', '')}"
    return key if key in RIDGE_VARIATIONAL_RULE else reg.kind


def _is_firm_member(denoiser: Any) -> bool:
    """Whether ``denoiser`` is a shipped firmly non-expansive network (zoo name ``rk-firm-*``)."""
    from denoisers.zoo import FIRM_PREFIX

    meta = getattr(denoiser, "metadata", None)
    name = meta.get("name") if isinstance(meta, dict) else None
    return isinstance(name, str) and name.startswith(FIRM_PREFIX)


def _ridge_kind(denoiser: Any) -> str | None:
    """``"crr"`` / ``"wcrr"`` when ``denoiser`` is the prox of a ridge regulariser, else ``None``."""
    from denoisers.ridge.model import RIDGE_KINDS

    reg = getattr(denoiser, "reg", None)
    kind = getattr(reg, "kind", None)
    return kind if kind in RIDGE_KINDS else None


def default_acceleration(denoiser: Any) -> str:
    """``"anderson"`` for learned denoisers, ``"none"`` for the classical TV and quadratic ones.

    Measured side by side (BENCHMARKS.md, issue 16, ``pnp bench accel``): with the shipped family
    Anderson cut the iterations to tol 1e-5 about threefold and the wall time alike, the limits
    agreeing within 0.01 dB; TV's inexact, warm-started inner solver costs more per iteration
    after Anderson's jumps, so TV took longer, and the quadratic prox is so cheap that the
    Anderson bookkeeping dominates.
    """
    from denoisers.classical import QuadraticProxDenoiser, TVDenoiser

    return "none" if isinstance(denoiser, (TVDenoiser, QuadraticProxDenoiser)) else "anderson"


def deblur(
    y: Tensor,
    kernel: Any,
    *,
    noise_level: float,
    denoiser: str | Callable[..., Tensor] = "tv",
    solver: str = "auto",
    sigma: float | None = None,
    gamma: float | None = None,
    max_iter: int = 200,
    tol: float = 1e-5,
    x0: Tensor | None = None,
    x_true: Tensor | None = None,
    progress: bool = False,
    boundary: str = "circular",
    acceleration: str = "auto",
    anderson_memory: int = 5,
) -> SolverResult:
    """Deblur ``y`` (``[B, C, H, W]``, circular blur by ``kernel`` plus Gaussian noise of std
    ``noise_level``) with a PnP solver; returns the :class:`~pnp.solvers.SolverResult`.

    ``kernel``: a 2-D tensor/array or a spec for :func:`operators.load_kernel`
    (``"gaussian:25:1.6"``, ``"levin:0"``, a file path). ``denoiser``: a name
    (:func:`available_denoisers`), a checkpoint path (``"weights/my.safetensors"``, written by
    ``pnp train``), ``"py:MODULE:CALLABLE"`` or a ``denoiser(x, sigma)`` callable. ``solver``: ``"fbs"``,
    ``"hqs"``, ``"admm"``, ``"variational"`` (ridge priors ``"crr"``/``"wcrr"`` only: minimises
    ``1/2 ||Ax - y||^2 + lambda R(x)`` directly, :class:`pnp.solvers.VariationalRidge`) or ``"auto"``
    (default: variational for a ridge prior, which gives the strongest guarantee, else FBS).
    ``sigma``/``gamma``: override the default rule (module docstring); with the variational solver
    ``sigma`` is the prior's noise level and ``gamma`` the multiplier of ``lambda(sigma)``.

    Inputs are checked by :mod:`pnp.validate` (the command line's checks): ``TypeError`` for the
    wrong kind of object (an array or an integer tensor for ``y``), ``ValueError`` for a wrong
    value (NaN/Inf, an image outside the ``[0, 1]`` scale, ``noise_level`` outside ``[0, 1]``, a
    kernel with negative or zero mass or larger than the image); denoiser names go through
    :func:`pnp.resolve.resolve_denoiser` and raise its errors.

    ``boundary``: the blur model (:class:`operators.FFTBlur`). ``"circular"`` (default) assumes a
    periodic scene. ``"valid"`` models a real photo, the blur of a larger unknown scene cropped
    to ``y``: the solver runs on ``x`` of shape ``[B, C, H + kh - 1, W + kw - 1]`` (started,
    when ``x0`` is None, from ``y`` extended by edge replication), and the result's ``x`` is its
    crop aligned with ``y`` (``physics.observed_region``), shape ``[B, C, H, W]`` like ``y``;
    ``x0``, when given, has the larger shape; ``x_true`` has the shape of ``y``. ``||A||`` is
    then a certified upper bound, and HQS/ADMM use a CG prox (their guarantee says so).
    ``"reflect"``/``"replicate"``: cheaper approximations (the image extended by symmetry or by
    its edge before a circular blur; ``x`` has the shape of ``y``).
    ``acceleration="anderson"``: safeguarded Anderson acceleration with memory
    ``anderson_memory`` (:mod:`pnp.solvers.anderson`; the guarantee of the plain loop is kept);
    ``"none"``: the plain loop; ``"auto"`` (default): :func:`default_acceleration` (the variational
    solver has its own acceleration, and ignores it).

    Example::

        >>> import torch, pnp
        >>> from operators import FFTBlur, gaussian_kernel
        >>> x = torch.rand(1, 1, 32, 32)
        >>> y = FFTBlur(gaussian_kernel(5, 1.0)).A(x)
        >>> res = pnp.deblur(y, "gaussian:5:1.0", noise_level=0.01, max_iter=5)
        >>> res.x.shape
        torch.Size([1, 1, 32, 32])
    """
    from pnp.validate import check_image, check_noise_level, check_positive

    noise_level = check_noise_level(noise_level, name="noise_level")
    check_image(y, name="y", noise_level=noise_level)
    for other, value in (("x0", x0), ("x_true", x_true)):
        if value is not None:
            check_image(value, name=other, noise_level=noise_level if other == "x0" else 0.0)
            if other == "x_true" and value.shape != y.shape:
                raise ValueError(f"{other} must have shape {tuple(y.shape)} (that of y), got {tuple(value.shape)}")
    sigma = None if sigma is None else check_positive(sigma, name="sigma")
    gamma = None if gamma is None else check_positive(gamma, name="gamma")
    key = solver.lower() if isinstance(solver, str) else solver
    if key not in SOLVER_CHOICES:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVER_CHOICES)}")
    if isinstance(denoiser, str) and denoiser.strip().lower() == "tv":
        from denoisers.classical import TVDenoiser

        den = TVDenoiser(n_it_max=PNP_TV_INNER_ITERATIONS)  # warm-started across iterations
    else:
        den = get_denoiser(denoiser) if isinstance(denoiser, str) else denoiser
    if not callable(den):
        raise TypeError(f"denoiser must be a name or a callable, got {type(den).__name__}")
    from operators import BOUNDARIES

    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; choose one of {', '.join(BOUNDARIES)}")
    h, w = y.shape[-2:]
    physics = make_blur(kernel, image_shape=(h, w), boundary=boundary).to(y.device)
    x_shape = tuple(physics.x_shape(tuple(y.shape)))
    if x0 is not None and tuple(x0.shape) != x_shape:
        raise ValueError(f"x0 must have shape {x_shape} (that of A^T y), got {tuple(x0.shape)}")
    if boundary == "valid" and x0 is None:
        import torch

        top, bottom, left, right = physics.pads
        x0 = torch.nn.functional.pad(y, (left, right, top, bottom), mode="replicate")
    opnorm = physics.opnorm(image_size=x_shape[-2:])
    if key == "auto":
        key = "variational" if _ridge_kind(den) is not None else "fbs"
    d_sigma, d_gamma = default_parameters(noise_level, denoiser=den, opnorm=opnorm, solver=key)
    sigma = d_sigma if sigma is None else sigma
    gamma = d_gamma if gamma is None else gamma
    if key == "variational":
        from pnp.solvers.variational import VariationalRidge

        result = VariationalRidge(physics, y, den.reg, sigma=sigma, lam_scale=gamma, max_iter=max_iter, tol=tol,
                                  x0=x0, x_true=x_true if boundary != "valid" else None).run()
        if boundary == "valid":
            result = dataclasses.replace(result, x=physics.observed_region(result.x))
        return result
    if isinstance(acceleration, str) and acceleration.strip().lower() == "auto":
        acceleration = default_acceleration(den)
    cls = SOLVERS[key]
    result = cls(
        physics, y, den, sigma=sigma, gamma=gamma, max_iter=max_iter, tol=tol, x0=x0,
        x_true=x_true, progress=progress, acceleration=acceleration,
        anderson_memory=anderson_memory,
    ).run()
    if boundary == "valid":
        result = dataclasses.replace(result, x=physics.observed_region(result.x))
    return result
