"""Certificate of an l-inf contractive implicit network.

For ``x = Phi(A x + B u + b)``, ``y = C x + D u + c`` with ``Phi`` elementwise, monotone, slopes in
``[0, 1]`` and ``mu = mu_{inf,eta}(A) < 1``, two inputs ``u1, u2`` give (secant slopes
``Dg = diag(d_i)``, ``d_i in [0, 1]``, exact for slope-restricted ``Phi``)::

    x1 - x2 = (I - Dg A)^{-1} Dg B (u1 - u2),        ||(I - Dg A)^{-1} Dg||_inf <= 1 / (1 - mu).

(Proof: for ``v = (I - Dg A)^{-1} Dg w`` and ``i`` maximising ``|v_i|``,
``|v_i| (1 - d_i mu_i) <= d_i ||w||_inf``, and ``d / (1 - d mu_i)`` is increasing in
``d in [0, 1]``.) In the weighted case everything is stated in the coordinates ``E^{-1} x``
(``E = diag(eta)``), i.e. with ``A' = E^{-1} A E``, ``B' = E^{-1} B``, ``C' = C E``. Hence:

* ``lipschitz_linf``  = ``||C'||_inf ||B'||_inf / (1 - mu) + ||D||_inf`` (l-inf in, l-inf out);
* ``lipschitz_l2_to_linf`` = ``||C'||_inf ||B'||_{2->inf} / (1 - mu) + ||D||_{2->inf}``
  (l2 in, l-inf out; ``||M||_{2->inf}`` is the largest row l2 norm);
* ``lipschitz_l2`` = the smaller of two valid bounds (``method_l2`` says which won):
  (a) "norm conversion": ``sqrt(p) * lipschitz_l2_to_linf`` using ``||y||_2 <= sqrt(p) ||y||_inf``
      for the ``p`` outputs;
  (b) "interpolation": ``||C'||_2 ||B'||_2 / sqrt((1 - mu)(1 - mu_1)) + ||D||_2`` when
      ``mu_1 = mu_1(A') < 1``, from ``||M||_2 <= sqrt(||M||_1 ||M||_inf)`` (Riesz-Thorin / Schur)
      and ``||(I - Dg A')^{-1} Dg||_1 = ||(I - Dg A'^T)^{-1} Dg||_inf <= 1 / (1 - mu_1)``.

The bounds hold for the exact equilibrium. The computed one has l-inf error at most
``residual / (1 - mu^+)`` (see :mod:`denoisers.implicit.fixed_point`), which callers must add
when they need a rigorous statement about computed outputs (``exact`` is False for that reason).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ImplicitCertificate"]


@dataclass(frozen=True)
class ImplicitCertificate:
    """Certified input-output Lipschitz bounds of an implicit network (upper bounds).

    gamma: the parametrisation's bound on the matrix measure.
    mu: ``mu_{inf,eta}(A)`` computed from the materialised weights (``<= gamma``).
    mu_1: ``mu_1(A')`` (used by the l2 interpolation bound), or None if not computed.
    step: step ``a`` of the average iteration; contraction: its factor ``rho = 1 - a (1 - mu^+)``.
    lipschitz_l2: None when no l2 bound applies (e.g. convolutional net with ``mu_1 >= 1``).
    """

    lipschitz_linf: float
    lipschitz_l2: float | None
    lipschitz_l2_to_linf: float | None
    gamma: float
    mu: float
    mu_1: float | None
    step: float
    contraction: float
    method: str
    method_l2: str = ""
    notes: str = ""
    exact: bool = False

    def __post_init__(self) -> None:
        if not (self.lipschitz_linf >= 0.0):
            raise ValueError(f"lipschitz_linf must be >= 0, got {self.lipschitz_linf!r}")
        if self.lipschitz_l2 is not None and not (self.lipschitz_l2 >= 0.0):
            raise ValueError(f"lipschitz_l2 must be >= 0 or None, got {self.lipschitz_l2!r}")
        if not (self.mu < 1.0):
            raise ValueError(f"mu must be < 1 for a certificate, got {self.mu!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ImplicitCertificate":
        if not isinstance(d, dict):
            raise ValueError(f"certificate must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown certificate fields: {sorted(unknown)}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"malformed certificate: {exc}") from exc
