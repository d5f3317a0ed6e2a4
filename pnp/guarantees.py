"""Which convergence guarantee applies to a PnP iteration, decided from numbers we can check.

Inputs are the operator norm ``||A||`` (exact or estimated), the step ``gamma``, the data
weight ``w`` (``f(x) = w/2 ||Ax - y||^2``), the relaxation ``lambda`` and the denoiser's
:class:`~denoisers.certificate.Certificate` (averagedness ``alpha``). The rules
(``DESIGN.md``, "Convergence conditions"):

* **PnP-FBS** ``T = D o (I - gamma grad f)``. The gradient step of the convex, ``w||A||^2``-smooth
  ``f`` is ``alpha_g``-averaged with ``alpha_g = gamma w ||A||^2 / 2`` iff
  ``0 < gamma w ||A||^2 < 2``. With ``D`` ``alpha_D``-averaged, ``T`` is averaged with
  ``alpha_T = (a1 + a2 - 2 a1 a2) / (1 - a1 a2)`` (Ogura-Yamada). The relaxed iteration
  ``x <- (1 - lambda) x + lambda T x`` is ``lambda alpha_T``-averaged, so for
  ``lambda in (0, 1 / alpha_T)`` the iterates converge to a fixed point of ``T``
  (Krasnoselskii-Mann / Opial) **provided one exists**.
* **PnP-HQS** ``T = D o prox_{gamma f}``: the prox is firmly non-expansive (1/2-averaged) for
  every ``gamma > 0``, so ``T`` is averaged when ``D`` is (``alpha_D < 1``).
* **PnP-ADMM / DRS** ``z <- z + D(2 prox_{gamma f}(z) - z) - prox_{gamma f}(z)``, i.e.
  ``T = (I + R_D R_F) / 2`` with ``R = 2 P - I`` reflections: needs ``R_D`` non-expansive, i.e.
  ``D`` firmly non-expansive (``alpha_D <= 1/2``). Otherwise no guarantee applies; the option
  ``firm=True`` replaces ``D`` by ``(I + D) / 2`` (``alpha_D / 2``-averaged).

A denoiser without a certificate gets ``holds=False``. ``checked`` is ``True`` only when every
number used is exact or a certified bound: an operator norm from ``physics.opnorm()`` (exact, or
a proven upper bound such as the ``"valid"`` blur's ``max |K|``; not a power-iteration estimate),
a certificate with ``exact=True`` and, for HQS/ADMM, a closed-form prox (a prox computed by an
iterative solver to a tolerance is flagged: the theorems are stated for the exact prox).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from denoisers.certificate import Certificate, compose_alpha_pair, relax_alpha

__all__ = [
    "Guarantee",
    "denoiser_certificate",
    "fbs_guarantee",
    "hqs_guarantee",
    "admm_guarantee",
    "with_acceleration",
]

_KM = "Krasnoselskii-Mann / Opial: iterates of an averaged operator converge to a fixed point"
_FIX_CAVEAT = "a fixed point exists (true e.g. when D is the prox of a coercive convex function)"
_INEXACT_PROX = (
    "prox_(gamma f) computed iteratively: {how}; the theorem is for the exact prox (inexact "
    "Krasnoselskii-Mann iterations converge when the errors are summable, which a fixed "
    "tolerance does not ensure)"
)


@dataclass(frozen=True)
class Guarantee:
    """The convergence statement that applies to one solver run.

    Attributes
    ----------
    holds:
        ``True`` when the sufficient conditions of ``theorem`` are met.
    theorem:
        The result invoked (or the one that would apply).
    conditions:
        The conditions, each as one readable line with the numbers used.
    checked:
        ``True`` when every number used is exact (operator norm from ``opnorm()``,
        certificate ``exact=True``); ``False`` when one is an estimate.
    reason:
        Why it holds, or why not.
    """

    holds: bool
    theorem: str
    conditions: tuple[str, ...]
    checked: bool
    reason: str

    def summary(self) -> str:
        """One line, e.g. ``guarantee holds (checked): ...``."""
        state = "holds" if self.holds else "does NOT hold"
        check = "checked" if self.checked else "not checked exactly"
        return f"guarantee {state} ({check}): {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["conditions"] = list(self.conditions)
        d["summary"] = self.summary()
        return d


def denoiser_certificate(denoiser: Any) -> Certificate | None:
    """The denoiser's ``certificate`` attribute when it is a :class:`Certificate`, else ``None``."""
    cert = getattr(denoiser, "certificate", None)
    return cert if isinstance(cert, Certificate) else None


def _alpha_of(cert: Certificate) -> float | None:
    """Averagedness from a certificate: ``alpha``, or 1 for a merely non-expansive denoiser."""
    if cert.alpha is not None:
        return float(cert.alpha)
    if cert.lipschitz_bound <= 1.0:
        return 1.0
    return None


def _no_certificate(theorem: str) -> Guarantee:
    return Guarantee(
        holds=False,
        theorem=theorem,
        conditions=("denoiser certified averaged",),
        checked=False,
        reason="denoiser has no certificate",
    )


def _not_averaged(theorem: str, cert: Certificate) -> Guarantee:
    return Guarantee(
        holds=False,
        theorem=theorem,
        conditions=(f"denoiser Lipschitz bound {cert.lipschitz_bound:.4g} <= 1",),
        checked=cert.exact,
        reason=(
            f"denoiser is neither certified averaged nor non-expansive "
            f"(Lipschitz bound {cert.lipschitz_bound:.4g} > 1)"
        ),
    )


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def fbs_guarantee(
    *,
    opnorm: float,
    gamma: float,
    certificate: Certificate | None,
    relaxation: float = 1.0,
    data_weight: float = 1.0,
    opnorm_exact: bool = True,
    opnorm_kind: str | None = None,
) -> Guarantee:
    """Guarantee for PnP-FBS ``x <- (1 - lambda) x + lambda D(x - gamma w A^T(Ax - y))``.

    Holds iff the denoiser is certified ``alpha_D``-averaged (or non-expansive, ``alpha_D = 1``),
    ``0 < gamma w ||A||^2 < 2`` and ``0 < lambda < 1 / alpha_T``, with ``alpha_T`` the
    averagedness of ``D o (I - gamma grad f)``; the conclusion assumes a fixed point exists.

    ``opnorm_kind="upper bound"`` (e.g. :class:`operators.FFTBlur` with ``boundary="valid"``):
    ``opnorm`` is a proven upper bound of ``||A||``; the step condition checked with it implies
    the one with the true norm (and the averagedness derived from it is an upper bound too), so
    the guarantee is still ``checked``.
    """
    theorem = f"PnP-FBS: averaged operator; {_KM}"
    opnorm = _check_positive("opnorm", opnorm)
    gamma = _check_positive("gamma", gamma)
    relaxation = _check_positive("relaxation", relaxation)
    data_weight = _check_positive("data_weight", data_weight)
    if certificate is None:
        return _no_certificate(theorem)
    alpha_d = _alpha_of(certificate)
    if alpha_d is None:
        return _not_averaged(theorem, certificate)
    if opnorm_kind is None:
        opnorm_kind = "exact" if opnorm_exact else "power-iteration estimate"
    certified_norm = opnorm_kind in ("exact", "upper bound")
    checked = bool(certified_norm and certificate.exact)
    norm_kind = opnorm_kind
    product = gamma * data_weight * opnorm**2
    if norm_kind == "upper bound":
        cond_step = (
            f"0 < gamma*w*||A||^2 <= gamma*w*B^2 = {product:.4g} < 2 (||A|| <= B = {opnorm:.6g}, "
            "certified upper bound)"
        )
    else:
        cond_step = f"0 < gamma*w*||A||^2 = {product:.4g} < 2 (||A|| = {opnorm:.6g}, {norm_kind})"
    cond_den = f"denoiser {alpha_d:.4g}-averaged (certificate: {certificate.method})"
    if not product < 2.0:
        return Guarantee(
            holds=False,
            theorem=theorem,
            conditions=(cond_step, cond_den),
            checked=checked,
            reason=(
                f"gamma*w*||A||^2 = {product:.4g} >= 2: the gradient step is not averaged "
                f"(need gamma < {2.0 / (data_weight * opnorm**2):.4g})"
            ),
        )
    alpha_g = product / 2.0
    if alpha_d < 1.0:
        alpha_t = compose_alpha_pair(alpha_d, alpha_g)
    else:
        alpha_t = 1.0
    bound = 1.0 / alpha_t
    cond_relax = f"0 < lambda = {relaxation:.4g} < 1/alpha_T = {bound:.4g} (alpha_T = {alpha_t:.4g})"
    conditions = (cond_step, cond_den, cond_relax, _FIX_CAVEAT)
    if not relaxation < bound:
        why = (
            "D o (I - gamma grad f) is only non-expansive (denoiser alpha = 1): use a relaxation "
            "lambda < 1"
            if alpha_t >= 1.0
            else f"relaxation lambda = {relaxation:.4g} >= 1/alpha_T = {bound:.4g}"
        )
        return Guarantee(False, theorem, conditions, checked, why)
    reason = (
        f"PnP-FBS with gamma*w*||A||^2 = {product:.3g} < 2, denoiser {alpha_d:.3g}-averaged, "
        f"iteration {relaxation * alpha_t:.3g}-averaged"
        f": converges to a fixed point if one exists"
    )
    if not certified_norm:
        reason += " (||A|| estimated by power iteration)"
    elif opnorm_kind == "upper bound":
        reason += " (||A|| from a certified upper bound)"
    if not certificate.exact:
        reason += " (denoiser certificate not exact)"
    return Guarantee(True, theorem, conditions, checked, reason)


def hqs_guarantee(
    *,
    gamma: float,
    certificate: Certificate | None,
    data_weight: float = 1.0,
    prox_inexact: str | None = None,
) -> Guarantee:
    """Guarantee for PnP-HQS ``x <- D(prox_{gamma f}(x))``.

    ``prox_{gamma f}`` is firmly non-expansive for every ``gamma > 0`` (``f`` convex), so the
    composition is averaged iff the denoiser is certified ``alpha_D``-averaged with
    ``alpha_D < 1``; the conclusion assumes a fixed point exists. ``prox_inexact``: how the prox
    is computed when it is iterative (then ``checked=False`` and the statement says so).
    """
    theorem = f"PnP-HQS: composition of averaged operators; {_KM}"
    gamma = _check_positive("gamma", gamma)
    _check_positive("data_weight", data_weight)
    if certificate is None:
        return _no_certificate(theorem)
    alpha_d = _alpha_of(certificate)
    if alpha_d is None:
        return _not_averaged(theorem, certificate)
    checked = bool(certificate.exact) and prox_inexact is None
    cond_prox = f"prox_(gamma f) firmly non-expansive for every gamma > 0 (gamma = {gamma:.4g})"
    cond_den = f"denoiser alpha = {alpha_d:.4g} < 1 (certificate: {certificate.method})"
    conditions = (cond_prox, cond_den, _FIX_CAVEAT)
    if prox_inexact is not None:
        conditions += (_INEXACT_PROX.format(how=prox_inexact),)
    if alpha_d >= 1.0:
        return Guarantee(
            False, theorem, conditions, checked,
            "denoiser is only certified non-expansive (alpha = 1): D o prox need not be averaged",
        )
    alpha_t = compose_alpha_pair(0.5, alpha_d)
    reason = (
        f"PnP-HQS with a {alpha_d:.3g}-averaged denoiser: iteration {alpha_t:.3g}-averaged, "
        "converges to a fixed point if one exists"
    )
    if not certificate.exact:
        reason += " (denoiser certificate not exact)"
    if prox_inexact is not None:
        reason += " (for the exact prox; here it is computed iteratively to a tolerance)"
    return Guarantee(True, theorem, conditions, checked, reason)


def admm_guarantee(
    *,
    gamma: float,
    certificate: Certificate | None,
    firm: bool = False,
    data_weight: float = 1.0,
    prox_inexact: str | None = None,
) -> Guarantee:
    """Guarantee for PnP-ADMM in Douglas-Rachford form.

    ``T = (I + R_D R_F) / 2`` is 1/2-averaged iff ``R_D = 2D - I`` is non-expansive, i.e. the
    denoiser is firmly non-expansive (``alpha_D <= 1/2``). With ``firm=True`` the solver uses
    ``(I + D)/2`` (``alpha_D / 2``-averaged), which is firmly non-expansive for any certified
    non-expansive ``D``. ``prox_inexact``: as in :func:`hqs_guarantee`.
    """
    theorem = (
        "PnP-ADMM/DRS: reflected resolvents non-expansive -> 1/2-averaged DRS operator; " + _KM
    )
    _check_positive("gamma", gamma)
    _check_positive("data_weight", data_weight)
    if certificate is None:
        return _no_certificate(theorem)
    alpha_d = _alpha_of(certificate)
    if alpha_d is None:
        return _not_averaged(theorem, certificate)
    checked = bool(certificate.exact) and prox_inexact is None
    alpha_used = relax_alpha(alpha_d, 0.5) if firm else alpha_d
    used = "(I + D)/2" if firm else "D"
    cond = f"{used} firmly non-expansive: alpha = {alpha_used:.4g} <= 1/2"
    conditions = (
        "prox_(gamma f) firmly non-expansive for every gamma > 0",
        cond,
        _FIX_CAVEAT,
    )
    if prox_inexact is not None:
        conditions += (_INEXACT_PROX.format(how=prox_inexact),)
    if alpha_used > 0.5:
        return Guarantee(
            False, theorem, conditions, checked,
            f"denoiser alpha = {alpha_d:.3g} > 1/2: 2D - I need not be non-expansive, so no "
            "DRS guarantee applies (use firm=True to run with (I + D)/2, or FBS/HQS)",
        )
    reason = (
        f"PnP-ADMM/DRS with {used} {alpha_used:.3g}-averaged (firmly non-expansive): "
        "converges to a fixed point if one exists"
    )
    if not certificate.exact:
        reason += " (denoiser certificate not exact)"
    if prox_inexact is not None:
        reason += " (for the exact prox; here it is computed iteratively to a tolerance)"
    return Guarantee(True, theorem, conditions, checked, reason)


def with_acceleration(
    guarantee: Guarantee,
    *,
    accepted: int,
    tried: int,
    iterations: int,
    safeguard: float,
    max_step: float,
    memory: int,
) -> Guarantee:
    """The guarantee of a run with safeguarded Anderson acceleration (:mod:`pnp.solvers.anderson`).

    The plain loop is the KM iteration of an averaged map ``T``; an Anderson candidate is kept
    only when its move is at most ``max_step ||T s - s||`` and it lowers the fixed-point residual
    by the factor ``safeguard < 1``, otherwise the plain step is taken. The residual then never
    increases, the accepted moves are summable, and the iterates converge to a fixed point of
    ``T`` under exactly the conditions of the plain loop: ``holds`` and ``checked`` are those of
    ``guarantee``; the statement records the safeguard and how many steps were accepted.
    """
    cond = (
        f"Anderson (memory {memory}) step kept only if ||T s - s|| drops by the factor "
        f"{safeguard:g} and the move is <= {max_step:g} ||T s - s||; otherwise the plain KM step"
    )
    count = f"{accepted} of {tried} Anderson steps accepted in {iterations} iterations"
    theorem = (
        guarantee.theorem
        + "; safeguarded Anderson acceleration keeps it (monotone residual, summable "
        "accepted moves: quasi-Fejer, as for globally convergent Anderson on non-expansive maps)"
    )
    if guarantee.holds:
        reason = f"{guarantee.reason}; the safeguard keeps this guarantee ({count})"
    else:
        reason = f"{guarantee.reason} (accelerated: {count}; the safeguard cannot add a guarantee)"
    return replace(guarantee, theorem=theorem, conditions=(*guarantee.conditions, cond),
                   reason=reason)
