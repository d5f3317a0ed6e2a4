r"""Denoisers and baselines for the benchmarks, resolved by name.

Denoiser names accepted by :func:`resolve_denoiser` (and ``pnp bench deblur --denoiser``):

* ``tv``, ``quadratic``: the classical certified prox denoisers (:mod:`denoisers.classical`);
* ``bm3d``: BM3D (the ``bm3d`` package; CBM3D ``bm3d_rgb`` for colour) -- **no certificate**,
  so every PnP run with it reports "no guarantee";
* a zoo name (``denoisers.available()``; the family ``rk-averaged`` once weights ship);
* a checkpoint path (anything :func:`denoisers.load` reads, e.g. ``model.safetensors``);
* ``py:MODULE:CALLABLE``: ``CALLABLE()`` from an importable module must return a denoiser
  ``D(x, sigma)``; with :func:`register_denoiser` this is **the hook for the unconstrained
  network of the same size** (no certificate -> "no guarantee"; run it with ``--max-iter 1000``
  to see whether the loop still converges). Checkpoints that :func:`denoisers.load` cannot read
  (e.g. a plain ``state_dict``) go through a registered factory or a ``py:`` factory;
* ``wiener`` / ``tikhonov``: closed-form baselines, not denoisers: the exact minimisers (one FFT
  division, circular blur with transfer function ``K``)::

      wiener:    x = argmin 1/2 ||A x - y||^2 + lambda/2 ||grad x||^2
                   = F^-1( conj(K) F y / (|K|^2 + lambda * Lambda) )   (Lambda: circular Laplacian)
      tikhonov:  x = argmin 1/2 ||A x - y||^2 + lambda/2 ||x||^2
                   = F^-1( conj(K) F y / (|K|^2 + lambda) )

  (``wiener`` is the Wiener filter for a ``1 / Lambda`` image power spectrum); ``lambda`` comes
  from the protocol's parameter rule.

:func:`run_deepinv_pgd` runs deepinv's own PGD with the same operator, denoiser, step and
tolerance, the cross-check of our PnP-FBS loop.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from denoisers.bm3d import BM3DDenoiser
from pnp.resolve import CLOSED_FORM as _CLOSED_FORM

__all__ = [
    "BM3DDenoiser",
    "CLOSED_FORM",
    "closed_form",
    "denoiser_fingerprint",
    "known_denoisers",
    "register_denoiser",
    "resolve_denoiser",
    "run_deepinv_pgd",
]

#: Closed-form baselines (not denoisers; one record per problem with solver "closed-form").
CLOSED_FORM = _CLOSED_FORM


def register_denoiser(name: str, factory: Callable[[], Any]) -> None:
    """Make ``name`` resolve to ``factory()`` (e.g. an unconstrained network of the same size as
    the certified one), everywhere: :func:`pnp.resolve.register_denoiser`. ``factory`` must be
    importable in worker processes: register it at import time of a module, or pass
    ``py:MODULE:CALLABLE`` as the denoiser name instead."""
    from pnp.resolve import register_denoiser as _register

    _register(name, factory)


def known_denoisers() -> list[str]:
    """Names the benchmarks accept without a path (plus ``py:`` factories, paths): the denoisers
    of :func:`pnp.resolve.known_denoisers` and the closed-form baselines."""
    from pnp.resolve import known_denoisers as _known

    names = _known()
    return names[:3] + [n for n in CLOSED_FORM if n not in names] + names[3:]


def resolve_denoiser(name: str, *, device: torch.device | str | None = None) -> Any:
    """The denoiser ``D(x, sigma)`` called ``name`` on ``device``: :func:`pnp.resolve.resolve_denoiser`
    (the resolver of every entry point; its module docstring lists the names and the errors).

    :raises ValueError: closed-form names (they are not denoisers), unknown names (lists them),
        checkpoints that cannot be loaded.
    """
    from pnp.resolve import resolve_denoiser as _resolve

    return _resolve(name, device=device, argument="denoiser")


def closed_form(y: Tensor, physics: Any, lam: float, *, kind: str) -> Tensor:
    """The closed-form ``wiener`` / ``tikhonov`` estimate (module docstring) for circular blur."""
    if kind not in CLOSED_FORM:
        raise ValueError(f"kind must be one of {CLOSED_FORM}, got {kind!r}")
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"lambda must be finite and > 0, got {lam!r}")
    from denoisers.classical import circular_laplacian_spectrum

    h, w = y.shape[-2:]
    spec = physics.spectrum((h, w), device=y.device, dtype=y.dtype)
    power = spec.real.square() + spec.imag.square()
    reg = circular_laplacian_spectrum(h, w, dtype=y.dtype, device=y.device) if kind == "wiener" else 1.0
    xf = spec.conj() * torch.fft.rfft2(y) / (power + lam * reg)
    return torch.fft.irfft2(xf, s=(h, w))


class _Recorder(nn.Module):
    """Wraps a denoiser: records each output's relative change, PSNR and the time between calls."""

    def __init__(self, denoiser: Any, x0: Tensor, x_true: Tensor | None) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.prev = x0
        self.x_true = x_true
        self.residual: list[float] = []
        self.psnr: list[float] = []
        self.times: list[float] = []
        self.t_last = time.perf_counter()

    def forward(self, x: Tensor, sigma: Any, *args: Any, **kwargs: Any) -> Tensor:
        from pnp.metrics import psnr

        out = self.denoiser(x, sigma)
        with torch.no_grad():
            r = (out - self.prev).flatten().norm() / self.prev.flatten().norm().clamp_min(1e-12)
            self.residual.append(float(r))
            if self.x_true is not None:
                self.psnr.append(float(psnr(out, self.x_true)[0]))
        self.prev = out
        now = time.perf_counter()
        self.times.append(now - self.t_last)
        self.t_last = now
        return out


def run_deepinv_pgd(
    physics: Any,
    y: Tensor,
    denoiser: Any,
    *,
    sigma: float,
    gamma: float,
    max_iter: int,
    tol: float,
    x_true: Tensor | None = None,
) -> dict[str, Any]:
    """deepinv's ``optim_builder("PGD")`` with ``PnP(denoiser)``, ``L2()``, ``stepsize=gamma``,
    ``g_param=sigma``, early stop on deepinv's relative residual ``< tol``.

    Returns ``x``, ``iterations`` (denoiser calls), ``residual`` / ``psnr`` per iteration (as our
    solvers define them: ``||x_{k+1} - x_k|| / ||x_k||``) and ``times`` (seconds per iteration).
    """
    import warnings

    from deepinv.optim import optim_builder
    from deepinv.optim.data_fidelity import L2
    from deepinv.optim.prior import PnP

    with torch.no_grad():
        x0 = physics.A_adjoint(y)
    rec = _Recorder(denoiser, x0, x_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optim_builder(
            "PGD", prior=PnP(rec), data_fidelity=L2(), max_iter=int(max_iter), early_stop=True,
            crit_conv="residual", thres_conv=float(tol),
            params_algo={"stepsize": float(gamma), "g_param": float(sigma), "lambda": 1.0},
        )
        rec.t_last = time.perf_counter()
        with torch.no_grad():
            x = model(y, physics)
    return {
        "x": x,
        "iterations": len(rec.residual),
        "residual": rec.residual,
        "psnr": rec.psnr if x_true is not None else None,
        "times": rec.times,
    }


def describe(name: str) -> str:
    """A short label for a denoiser name (checkpoint paths by file stem)."""
    if os.sep in name or name.endswith(".safetensors"):
        return Path(name).stem
    return name


def file_sha256(path: Path) -> str:
    """SHA-256 of one file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths: list[Path]) -> str:
    """SHA-256 of the lines ``name:sha256`` of ``paths`` (in the given order)."""
    import hashlib

    return hashlib.sha256("".join(f"{p.name}:{file_sha256(p)}\n" for p in paths).encode()).hexdigest()


def _sha256_files(paths: list[Path]) -> str:
    """SHA-256 of one file; for several, :func:`files_digest`."""
    return file_sha256(paths[0]) if len(paths) == 1 else files_digest(paths)


def denoiser_fingerprint(name: str) -> str | None:
    """SHA-256 of the weights behind a denoiser name, or ``None`` when it has none.

    * a zoo network: its ``.safetensors`` file (the digest ``weights/MANIFEST.json`` pins); the
      family name: the digest of the lines ``file:sha256`` of every member and of its
      ``.family.json`` (the switch levels), in name order;
    * a checkpoint path: the file;
    * classical denoisers, closed-form baselines and ``py:`` factories: ``None`` (their code is
      their identity).

    The benchmark runner stores it in every record and reruns a record whose fingerprint differs
    from the current one, so a benchmark resumed after the weights changed never mixes the two.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"denoiser name must be a non-empty string, got {name!r}")
    key = name.strip()
    low = key.lower()
    from pnp.resolve import BUILTIN_LOADERS, _REGISTERED

    if low in _REGISTERED or low in BUILTIN_LOADERS or low in CLOSED_FORM or low.startswith("py:"):
        return None
    path = Path(key).expanduser()
    if path.is_file():
        return _sha256_files([path])
    import denoisers
    from denoisers.zoo import FAMILY, weights_dir

    wdir = weights_dir()
    if key == FAMILY:
        members = sorted(wdir.glob(f"{FAMILY}-*.safetensors"))
        fam = wdir / f"{FAMILY}.family.json"
        return _sha256_files(members + ([fam] if fam.is_file() else [])) if members else None
    from denoisers.zoo import RIDGE_VARIANTS

    if key in RIDGE_VARIANTS and key in denoisers.available():
        base, boundary = RIDGE_VARIANTS[key]  # the weights' digest, tagged with the boundary served
        return hashlib.sha256(f"{_sha256_files([wdir / f'{base}.safetensors'])}:{boundary}".encode()).hexdigest()
    if key in denoisers.available():
        return _sha256_files([wdir / f"{key}.safetensors"])
    return None

