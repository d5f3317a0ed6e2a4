r"""Accelerated against plain fixed-point loops, measured side by side (``pnp bench accel``).

For each case (image, kernel, noise, denoiser, solver) of a deblurring protocol the case is
degraded exactly as :mod:`benchmarks.runner` does, the parameters come from the protocol's rule,
and the solver runs twice from ``A^T y`` to the protocol's ``tol`` (or budget): once plain, once
with ``acceleration="anderson"``. The two runs are interleaved (the order alternates from case to
case, so slow drifts of a shared machine hit both), in the same process and thread setting.

Per case: iterations (= evaluations of the fixed-point map = denoiser calls, rejected Anderson
candidates included), wall time, PSNR of each limit, convergence and finiteness, and the Anderson
counts. The summary per (denoiser, solver): median iterations of each and their ratio, total wall
time of each and their ratio, the median per-case time ratio, the largest PSNR difference
``|PSNR_acc - PSNR_plain|``, divergences (a run that ends non-finite or not converged) and the
share of accepted Anderson candidates.

The colour photo case (:func:`photo_case`): scikit-image's ``astronaut`` (512x512 RGB), the
given kernel and noise, with the parameters of :func:`pnp.deblur`'s default rule, plain and
accelerated advancing in alternation (one iteration each in turn, each timed).
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchmarks.degrade import degrade, list_images, load_clean, to_tensor
from benchmarks.protocols import Protocol

__all__ = ["accel_case", "accel_markdown", "photo_case", "run_accel", "summarise"]


def _run(solver_cls: Any, physics: Any, y: torch.Tensor, den: Any, *, sigma: float, gamma: float,
         max_iter: int, tol: float, x_true: torch.Tensor, acceleration: str, memory: int) -> dict[str, Any]:
    from pnp.metrics import psnr

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = solver_cls(physics, y, den, sigma=sigma, gamma=gamma, max_iter=max_iter, tol=tol,
                         acceleration=acceleration, anderson_memory=memory).run()
    wall = time.perf_counter() - t0
    finite = bool(torch.isfinite(res.x).all())
    out = {
        "iterations": res.iterations,
        "converged": res.converged,
        "finite": finite,
        "stop_reason": res.stop_reason,
        "wall_s": wall,
        "psnr": float(psnr(res.x.double(), x_true.double())[0]) if finite else None,
        "final_residual": float(res.history.residual[-1].max()) if res.iterations else None,
        "guarantee_holds": res.guarantee.holds,
        "guarantee_reason": res.guarantee.reason,
    }
    if res.acceleration is not None:
        out["anderson_tried"] = res.acceleration.total_tried
        out["anderson_accepted"] = res.acceleration.total_accepted
        out["anderson_restarts"] = int(sum(res.acceleration.restarts))
    return out


def accel_case(image_path: str, kernel: str, noise: float, *, protocol: Protocol, denoiser: str,
               solver: str, memory: int = 5, accelerated_first: bool = False,
               max_iter: int | None = None) -> dict[str, Any]:
    """One case, plain and accelerated (the record described in the module docstring)."""
    from benchmarks.baselines import describe
    from benchmarks.execute import _kernel
    from benchmarks.execute import cached_denoiser as _denoiser
    from benchmarks.plan import rule_solver as _rule_solver
    from operators import FFTBlur
    from pnp.api import SOLVERS

    dtype = getattr(torch, protocol.dtype)
    clean, _ = load_clean(image_path)
    k = _kernel(kernel)
    deg = degrade(clean, k.numpy(), noise, seed=protocol.seed, quantize=protocol.quantize_blurred)
    y = to_tensor(deg.observed, dtype=dtype)
    x_true = to_tensor(deg.clean, dtype=dtype)
    physics = FFTBlur(k)
    h, w = y.shape[-2:]
    opnorm = physics.opnorm(image_size=(h, w))
    label = describe(denoiser)
    s, gamma = protocol.rule.parameters(label, solver=_rule_solver(solver), noise=noise, opnorm=opnorm)
    budget = int(max_iter) if max_iter is not None else protocol.budget(label)
    runs: dict[str, Any] = {}
    order = ("anderson", "none") if accelerated_first else ("none", "anderson")
    for acc in order:
        den = _denoiser(denoiser, "cpu")  # TV: a fresh warm start per run
        runs[acc] = _run(SOLVERS[solver], physics, y, den, sigma=s, gamma=gamma, max_iter=budget,
                         tol=protocol.tol, x_true=x_true, acceleration=acc, memory=memory)
    return {
        "image": Path(image_path).name,
        "kernel": kernel,
        "noise_255": round(noise * 255, 6),
        "denoiser": label,
        "solver": solver,
        "sigma": s,
        "gamma": gamma,
        "max_iter": budget,
        "tol": protocol.tol,
        "memory": memory,
        "order": list(order),
        "plain": runs["none"],
        "accel": runs["anderson"],
    }


def run_accel(protocol: Protocol, *, denoisers: tuple[str, ...], solvers: tuple[str, ...],
              noise: float, images: tuple[int, ...] | None = None, kernels: tuple[int, ...] | None = None,
              data: str | None = None, memory: int = 5, max_iter: int | None = None,
              out: str | Path | None = None,
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every case of the selection (``images``/``kernels``: 0-based indices), interleaved; records
    are appended to ``out/records.jsonl`` as they come (when ``out`` is given)."""
    files = list_images(data if data is not None else protocol.images)
    idx = list(images) if images is not None else list(range(len(files)))
    for i in idx:
        if not 0 <= i < len(files):
            raise ValueError(f"image index {i} out of range (0..{len(files) - 1})")
    kidx = list(kernels) if kernels is not None else list(range(len(protocol.kernels)))
    for i in kidx:
        if not 0 <= i < len(protocol.kernels):
            raise ValueError(f"kernel index {i} out of range (0..{len(protocol.kernels) - 1})")
    ni = protocol.noise_index(noise)
    nu = protocol.noise_levels[ni] if ni is not None else float(noise)
    records = []
    path = None
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out) / "records.jsonl"
    n = 0
    total = len(idx) * len(kidx) * len(denoisers) * len(solvers)
    for i in idx:
        for ki in kidx:
            for den in denoisers:
                for sol in solvers:
                    rec = accel_case(str(files[i]), protocol.kernels[ki], nu, protocol=protocol,
                                     denoiser=den, solver=sol, memory=memory,
                                     accelerated_first=bool(n % 2), max_iter=max_iter)
                    n += 1
                    records.append(rec)
                    if path is not None:
                        with open(path, "a") as f:
                            f.write(json.dumps(rec) + "\n")
                    if log is not None:
                        p, a = rec["plain"], rec["accel"]
                        log(f"[{n}/{total}] {rec['image']} {rec['kernel']} {den} {sol}: "
                            f"{p['iterations']} -> {a['iterations']} it, {p['wall_s']:.1f} -> "
                            f"{a['wall_s']:.1f} s, PSNR {p['psnr']:.3f} / {a['psnr']:.3f}")
    return records


def _diverged(run: dict[str, Any]) -> bool:
    return not (run["finite"] and run["converged"])


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (denoiser, solver) (module docstring)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["denoiser"], r["solver"]), []).append(r)
    rows = []
    for (den, sol), rs in groups.items():
        it_p = [r["plain"]["iterations"] for r in rs]
        it_a = [r["accel"]["iterations"] for r in rs]
        t_p = [r["plain"]["wall_s"] for r in rs]
        t_a = [r["accel"]["wall_s"] for r in rs]
        dpsnr = [r["accel"]["psnr"] - r["plain"]["psnr"] for r in rs
                 if r["accel"]["psnr"] is not None and r["plain"]["psnr"] is not None]
        tried = sum(r["accel"].get("anderson_tried", 0) for r in rs)
        acc = sum(r["accel"].get("anderson_accepted", 0) for r in rs)
        rows.append({
            "denoiser": den,
            "solver": sol,
            "cases": len(rs),
            "median_iterations_plain": statistics.median(it_p),
            "median_iterations_accel": statistics.median(it_a),
            "iterations_ratio": statistics.median(it_p) / max(statistics.median(it_a), 1e-12),
            "median_case_iterations_ratio": statistics.median(p / a for p, a in zip(it_p, it_a)),
            "wall_plain_s": sum(t_p),
            "wall_accel_s": sum(t_a),
            "wall_ratio": sum(t_p) / max(sum(t_a), 1e-12),
            "median_case_wall_ratio": statistics.median(p / a for p, a in zip(t_p, t_a)),
            "max_abs_psnr_diff": max((abs(d) for d in dpsnr), default=None),
            "mean_psnr_diff": float(np.mean(dpsnr)) if dpsnr else None,
            "diverged_plain": sum(_diverged(r["plain"]) for r in rs),
            "diverged_accel": sum(_diverged(r["accel"]) for r in rs),
            "anderson_accepted": acc,
            "anderson_tried": tried,
        })
    return rows


def accel_markdown(rows: list[dict[str, Any]], photo: dict[str, Any] | None = None) -> str:
    """The summary table (and the photo case) as Markdown."""
    lines = [
        "| denoiser | solver | cases | median it. plain | median it. accel | it. ratio | wall plain (s) "
        "| wall accel (s) | wall ratio | median case wall ratio | max abs dPSNR (dB) | not converged plain / accel "
        "| Anderson accepted / tried |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dp = "n/a" if r["max_abs_psnr_diff"] is None else f"{r['max_abs_psnr_diff']:.4f}"
        lines.append(
            f"| {r['denoiser']} | {r['solver']} | {r['cases']} | {r['median_iterations_plain']:g} | "
            f"{r['median_iterations_accel']:g} | {r['iterations_ratio']:.2f} | {r['wall_plain_s']:.1f} | "
            f"{r['wall_accel_s']:.1f} | {r['wall_ratio']:.2f} | {r['median_case_wall_ratio']:.2f} | {dp} | "
            f"{r['diverged_plain']} / {r['diverged_accel']} | {r['anderson_accepted']} / {r['anderson_tried']} |"
        )
    if photo is not None:
        p, a = photo["plain"], photo["accel"]
        lines += [
            "",
            f"Colour photo ({photo['image']}, {photo['shape']}, {photo['kernel']}, noise {photo['noise']:g}, "
            f"{photo['denoiser']} {photo['solver']}, tol {photo['tol']:g}):",
            "",
            "| run | iterations | wall (s) | PSNR (dB) | converged |",
            "|---|---:|---:|---:|---:|",
            f"| plain | {p['iterations']} | {p['wall_s']:.1f} | {p['psnr']:.3f} | {p['converged']} |",
            f"| anderson | {a['iterations']} | {a['wall_s']:.1f} | {a['psnr']:.3f} | {a['converged']} |",
            "",
            f"Wall ratio plain / accelerated: {p['wall_s'] / a['wall_s']:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def photo_case(*, kernel: str = "gaussian:25:1.6", noise: float = 0.01, denoiser: str = "rk-averaged",
               solver: str = "fbs", max_iter: int = 150, tol: float = 1e-4, memory: int = 5,
               seed: int = 0) -> dict[str, Any]:
    """scikit-image's ``astronaut`` with the parameters :func:`pnp.deblur` picks (its default rule,
    the command line's ``--max-iter`` and ``--tol`` defaults), plain and accelerated. The two
    solvers advance in alternation, one iteration each in turn, each iteration timed on its own,
    so that the load of a shared machine falls on both alike; wall time = the sum of a run's
    iteration times."""
    from skimage import data

    import pnp
    from operators import add_gaussian_noise
    from pnp.api import SOLVERS, default_parameters

    img = torch.from_numpy(data.astronaut().astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
    physics = pnp.make_blur(kernel)
    y = add_gaussian_noise(physics.A(img), noise, seed=seed)
    den = pnp.get_denoiser(denoiser)
    opn = physics.opnorm(image_size=tuple(y.shape[-2:]))
    sigma, gamma = default_parameters(noise, denoiser=den, opnorm=opn, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solvers = {acc: SOLVERS[solver](physics, y, den, sigma=sigma, gamma=gamma, max_iter=max_iter,
                                        tol=tol, acceleration=acc, anderson_memory=memory)
                   for acc in ("none", "anderson")}
        walls = {acc: 0.0 for acc in solvers}
        while True:
            live = [a for a, s in solvers.items() if not s._stopped and s.iteration < max_iter]
            if not live:
                break
            for acc in live:
                t0 = time.perf_counter()
                solvers[acc].step()
                walls[acc] += time.perf_counter() - t0
    runs = {}
    for acc, s in solvers.items():
        res = s.result()
        runs[acc] = {
            "iterations": res.iterations, "converged": res.converged, "wall_s": walls[acc],
            "psnr": float(pnp.psnr(res.x.double(), img.double())[0]),
            "stop_reason": res.stop_reason, "guarantee_reason": res.guarantee.reason,
        }
    return {"image": "skimage.data.astronaut()", "shape": list(img.shape), "kernel": kernel,
            "noise": noise, "denoiser": denoiser, "solver": solver, "tol": tol, "max_iter": max_iter,
            "sigma": sigma, "gamma": gamma, "memory": memory, "timing": "alternating iterations",
            "plain": runs["none"], "accel": runs["anderson"]}
