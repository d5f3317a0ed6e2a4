r"""Deblurring protocols as data: frozen dataclasses, stored as TOML, serialised into every result.

A :class:`Protocol` fixes everything a deblurring benchmark number depends on:

* the test **images** (a folder name under ``shared/data``, overridable by ``--data``),
* the **kernels** (:func:`operators.load_kernel` specs), the **noise levels** (standard deviations
  on the ``[0, 1]`` scale), the **boundary** (circular) and the **seeding**
  (``numpy.random.seed(seed)`` before each image's noise, drawn in ``H x W x C`` order),
* the **PSNR/SSIM definitions**, the **iteration budget and tolerance**, the solver ``dtype``,
* the **parameter rule** (:class:`ParameterRule`): the denoiser strength and the step as functions
  of the measurement noise level ``nu`` and the exact ``||A||``::

      s     = scale * max(nu, noise_floor) ** power        (denoiser sigma; or lambda, closed form)
      gamma = gamma_scale / ||A||^2                        (step / prox parameter)

  Entries are matched on ``denoiser`` (a name, a kind ``tv | quadratic | bm3d | wiener |
  tikhonov`` or ``"*"``), optionally ``solver`` and ``noise``; the most specific matching entry
  wins (ties: the later one), so a calibration appends per-noise entries that override the
  generic power laws while other noise levels (e.g. ``--noise 0.02``) still get a value.

Shipped protocols (``benchmarks/protocols/*.toml``): ``levin10`` (8 Levin kernels + 9x9 uniform
+ 25x25 Gaussian std 1.6; noise 2.55, 7.65, 12.75 / 255) and ``gauss25`` (25x25 Gaussian, std 1.6
and 2.0; noise 2.55/255). Example::

    >>> p = load_protocol("levin10")
    >>> len(p.kernels), p.noise_levels[0] == 2.55 / 255
    (10, True)
    >>> sigma, gamma = p.rule.parameters("tv", solver="fbs", noise=0.01, opnorm=1.0)
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Calibration",
    "DENOISER_KINDS",
    "ParameterRule",
    "Protocol",
    "RuleEntry",
    "available_protocols",
    "denoiser_kind",
    "dump_protocol",
    "load_protocol",
    "parse_noise",
    "protocol_dir",
    "protocol_from_dict",
]

_DIR = Path(__file__).resolve().parent / "protocols"

#: Denoiser kinds the parameter rule distinguishes; every other name (zoo networks, checkpoint
#: paths, factories) is matched by ``"*"``.
DENOISER_KINDS = ("tv", "quadratic", "bm3d", "wiener", "tikhonov")

PSNR_DEFINITION = (
    "10 log10(1 / MSE) per image, data range 1, restored and clean images both clipped to [0, 1], "
    "all pixels and channels, no border crop"
)
SSIM_DEFINITION = (
    "skimage.metrics.structural_similarity, data range 1, both images clipped to [0, 1], "
    "7x7 uniform window, channel_axis for colour, no border crop"
)
SEEDING = (
    "numpy.random.seed(seed) before each image's noise (legacy RandomState, the same noise for "
    "every kernel), numpy.random.normal(0, noise, (H, W, C)) added to the blurred H x W x C image"
)


def protocol_dir() -> Path:
    """Folder holding the shipped protocol TOML files."""
    return _DIR


def denoiser_kind(name: str) -> str:
    """The rule's key for a denoiser name: one of :data:`DENOISER_KINDS`, else ``"*"``."""
    key = str(name).strip().lower()
    return key if key in DENOISER_KINDS else "*"


def parse_noise(text: str | float) -> float:
    """A noise level from ``0.03``, ``"0.03"`` or ``"7.65/255"`` (``[0, 1]`` scale)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
        t = text.strip()
        try:
            if "/" in t:
                num, den = t.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(t)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"noise level must be a number or 'A/B' (e.g. 7.65/255), got {text!r}") from None
    else:
        raise TypeError(f"noise level must be a number or a string, got {type(text).__name__}")
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"noise level must be finite and in [0, 1), got {text!r}")
    return value


def _same_noise(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class RuleEntry:
    """One line of the parameter rule: ``s = scale * nu**power``, ``gamma = gamma_scale / ||A||^2``.

    ``denoiser``: a denoiser name, a kind from :data:`DENOISER_KINDS`, or ``"*"`` (any);
    ``solver``/``noise``: restrict the entry to one solver / one noise level (``None``: any).
    """

    denoiser: str
    scale: float
    power: float = 1.0
    gamma_scale: float = 1.0
    solver: str | None = None
    noise: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.denoiser, str) or not self.denoiser:
            raise ValueError(f"rule entry denoiser must be a non-empty string, got {self.denoiser!r}")
        for name in ("scale", "gamma_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"rule entry {name} must be finite and > 0, got {v!r}")
        if isinstance(self.power, bool) or not isinstance(self.power, (int, float)) or not math.isfinite(self.power):
            raise ValueError(f"rule entry power must be a finite number, got {self.power!r}")
        if self.noise is not None:
            parse_noise(self.noise)

    def specificity(self) -> int:
        """Rank among matching entries: noise (4) > solver (2+) > exact name (2) > kind (1) > ``*``."""
        name = 0 if self.denoiser == "*" else (1 if self.denoiser in DENOISER_KINDS else 2)
        return name + 3 * (self.solver is not None) + 6 * (self.noise is not None)

    def matches(self, *, name: str, solver: str, noise: float) -> bool:
        if self.denoiser != "*" and self.denoiser not in (name, denoiser_kind(name)):
            return False
        if self.solver is not None and self.solver != solver:
            return False
        if self.noise is not None and not _same_noise(self.noise, noise):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ParameterRule:
    """The parameter rule (see module docstring): denoiser strength and step from ``nu`` and ``||A||``."""

    entries: tuple[RuleEntry, ...]
    noise_floor: float = 1e-3

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a parameter rule needs at least one entry")
        if not any(e.denoiser == "*" and e.solver is None and e.noise is None for e in self.entries):
            raise ValueError("a parameter rule needs a catch-all entry with denoiser = '*'")
        if not (math.isfinite(self.noise_floor) and self.noise_floor > 0):
            raise ValueError(f"noise_floor must be finite and > 0, got {self.noise_floor!r}")

    def entry(self, name: str, *, solver: str, noise: float) -> RuleEntry:
        """The most specific entry matching ``(name, solver, noise)`` (later ones win ties)."""
        best: RuleEntry | None = None
        for e in self.entries:
            if e.matches(name=name, solver=solver, noise=noise):
                if best is None or e.specificity() >= best.specificity():
                    best = e
        assert best is not None  # the catch-all entry always matches
        return best

    def parameters(self, name: str, *, solver: str, noise: float, opnorm: float) -> tuple[float, float]:
        """``(s, gamma)``: the denoiser's sigma (for closed-form baselines the weight lambda) and
        the step ``gamma = gamma_scale / ||A||^2``."""
        if not (math.isfinite(opnorm) and opnorm > 0):
            raise ValueError(f"opnorm must be finite and > 0, got {opnorm!r}")
        e = self.entry(name, solver=solver, noise=noise)
        nu = max(float(noise), self.noise_floor)
        return e.scale * nu**e.power, e.gamma_scale / opnorm**2

    def with_entries(self, extra: tuple[RuleEntry, ...]) -> ParameterRule:
        """A copy with ``extra`` appended (they win ties against the existing entries)."""
        return dataclasses.replace(self, entries=self.entries + tuple(extra))

    def to_dict(self) -> dict[str, Any]:
        return {"noise_floor": self.noise_floor, "entries": [e.to_dict() for e in self.entries]}


@dataclass(frozen=True)
class Calibration:
    """Where a calibrated rule comes from: the development data, the grid and the scores."""

    dev_data: str
    dev_images: tuple[str, ...]
    kernels: tuple[str, ...]
    grid: tuple[float, ...]
    gamma_grid: tuple[float, ...]
    max_iter: int
    date: str
    base_protocol: str
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("dev_images", "kernels", "grid", "gamma_grid"):
            d[k] = list(d[k])
        return d


@dataclass(frozen=True)
class Protocol:
    """A deblurring protocol (see module docstring). Serialise with :meth:`to_dict`."""

    name: str
    description: str
    images: str
    kernels: tuple[str, ...]
    noise_levels: tuple[float, ...]
    rule: ParameterRule
    boundary: str = "circular"
    seed: int = 0
    quantize_blurred: bool = False
    max_iter: int = 200
    tol: float = 1e-5
    max_iter_overrides: tuple[tuple[str, int], ...] = ()
    dtype: str = "float32"
    init: str = "A^T y"
    psnr: str = PSNR_DEFINITION
    ssim: str = SSIM_DEFINITION
    seeding: str = SEEDING
    calibration: Calibration | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"protocol name must be a non-empty string, got {self.name!r}")
        if not self.kernels:
            raise ValueError(f"protocol {self.name!r} has no kernels")
        if not self.noise_levels:
            raise ValueError(f"protocol {self.name!r} has no noise levels")
        for nu in self.noise_levels:
            parse_noise(nu)
        if self.boundary != "circular":
            raise ValueError(f"boundary must be 'circular' (the only exact FFT boundary), got {self.boundary!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        for key, value in self.max_iter_overrides:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"max_iter override for {key!r} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.tol) and self.tol > 0):
            raise ValueError(f"tol must be finite and > 0, got {self.tol!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def budget(self, denoiser: str) -> int:
        """Iteration budget for ``denoiser`` (by name, then kind, else ``max_iter``)."""
        table = dict(self.max_iter_overrides)
        if denoiser in table:
            return table[denoiser]
        return table.get(denoiser_kind(denoiser), self.max_iter)

    def noise_index(self, noise: float) -> int | None:
        for i, nu in enumerate(self.noise_levels):
            if _same_noise(nu, noise):
                return i
        return None

    def replace(self, **changes: Any) -> Protocol:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the form stored in every result file)."""
        d: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "images": self.images,
            "kernels": list(self.kernels),
            "noise_levels": list(self.noise_levels),
            "noise_levels_255": [round(n * 255, 10) for n in self.noise_levels],
            "boundary": self.boundary,
            "seed": self.seed,
            "quantize_blurred": self.quantize_blurred,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "max_iter_overrides": {k: v for k, v in self.max_iter_overrides},
            "dtype": self.dtype,
            "init": self.init,
            "psnr": self.psnr,
            "ssim": self.ssim,
            "seeding": self.seeding,
            "rule": self.rule.to_dict(),
        }
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_dict()
        return d


# --------------------------------------------------------------------------- (de)serialisation
_TOP_KEYS = {
    "name", "description", "images", "kernels", "noise_levels", "noise_levels_255", "boundary",
    "seed", "quantize_blurred", "max_iter", "tol", "max_iter_overrides", "dtype", "init", "psnr",
    "ssim", "seeding", "rule", "calibration",
}


def protocol_from_dict(d: dict[str, Any], *, source: str = "") -> Protocol:
    """Build a :class:`Protocol` from its dict/TOML form; unknown keys raise ``ValueError``.

    Noise levels are given either as ``noise_levels`` (``[0, 1]`` scale) or ``noise_levels_255``
    (divided by 255 here, so ``2.55`` gives exactly ``2.55 / 255``); with both, the ``255`` form
    is authoritative.
    """
    if not isinstance(d, dict):
        raise TypeError(f"protocol must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - _TOP_KEYS)
    where = f" in {source}" if source else ""
    if unknown:
        raise ValueError(f"unknown protocol keys {unknown}{where}")
    for key in ("name", "images", "kernels", "rule"):
        if key not in d:
            raise ValueError(f"protocol is missing {key!r}{where}")
    if "noise_levels_255" in d:
        noise = tuple(float(v) / 255.0 for v in d["noise_levels_255"])
    elif "noise_levels" in d:
        noise = tuple(parse_noise(v) for v in d["noise_levels"])
    else:
        raise ValueError(f"protocol needs noise_levels or noise_levels_255{where}")
    rule_d = d["rule"]
    if not isinstance(rule_d, dict) or "entries" not in rule_d:
        raise ValueError(f"protocol rule must be a table with 'entries'{where}")
    entries = []
    for e in rule_d["entries"]:
        extra = sorted(set(e) - {f.name for f in dataclasses.fields(RuleEntry)})
        if extra:
            raise ValueError(f"unknown rule entry keys {extra}{where}")
        e = dict(e)
        if "noise" in e and e["noise"] is not None:
            e["noise"] = parse_noise(e["noise"])
        entries.append(RuleEntry(**e))
    rule = ParameterRule(entries=tuple(entries), noise_floor=float(rule_d.get("noise_floor", 1e-3)))
    cal = None
    if d.get("calibration"):
        c = dict(d["calibration"])
        for k in ("dev_images", "kernels", "grid", "gamma_grid"):
            c[k] = tuple(c.get(k, ()))
        cal = Calibration(**c)
    overrides = d.get("max_iter_overrides", {}) or {}
    simple = {k: d[k] for k in ("boundary", "seed", "quantize_blurred", "max_iter", "tol", "dtype",
                                "init", "psnr", "ssim", "seeding") if k in d}
    return Protocol(
        name=str(d["name"]),
        description=str(d.get("description", "")),
        images=str(d["images"]),
        kernels=tuple(str(k) for k in d["kernels"]),
        noise_levels=noise,
        rule=rule,
        max_iter_overrides=tuple((str(k), v) for k, v in sorted(overrides.items())),
        calibration=cal,
        source=source,
        **simple,
    )


def available_protocols() -> list[str]:
    """Names of the shipped protocols (``benchmarks/protocols/*.toml``)."""
    return sorted(p.stem for p in _DIR.glob("*.toml"))


def load_protocol(name_or_path: str | Path) -> Protocol:
    """A shipped protocol by name (``"levin10"``) or a TOML file by path.

    :raises FileNotFoundError: neither a shipped name nor an existing file (lists the names).
    :raises ValueError: malformed TOML or protocol.
    """
    if isinstance(name_or_path, Protocol):
        return name_or_path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if not (path.suffix == ".toml" and path.is_file()):
        cand = _DIR / f"{text}.toml"
        if cand.is_file():
            path = cand
        elif path.suffix == ".toml":
            raise FileNotFoundError(f"protocol file not found: {text!r}")
        else:
            raise FileNotFoundError(
                f"unknown protocol {text!r}; shipped: {', '.join(available_protocols())} "
                "(or give a .toml path)"
            )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"protocol file {str(path)!r} is not valid TOML: {exc}") from None
    return protocol_from_dict(data, source=str(path))


# --------------------------------------------------------------------------- TOML writer
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write a non-finite float to TOML: {v!r}")
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_protocol(protocol: Protocol, path: str | Path | None = None) -> str:
    """The protocol as TOML text (written to ``path`` when given). Round-trips through
    :func:`load_protocol`."""
    d = protocol.to_dict()
    lines = [f"# Deblurring protocol {protocol.name!r} (benchmarks/protocols.py documents every key)."]
    rule = d.pop("rule")
    cal = d.pop("calibration", None)
    overrides = d.pop("max_iter_overrides")
    d.pop("noise_levels")  # the /255 form is exact and authoritative
    for k, v in d.items():
        lines.append(f"{k} = {_toml_value(v)}")
    lines.append("")
    lines.append("[max_iter_overrides]")
    for k, v in overrides.items():
        lines.append(f"{_toml_value(k)} = {v}")
    lines.append("")
    lines.append("[rule]")
    lines.append(f"noise_floor = {_toml_value(float(rule['noise_floor']))}")
    for e in rule["entries"]:
        lines.append("")
        lines.append("[[rule.entries]]")
        for k, v in e.items():
            lines.append(f"{k} = {_toml_value(v)}")
    if cal is not None:
        lines.append("")
        lines.append("[calibration]")
        for k, v in cal.items():
            lines.append(f"{k} = {_toml_value(v)}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text)
    return text
