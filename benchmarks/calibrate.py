r"""Calibrate a protocol's parameter rule on a development folder, and freeze it into a new protocol.

For every denoiser, solver and noise level ``nu`` the current rule entry
``s = scale * nu**power, gamma = gamma_scale / ||A||^2`` is the grid's centre; the grid multiplies
``scale`` by each of ``factors`` and ``gamma_scale`` by each of ``gamma_factors``, runs the
benchmark (same degradation, budget and tolerance as the protocol, or ``max_iter``) on the
development images and kernels, and keeps the pair with the highest **mean PSNR**. The winners are
appended to the rule as entries restricted to ``(denoiser, solver, noise)`` (the most specific
entries, so they override the generic power laws), and the protocol is written as a new TOML with a
``[calibration]`` table naming the development images, kernels, grid, budget and date.

Use images disjoint from the test set (e.g. a few ``train400`` images for ``set12`` tests); a
development folder equal to the protocol's test folder triggers a :class:`CalibrationWarning`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.baselines import CLOSED_FORM
from benchmarks.degrade import list_images, resolve_data
from benchmarks.protocols import Calibration, Protocol, RuleEntry, dump_protocol, load_protocol
from benchmarks.runner import Task, check_denoisers, run_task

__all__ = ["CalibrationWarning", "DEFAULT_FACTORS", "calibrate", "write_calibrated"]

DEFAULT_FACTORS = (0.5, 0.7071, 1.0, 1.4142, 2.0)


class CalibrationWarning(UserWarning):
    """The development data overlaps the test data."""


def _score(args: tuple[Protocol, list[Task], str]) -> tuple[float, list[float]]:
    protocol, tasks, device = args
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ps = [run_task(t, protocol, device=device)["psnr"] for t in tasks]
    return float(np.mean(ps)), ps


def _describe(description: str, note: str) -> str:
    """``description`` with ``[note]`` appended once (a recalibration does not repeat it)."""
    tag = f" [{note}]"
    return description if description.endswith(tag) else description + tag


def calibrate(
    protocol: Protocol | str,
    *,
    data: str,
    denoisers: tuple[str, ...],
    solvers: tuple[str, ...] = ("fbs",),
    kernels: tuple[int, ...] | None = None,
    noise_levels: tuple[float, ...] | None = None,
    max_images: int | None = 3,
    max_iter: int | None = None,
    factors: tuple[float, ...] = DEFAULT_FACTORS,
    gamma_factors: tuple[float, ...] = (1.0,),
    name: str | None = None,
    device: str | None = None,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> tuple[Protocol, list[dict[str, Any]]]:
    """Grid-search the rule (module docstring); return ``(calibrated_protocol, scores)``.

    ``scores`` has one dict per grid point: denoiser, solver, noise, factor, gamma_factor, scale,
    gamma_scale, mean_psnr, psnrs, best.
    """
    import torch

    log = log or (lambda s: None)
    base = load_protocol(protocol) if not isinstance(protocol, Protocol) else protocol
    if not factors or any(not (math.isfinite(f) and f > 0) for f in factors):
        raise ValueError(f"factors must be positive numbers, got {factors!r}")
    if not gamma_factors or any(not (math.isfinite(f) and f > 0) for f in gamma_factors):
        raise ValueError(f"gamma_factors must be positive numbers, got {gamma_factors!r}")
    dev_dir = resolve_data(data).resolve()
    try:
        test_dir = resolve_data(base.images).resolve()
    except FileNotFoundError:
        test_dir = None
    if test_dir is not None and dev_dir == test_dir:
        warnings.warn(
            f"calibrating on the protocol's test folder {str(dev_dir)!r}: test numbers would be tuned "
            "on test images; use a disjoint development folder (e.g. train400)",
            CalibrationWarning, stacklevel=2,
        )
    images = list_images(dev_dir)
    if max_images is not None:
        images = images[:max_images]
    check_denoisers(denoisers, allow_closed_form=True)  # before any grid point runs
    kidx = list(kernels) if kernels is not None else list(range(len(base.kernels)))
    for i in kidx:
        if not 0 <= i < len(base.kernels):
            raise ValueError(f"kernel index {i} out of range 0..{len(base.kernels) - 1}")
    noises = list(noise_levels) if noise_levels is not None else list(base.noise_levels)
    work = base if max_iter is None else base.replace(max_iter=int(max_iter), max_iter_overrides=())
    dev = device if device not in (None, "auto") else ("cuda" if torch.cuda.is_available() else "cpu")
    scores: list[dict[str, Any]] = []
    new_entries: list[RuleEntry] = []
    pool = None
    if workers > 1:
        import multiprocessing as mp

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    try:
        for den in denoisers:
            closed = den.lower() in CLOSED_FORM
            # deepinv-pgd runs with the fbs parameters (the cross-check): nothing to tune
            for solver in (("closed-form",) if closed else tuple(s for s in solvers if s != "deepinv-pgd")):
                for nu in noises:
                    tasks = [Task(p.name, str(p), ii, base.kernels[k], k, float(nu), solver, den)
                             for ii, p in enumerate(images) for k in kidx]
                    label = tasks[0].label
                    e = base.rule.entry(label, solver=solver, noise=nu)
                    grid = [(f, g) for f in factors for g in ((1.0,) if closed else gamma_factors)]
                    cands = []
                    for f, g in grid:
                        ent = RuleEntry(denoiser=label, scale=e.scale * f, power=e.power,
                                        gamma_scale=e.gamma_scale * g, solver=solver, noise=float(nu))
                        cands.append((f, g, ent, work.replace(rule=work.rule.with_entries((ent,)))))
                    jobs = [(p, tasks, dev) for _, _, _, p in cands]
                    results = list(pool.map(_score, jobs)) if pool is not None else [_score(j) for j in jobs]
                    best = int(np.argmax([m for m, _ in results]))
                    for i, ((f, g, ent, _), (mean, ps)) in enumerate(zip(cands, results)):
                        scores.append({"denoiser": label, "solver": solver, "noise": float(nu),
                                       "factor": f, "gamma_factor": g, "scale": ent.scale,
                                       "power": ent.power, "gamma_scale": ent.gamma_scale,
                                       "mean_psnr": mean, "psnrs": ps, "best": i == best})
                    f, g, ent, _ = cands[best]
                    new_entries.append(ent)
                    if f in (min(factors), max(factors)) and len(factors) > 1:
                        log(f"note: the best factor {f:g} is at the edge of the grid; widen --factors")
                    log(f"{label} / {solver} / noise {nu * 255:.4g}/255: best factor {f:g} "
                        f"(scale {ent.scale:.4g}), gamma factor {g:g}: {results[best][0]:.2f} dB "
                        f"(grid {min(m for m, _ in results):.2f}..{results[best][0]:.2f})")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    cal = Calibration(
        dev_data=str(dev_dir),
        dev_images=tuple(p.name for p in images),
        kernels=tuple(base.kernels[k] for k in kidx),
        grid=tuple(float(f) for f in factors),
        gamma_grid=tuple(float(g) for g in gamma_factors),
        max_iter=int(work.max_iter),
        date=datetime.date.today().isoformat(),
        base_protocol=base.name,
    )
    new = base.replace(
        name=name or f"{base.name}-cal",
        description=_describe(base.description, f"rule calibrated on {len(images)} image(s) of {dev_dir.name}"),
        rule=base.rule.with_entries(tuple(new_entries)),
        calibration=cal,
    )
    return new, scores


def write_calibrated(protocol: Protocol, scores: list[dict[str, Any]], path: str | os.PathLike[str], *,
                     command: str = "", force: bool = False) -> tuple[Path, Path]:
    """Write the calibrated protocol (TOML) and its grid scores (``<path>.scores.json``)."""
    p = Path(path)
    if p.suffix != ".toml":
        raise ValueError(f"calibrated protocol path must end with .toml, got {str(p)!r}")
    if p.exists() and not force:
        raise FileExistsError(f"{str(p)!r} exists (use --force to overwrite)")
    if not p.parent.exists():
        raise FileNotFoundError(f"directory {str(p.parent)!r} does not exist")
    if command and protocol.calibration is not None:
        protocol = protocol.replace(calibration=dataclasses.replace(protocol.calibration, command=command))
    dump_protocol(protocol, p)
    sp = p.with_suffix(".scores.json")
    sp.write_text(json.dumps({"protocol": protocol.to_dict(), "scores": scores}, indent=1) + "\n")
    return p, sp
