"""Certificates of certified denoisers.

A *certificate* is a property of a denoiser computed from **upper bounds** of layer norms
(never from an empirical lower bound alone). It states:

* ``lipschitz_bound``: an upper bound ``L`` of the l2 Lipschitz constant,
  ``||D(x) - D(y)|| <= L ||x - y||`` for all ``x, y`` and every image size;
* ``alpha``: the averagedness constant, ``D = (1 - alpha) I + alpha R`` with ``R``
  non-expansive, or ``None`` when the denoiser is not certified averaged;
* how each number was obtained, and the bound of each layer.

Averagedness is equivalent to the inequality (for alpha in (0, 1))::

    ||Dx - Dy||^2 <= ||x - y||^2 - (1 - alpha) / alpha * ||(I - D)x - (I - D)y||^2

Composition (Combettes & Yamada 2015): the composition of ``m`` maps that are
``alpha_i``-averaged is ``alpha``-averaged with::

    alpha = m / (m - 1 + 1 / max_i alpha_i)

and, sharper for two maps, ``alpha = (a1 + a2 - 2 a1 a2) / (1 - a1 a2)``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = [
    "Certificate",
    "LayerBound",
    "compose_alpha",
    "compose_alpha_pair",
    "relax_alpha",
]


@dataclass(frozen=True)
class LayerBound:
    """Upper bound of one layer's operator norm and how it was obtained."""

    name: str
    norm_bound: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Certificate:
    """What a denoiser is certified to be.

    Attributes
    ----------
    lipschitz_bound:
        Upper bound of the l2 Lipschitz constant (valid for every image size).
    alpha:
        Averagedness constant in (0, 1], or ``None`` when no averagedness is certified.
        ``alpha <= 1/2`` means firmly non-expansive. ``alpha == 1`` means non-expansive only.
    method:
        One sentence: how the certificate was derived.
    layers:
        Per-layer upper bounds.
    notes:
        Free-form remarks (assumptions, inexactness).
    exact:
        ``False`` when the certificate assumes something not checked exactly
        (e.g. an inner iterative solver run to convergence).
    """

    lipschitz_bound: float
    alpha: float | None
    method: str
    layers: tuple[LayerBound, ...] = field(default_factory=tuple)
    notes: str = ""
    exact: bool = True

    def __post_init__(self) -> None:
        if not (self.lipschitz_bound >= 0.0):
            raise ValueError(f"lipschitz_bound must be >= 0, got {self.lipschitz_bound!r}")
        if self.alpha is not None and not (0.0 < self.alpha <= 1.0):
            raise ValueError(f"alpha must be in (0, 1] or None, got {self.alpha!r}")

    @property
    def nonexpansive(self) -> bool:
        """Certified non-expansive (Lipschitz bound <= 1)."""
        return self.lipschitz_bound <= 1.0

    @property
    def averaged(self) -> bool:
        """Certified alpha-averaged with alpha < 1."""
        return self.alpha is not None and self.alpha < 1.0

    @property
    def firmly_nonexpansive(self) -> bool:
        """Certified firmly non-expansive (alpha <= 1/2)."""
        return self.alpha is not None and self.alpha <= 0.5

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = [dataclasses.asdict(layer) for layer in self.layers]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Certificate":
        if not isinstance(d, dict):
            raise ValueError(f"certificate must be a JSON object, got {type(d).__name__}")
        try:
            layers = tuple(LayerBound(**layer) for layer in d.get("layers", ()))
            return cls(
                lipschitz_bound=float(d["lipschitz_bound"]),
                alpha=None if d.get("alpha") is None else float(d["alpha"]),
                method=str(d.get("method", "")),
                layers=layers,
                notes=str(d.get("notes", "")),
                exact=bool(d.get("exact", True)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed certificate: {exc}") from exc


def compose_alpha(alphas: Sequence[float]) -> float:
    """Averagedness of a composition of ``alpha_i``-averaged maps.

    ``alpha = m / (m - 1 + 1 / max_i alpha_i)`` (Combettes & Yamada 2015, Prop. 2.5).
    Returns 0 for an empty chain (the identity is 0-averaged in the limit sense; callers treat
    an empty chain as the identity).
    """
    alphas = [float(a) for a in alphas]
    if not alphas:
        return 0.0
    for a in alphas:
        if not (0.0 < a < 1.0):
            raise ValueError(f"each alpha must be in (0, 1) to compose, got {a!r}")
    m = len(alphas)
    return m / (m - 1 + 1.0 / max(alphas))


def compose_alpha_pair(a1: float, a2: float) -> float:
    """Sharp averagedness of the composition of an ``a1``- and an ``a2``-averaged map.

    ``alpha = (a1 + a2 - 2 a1 a2) / (1 - a1 a2)`` (Ogura & Yamada 2002), valid for
    ``a1, a2 in (0, 1)``.
    """
    for name, a in (("a1", a1), ("a2", a2)):
        if not (0.0 < a < 1.0):
            raise ValueError(f"{name} must be in (0, 1), got {a!r}")
    return (a1 + a2 - 2.0 * a1 * a2) / (1.0 - a1 * a2)


def relax_alpha(alpha: float, theta: float) -> float:
    """Averagedness of ``(1 - theta) I + theta N`` for ``N`` alpha-averaged: ``theta * alpha``.

    With ``alpha = 1`` (``N`` only non-expansive) this is ``theta``.
    """
    if not (0.0 < theta <= 1.0):
        raise ValueError(f"theta must be in (0, 1], got {theta!r}")
    if not (0.0 < alpha <= 1.0):
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    return theta * alpha
