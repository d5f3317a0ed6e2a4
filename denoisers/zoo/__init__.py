"""The weight zoo: shipped, certified denoisers, loadable by name without any download.

``available()`` lists the names; ``load(name)`` returns a deepinv-compatible denoiser
``D(x, sigma)`` with a ``.certificate`` (at least ``lipschitz_bound`` and ``alpha``) and
``.metadata`` (``noise_levels``: the range of levels it serves).

Serving other noise levels. A network ``N`` trained at level ``s0`` serves level ``s`` by
conjugation with a scaling, ``D_s(x) = N(c x) / c`` with ``c = s0 / s``: the noise of ``c x`` has
level ``s0``. If ``N = (1 - alpha) I + alpha R`` with ``R`` non-expansive then
``D_s = (1 - alpha) I + alpha R_c`` with ``R_c(x) = R(c x) / c`` non-expansive, so ``D_s`` keeps
the certificate of ``N`` for every ``s``. The *quality* does not carry over that far: the network
has only seen intensities in ``[0, 1]``, and far from ``s0`` (``c`` of 2.5 and more) it loses
several dB (BENCHMARKS.md, "zoo members").

Certificates of shipped weights. ``weights/MANIFEST.json`` records the SHA-256 digest of every
shipped file, written by ``python -m denoisers.zoo.manifest`` only after recomputing each file's
certificate from its weights and finding it equal to the stored one. :func:`load` installs the
stored certificate of a file whose digest matches (loading is then fast); a file that is not in
the manifest or whose bytes changed is recomputed and compared, as every checkpoint loaded by
path is, and ``load(name, verify=True)`` (used by ``pnp certify``) always recomputes.

The family name (e.g. ``"rk-averaged"``) picks, per image, one shipped network and rescales it.
Member ``i`` (sorted by training level) serves ``[t_{i-1}, t_i)``; the switch levels ``t`` are the
geometric means of neighbouring training levels (the nearest member in log scale) unless the file
``weights/<family>.family.json`` gives measured ones (``{"switch_levels": [...]}``, one fewer
than the members, increasing, with the measurement that chose them).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from deepinv.models import Denoiser
from torch import nn

from denoisers.certificate import Certificate
from denoisers.contract import check_input, sigma_vector
from denoisers.serialize import load_denoiser

__all__ = ["available", "load", "manifest_digests", "weights_dir", "ScaledDenoiser", "ZooFamily", "PerChannel", "FAMILY", "FIRM_PREFIX"]

_WEIGHTS = Path(__file__).resolve().parent / "weights"
FAMILY = "rk-averaged"
#: Prefix of the shipped firmly non-expansive networks (``alpha <= 1/2``): trained with the final
#: relaxation ``D = (x + N(x)) / 2`` (``theta = 1/2``), so that PnP-ADMM/DRS has its guarantee without
#: ``firm=True``. They are not members of the family (its name is a different prefix).
FIRM_PREFIX = "rk-firm-"


def weights_dir() -> Path:
    return _WEIGHTS


def _model_files() -> dict[str, Path]:
    if not _WEIGHTS.is_dir():
        return {}
    return {p.name[: -len(".safetensors")]: p for p in sorted(_WEIGHTS.glob("*.safetensors"))}


#: Shipped ridge weights served under another boundary: ``name -> (weights name, boundary)``. The same
#: weights and certified constants (a circular ``W`` has no boundary factor); ``crr-circular`` is the
#: prior on the image's torus, the match of a circular blur (the deblurring protocols' model) and
#: about five times cheaper than the reflected ``crr`` (BENCHMARKS.md, issue 14, circular convolutions).
RIDGE_VARIANTS: dict[str, tuple[str, str]] = {"crr-circular": ("crr", "circular")}


def available() -> list[str]:
    """Names that :func:`load` accepts: each shipped network, the ridge variants of shipped ridge
    weights (:data:`RIDGE_VARIANTS`), and the family name when any members exist."""
    files = _model_files()
    names = sorted([*files, *(v for v, (base, _) in RIDGE_VARIANTS.items() if base in files)])
    if any(n.startswith(FAMILY + "-") for n in names):
        names = [FAMILY, *names]
    return names


def _sigma_vec(sigma: Any, batch: int, like: torch.Tensor) -> torch.Tensor:
    return sigma_vector(sigma, batch, like)


class ScaledDenoiser(Denoiser):
    """``D(x, s) = N(c x, s0) / c`` with ``c = s0 / s`` (see module docstring): one network trained
    at ``s0`` serves every level, with the network's certificate."""

    def __init__(self, net: nn.Module, train_sigma: float) -> None:
        super().__init__()
        if not train_sigma > 0:
            raise ValueError(f"train_sigma must be > 0, got {train_sigma!r}")
        self.net = net
        self.train_sigma = float(train_sigma)
        self.metadata = dict(getattr(net, "metadata", {}))

    @property
    def certificate(self) -> Certificate:
        return self.net.certificate

    def forward(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        check_input(x)
        s = _sigma_vec(sigma, x.shape[0], x)
        c = (self.train_sigma / s).view(-1, 1, 1, 1)
        return self.net(x * c, self.train_sigma) / c


class PerChannel(Denoiser):
    """Apply a grey-level denoiser to each channel separately (keeps the certificate: the map is
    block-diagonal with identical averaged blocks)."""

    def __init__(self, denoiser: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.metadata = dict(getattr(denoiser, "metadata", {}))

    @property
    def certificate(self) -> Certificate:
        return self.denoiser.certificate

    def forward(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        check_input(x)
        b, c = x.shape[:2]
        if c == 1:
            return self.denoiser(x, sigma)
        if isinstance(sigma, torch.Tensor) and sigma.numel() > 1:
            sigma = sigma.flatten().repeat_interleave(c)
        y = self.denoiser(x.reshape(b * c, 1, *x.shape[2:]), sigma)
        return y.reshape(b, c, *x.shape[2:])


class ZooFamily(Denoiser):
    """All shipped networks of a family; each image is denoised by the network whose training
    level is nearest to its ``sigma`` (log scale), rescaled (:class:`ScaledDenoiser`).

    Certificate: for each ``sigma`` the map is one member's rescaled network, so the family is
    certified with the largest ``alpha`` and Lipschitz bound among its members.
    """

    def __init__(self, members: list[ScaledDenoiser], switch_levels: list[float] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("a zoo family needs at least one network")
        self.members = nn.ModuleList(sorted(members, key=lambda m: m.train_sigma))
        self.levels = [m.train_sigma for m in self.members]
        if switch_levels is None:
            switch_levels = [math.sqrt(a * b) for a, b in zip(self.levels, self.levels[1:])]
        switch_levels = [float(t) for t in switch_levels]
        if len(switch_levels) != len(self.levels) - 1:
            raise ValueError(f"switch_levels needs {len(self.levels) - 1} value(s) for {len(self.levels)} "
                             f"members, got {len(switch_levels)}")
        bounds = [0.0, *switch_levels]
        if not all(math.isfinite(t) for t in switch_levels) or not all(a < b for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"switch_levels must be finite, > 0 and increasing, got {switch_levels}")
        self.switch_levels = switch_levels
        self.metadata = {
            "family": FAMILY,
            "members": [m.metadata.get("name") for m in self.members],
            "train_sigmas": self.levels,
            "switch_levels": switch_levels,
            "noise_levels": [2.55 / 255, 50 / 255],
        }

    def member_index(self, sigma: Any, batch: int = 1, like: torch.Tensor | None = None) -> torch.Tensor:
        """Index of the member that serves each image's ``sigma``."""
        like = like if like is not None else torch.zeros(())
        s = _sigma_vec(sigma, batch, like)
        t = torch.tensor(self.switch_levels, dtype=s.dtype, device=s.device)
        return torch.bucketize(s, t, right=True)

    @property
    def certificate(self) -> Certificate:
        certs = [m.certificate for m in self.members]
        alphas = [c.alpha for c in certs]
        alpha = None if any(a is None for a in alphas) else max(alphas)  # type: ignore[type-var]
        return Certificate(
            lipschitz_bound=max(c.lipschitz_bound for c in certs),
            alpha=alpha,
            method="per-level choice among certified networks (each rescaled); worst member's certificate",
            layers=tuple(layer for c in certs for layer in c.layers),
            notes="; ".join(c.notes for c in certs if c.notes),
            exact=all(c.exact for c in certs),
        )

    def forward(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        check_input(x)
        s = _sigma_vec(sigma, x.shape[0], x)
        idx = self.member_index(s, x.shape[0], x)
        out = torch.empty_like(x)
        for j in idx.unique().tolist():
            sel = (idx == j).nonzero().flatten()
            out[sel] = self.members[j](x[sel], s[sel])
        return out


def _switch_levels(family: str) -> list[float] | None:
    """Measured switch levels of a family (``weights/<family>.family.json``), if shipped."""
    path = _WEIGHTS / f"{family}.family.json"
    if not path.is_file():
        return None
    try:
        levels = json.loads(path.read_text())["switch_levels"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"corrupt family file {path}: {e}") from e
    if not isinstance(levels, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in levels):
        raise ValueError(f"corrupt family file {path}: switch_levels must be a list of numbers")
    return [float(v) for v in levels]


MANIFEST = "MANIFEST.json"


def manifest_digests() -> dict[str, str]:
    """``{file name: sha256}`` of the shipped weights whose certificates were verified."""
    path = _WEIGHTS / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
        return {str(k): str(v["sha256"]) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"corrupt zoo manifest {path}: {e}") from e


def _load_member(path: Path, name: str, digests: dict[str, str]) -> ScaledDenoiser:
    """``digests``: the manifest (empty to recompute); used only for files of the zoo folder."""
    digest = digests.get(path.name) if path.parent.resolve() == _WEIGHTS.resolve() else None
    net = load_denoiser(path, trusted_sha256=digest)
    net.metadata["name"] = name
    for p in net.parameters():
        p.requires_grad_(False)
    sigma = net.metadata.get("sigma")
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"{path}: the checkpoint's metadata has no valid training noise level 'sigma' "
                         f"(got {sigma!r}); save it with metadata={{'sigma': ...}}")
    sigma = float(sigma)
    if net.config.noise_conditional:
        # a conditional network serves its training range directly; rescale only outside it
        lo, hi = net.metadata.get("noise_levels", [sigma, sigma])
        sigma = math.sqrt(lo * hi)
    wrapped = ScaledDenoiser(net, sigma)
    wrapped.metadata.update({"name": name, "noise_levels": [2.55 / 255, 50 / 255], "train_sigma": sigma})
    return wrapped


def _is_ridge(path: Path) -> bool:
    """Whether ``path`` is a ridge-regulariser checkpoint (its metadata says so)."""
    from denoisers.checkpoint import load_checkpoint

    if not path.is_file():
        return False
    try:
        _, meta = load_checkpoint(path)
    except Exception:  # noqa: BLE001  (not ours / corrupt: the regular loader reports it)
        return False
    from denoisers.ridge.train import RIDGE_KIND

    return meta.get("kind") == RIDGE_KIND


def _load_ridge(path: Path, name: str, boundary: str | None = None) -> nn.Module:
    """A ridge regulariser's prox denoiser (``D(y, sigma) = prox_{lambda(sigma) R}(y)``), tol 1e-4,
    warm-started across calls; one model serves every noise level. ``boundary``: serve the weights
    with this boundary instead of the stored one."""
    from denoisers.ridge import RidgeDenoiser
    from denoisers.ridge.train import load_ridge

    reg, meta = load_ridge(path)
    if boundary is not None and boundary != reg.config.boundary:
        reg = reg.with_boundary(boundary)
        meta = {**meta, "served_boundary": boundary}
    for p in reg.parameters():
        p.requires_grad_(False)
    den = RidgeDenoiser(reg, tol=1e-4, max_iter=2000)
    den.metadata = {k: v for k, v in meta.items() if k not in ("format", "version")}
    den.metadata.update({"name": name, "noise_levels": [reg.config.sigma_min, reg.config.sigma_max]})
    den.eval()
    return den


def load(name: str, *, device: str | torch.device | None = None, verify: bool = False) -> nn.Module:
    """Load a shipped denoiser by name (see :func:`available`) or a checkpoint by path.

    Grey-level networks applied to colour images act per channel (:class:`PerChannel`).
    ``verify=True`` recomputes the certificate of shipped weights too (module docstring).
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a string or a path, got {type(name).__name__}")
    files = _model_files()
    digests = {} if verify else manifest_digests()
    sname = str(name)
    if sname in RIDGE_VARIANTS and RIDGE_VARIANTS[sname][0] in files:
        base, boundary = RIDGE_VARIANTS[sname]
        model = _load_ridge(files[base], sname, boundary)
        if device is not None:
            model.to(device)
        return model
    ridge_path = files.get(sname) if sname in files else (Path(sname) if sname.endswith(".safetensors") else None)
    if ridge_path is not None and _is_ridge(ridge_path):
        model = _load_ridge(ridge_path, sname if sname in files else Path(sname).stem)
        if device is not None:
            model.to(device)
        return model
    if sname == FAMILY and any(n.startswith(FAMILY + "-") for n in files):
        model: nn.Module = ZooFamily([_load_member(p, n, digests) for n, p in files.items()
                                      if n.startswith(FAMILY + "-")],
                                     _switch_levels(FAMILY))
    elif sname in files:
        model = _load_member(files[sname], sname, digests)
    elif sname.endswith(".safetensors") or Path(sname).exists():
        model = _load_member(Path(sname), Path(sname).stem, digests)
    else:
        known = ", ".join(available()) or "(no shipped weights)"
        raise ValueError(f"unknown denoiser {sname!r}; available: {known}")
    model = PerChannel(model)
    model.eval()
    if device is not None:
        model.to(device)
    return model
