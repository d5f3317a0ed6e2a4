r"""One run of the deblurring benchmark: a :class:`benchmarks.plan.Task` in, its record out.

:func:`run_task` degrades the clean image exactly as the protocol says (:mod:`benchmarks.degrade`),
picks ``(sigma, gamma)`` from the protocol's parameter rule with the exact ``||A||``, runs the
solver from ``x0 = A^T y`` until the largest relative fixed-point residual
``||x_{k+1} - x_k|| / ||x_k||`` drops below ``tol`` or the budget is spent, and returns one record
(:data:`RECORD_KEYS`):

* ``psnr`` / ``ssim`` of the last iterate (definitions in the protocol), ``psnr_input`` of ``y``;
* ``iterations``, ``converged``, ``stop_reason``, ``final_residual`` (relative);
* ``monotone``: whether the *absolute* residual ``||x_{k+1} - x_k||`` never increased (up to
  round-off: an increase counts when ``r_{k+1} > r_k (1 + 1e-3) + 1e-6 ||x_k||``); it is
  non-increasing for every averaged iteration (FBS/HQS; for ADMM it is guaranteed on the
  governing variable, and measured here on ``x``); ``max_residual_ratio`` = ``max r_{k+1}/r_k``;
* ``guarantee`` (``holds`` / ``holds (not checked exactly)`` / ``none`` / ``closed form``) with
  ``guarantee_reason`` (:mod:`pnp.guarantees`; BM3D and unconstrained networks: ``none``);
* ``time_per_iteration`` (mean of the solver's own per-step timing, which includes the
  per-iteration PSNR) and ``total_time`` (solver construction, ``||A||``, iterations).

Solvers: ``fbs``, ``hqs``, ``admm`` (:mod:`pnp.solvers`), ``deepinv-pgd`` (deepinv's PGD with the
same denoiser and the parameters, budget and tolerance of ``fbs``: the cross-check),
``variational`` (a ridge regulariser minimised directly by :class:`pnp.solvers.variational.VariationalRidge`;
``monotone`` is then the monotonicity of its objective), and ``closed-form`` for the ``wiener`` /
``tikhonov`` baselines (one record per case whatever solvers were asked for).

With ``out`` given, the per-iteration histories go to ``out/histories/<key>.npz`` and, when asked,
the restored, observed and clean images to ``out/images/`` (PNG). Networks and kernels are cached
per process (:func:`cached_denoiser`). Storing the record is :mod:`benchmarks.records`.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.baselines import closed_form, denoiser_fingerprint, resolve_denoiser, run_deepinv_pgd
from benchmarks.degrade import degrade, load_clean, to_hwc, to_tensor
from benchmarks.plan import Task, rule_solver
from benchmarks.protocols import Protocol
from benchmarks.records import atomic_write

__all__ = ["RECORD_KEYS", "cached_denoiser", "run_task", "ssim"]

#: Keys every record has (more may follow).
RECORD_KEYS = (
    "image", "kernel", "noise", "solver", "denoiser", "psnr", "ssim", "iterations", "converged",
    "final_residual", "monotone", "guarantee", "time_per_iteration", "total_time",
)

_KERNELS: dict[str, Any] = {}
_NETS: dict[tuple[str, str, str | None], Any] = {}


def _kernel(spec: str) -> Any:
    if spec not in _KERNELS:
        from operators import load_kernel

        _KERNELS[spec] = load_kernel(spec)
    return _KERNELS[spec]


def cached_denoiser(name: str, device: str) -> Any:
    """The denoiser ``name`` on ``device`` (:func:`benchmarks.baselines.resolve_denoiser`). Stateless
    networks are cached per process; classical denoisers (TV warm-starts) are not."""
    low = name.lower()
    if low in ("tv", "quadratic", "bm3d"):
        return resolve_denoiser(name, device=device)
    key = (name, device, denoiser_fingerprint(name))  # new weights at the same path: reload
    if key not in _NETS:
        _NETS[key] = resolve_denoiser(name, device=device)
    return _NETS[key]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _guarantee_fields(g: Any) -> dict[str, Any]:
    if g.holds:
        label = "holds" if g.checked else "holds (not checked exactly)"
    else:
        label = "none"
    return {"guarantee": label, "guarantee_reason": g.reason, "guarantee_theorem": g.theorem}


def ssim(x: np.ndarray, ref: np.ndarray) -> float:
    """SSIM of ``x`` against ``ref`` (``[H, W, C]`` arrays), both clipped to ``[0, 1]``, data range 1
    (scikit-image; colour images over the channel axis)."""
    from skimage.metrics import structural_similarity

    a = np.clip(x, 0.0, 1.0)
    b = np.clip(ref, 0.0, 1.0)
    if a.shape[-1] == 1:
        return float(structural_similarity(a[..., 0], b[..., 0], data_range=1.0))
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=2))


def _monotone(abs_res: list[float], norms: list[float]) -> tuple[bool, float]:
    ok = True
    ratio = 0.0
    for k in range(1, len(abs_res)):
        prev, cur = abs_res[k - 1], abs_res[k]
        if prev > 0:
            ratio = max(ratio, cur / prev)
        if cur > prev * (1 + 1e-3) + 1e-6 * norms[k]:
            ok = False
    return ok, ratio


def _save_history(out: Path, slug: str, hist: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v, dtype=np.float64) for k, v in hist.items() if v is not None})
    (out / "histories").mkdir(exist_ok=True)
    atomic_write(out / "histories" / f"{slug}.npz", buf.getvalue())


def _save_png(path: Path, x_hwc: np.ndarray) -> None:
    import imageio.v3 as iio

    arr = np.round(np.clip(x_hwc, 0, 1) * 255).astype(np.uint8)
    arr = arr[..., 0] if arr.shape[-1] == 1 else arr
    import io

    buf = io.BytesIO()
    iio.imwrite(buf, arr, extension=".png")
    atomic_write(path, buf.getvalue())


def run_task(task: Task, protocol: Protocol, *, device: str, out: str | None = None,
             save_image: bool = False) -> dict[str, Any]:
    """Run one task and return its record (histories and images go under ``out`` when given)."""
    from operators import FFTBlur
    from pnp.api import SOLVERS
    from pnp.guarantees import denoiser_certificate, fbs_guarantee
    from pnp.metrics import psnr

    dtype = getattr(torch, protocol.dtype)
    clean, bits = load_clean(task.image_path)
    k = _kernel(task.kernel)
    deg = degrade(clean, k.numpy(), task.noise, seed=protocol.seed, quantize=protocol.quantize_blurred)
    y = to_tensor(deg.observed, dtype=dtype, device=device)
    x_true = to_tensor(deg.clean, dtype=dtype, device=device)
    physics = FFTBlur(k).to(device)
    h, w = y.shape[-2:]
    t_start = time.perf_counter()
    opnorm = physics.opnorm(image_size=(h, w))
    s, gamma = protocol.rule.parameters(task.label, solver=rule_solver(task.solver), noise=task.noise,
                                        opnorm=opnorm)
    budget = protocol.budget(task.label)
    hist: dict[str, Any] = {}
    rec: dict[str, Any] = {}
    if task.solver == "closed-form":
        with torch.no_grad():
            x = closed_form(y, physics, s, kind=task.label.lower())
        total = time.perf_counter() - t_start
        rec.update(iterations=0, converged=True, stop_reason="closed form (exact minimiser)",
                   final_residual=0.0, monotone=True, max_residual_ratio=0.0,
                   guarantee="closed form", guarantee_reason="exact minimiser of a convex quadratic",
                   guarantee_theorem="closed form", time_per_iteration=total, sigma=None,
                   lam=s, gamma=None)
    elif task.solver == "deepinv-pgd":
        den = cached_denoiser(task.denoiser, device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = run_deepinv_pgd(physics, y, den, sigma=s, gamma=gamma, max_iter=budget,
                                tol=protocol.tol, x_true=x_true)
        total = time.perf_counter() - t_start
        x = r["x"]
        res = r["residual"]
        g = fbs_guarantee(opnorm=opnorm, gamma=gamma, certificate=denoiser_certificate(den))
        abs_res = res  # a single image: monotonicity of the relative residual as recorded
        mono, ratio = _monotone(abs_res, [0.0] * len(abs_res))
        conv = bool(res) and res[-1] < protocol.tol
        rec.update(iterations=r["iterations"], converged=conv,
                   stop_reason="deepinv early stop (relative residual < tol)" if r["iterations"] < budget
                   else f"max_iter reached ({budget} iterations)",
                   final_residual=res[-1] if res else None, monotone=mono, max_residual_ratio=ratio,
                   time_per_iteration=float(np.mean(r["times"])) if r["times"] else None,
                   sigma=s, gamma=gamma, lam=None, **_guarantee_fields(g))
        hist = {"residual": res, "psnr": r["psnr"], "time": r["times"]}
    elif task.solver == "variational":
        # a ridge prior minimised directly: s is the prior's noise level, gamma_scale (= gamma ||A||^2)
        # multiplies lambda(s); the stop is the solver's relative gradient-norm test at tol
        from pnp.solvers.variational import VariationalRidge

        den = cached_denoiser(task.denoiser, device)
        reg = getattr(den, "reg", None)
        if reg is None:
            raise ValueError(f"solver 'variational' needs a ridge regulariser (crr, wcrr), got {task.denoiser!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = VariationalRidge(physics, y, reg, sigma=s, lam_scale=gamma * opnorm**2, max_iter=budget,
                                      tol=protocol.tol, x_true=x_true).run()
        total = time.perf_counter() - t_start
        x = result.x
        res = result.history.residual[:, 0].tolist()
        obj = result.objective[:, 0].tolist()
        # non-increasing up to the evaluation of Phi (float64 sums of float32 terms: ~1e-7 relative)
        mono = all(b <= a + 1e-6 * abs(a) for a, b in zip(obj, obj[1:]))
        times = result.history.time.tolist()
        rec.update(iterations=result.iterations, converged=result.converged, stop_reason=result.stop_reason,
                   final_residual=res[-1] if res else None, monotone=mono, max_residual_ratio=None,
                   objective_monotone=mono, final_grad_norm=float(result.final_grad_norm[0]),
                   safeguard_steps=result.safeguard_steps, backtracks=result.backtracks,
                   step_rule=result.params.gamma_rule,
                   time_per_iteration=float(np.mean(times)) if times else None,
                   sigma=s, gamma=None, lam=float(result.lam[0]), **_guarantee_fields(result.guarantee))
        hist = {"residual": res,
                "psnr": None if result.history.psnr is None else result.history.psnr[:, 0].tolist(),
                "time": times, "objective": obj, "grad_norm": result.grad_norm[:, 0].tolist()}
    else:
        den = cached_denoiser(task.denoiser, device)
        cls = SOLVERS[task.solver]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = cls(physics, y, den, sigma=s, gamma=gamma, max_iter=budget, tol=protocol.tol,
                         x_true=x_true)
            abs_res: list[float] = []
            norms: list[float] = []
            converged = False
            stop = f"max_iter reached ({budget} iterations)"
            while solver.iteration < budget:
                n_old = float(torch.linalg.vector_norm(solver.x))
                step = solver.step()
                if step is None:
                    stop = solver.stop_reason
                    break
                worst = float(step.max())
                abs_res.append(worst * n_old)
                norms.append(n_old)
                if worst < protocol.tol:
                    converged = True
                    stop = f"converged: relative residual {worst:.3g} < tol {protocol.tol:g} at iteration {solver.iteration}"
                    break
            result = solver.result()
        total = time.perf_counter() - t_start
        x = result.x
        res = result.history.residual[:, 0].tolist()
        mono, ratio = _monotone(abs_res, norms)
        times = result.history.time.tolist()
        rec.update(iterations=result.iterations, converged=converged, stop_reason=stop,
                   final_residual=res[-1] if res else None, monotone=mono, max_residual_ratio=ratio,
                   time_per_iteration=float(np.mean(times)) if times else None,
                   sigma=s, gamma=gamma, lam=None, **_guarantee_fields(result.guarantee))
        hist = {"residual": res,
                "psnr": None if result.history.psnr is None else result.history.psnr[:, 0].tolist(),
                "time": times, "abs_residual": abs_res}
    x_hwc = to_hwc(x)
    record = {
        "image": task.image,
        "kernel": task.kernel,
        "kernel_index": task.kernel_index,
        "noise": task.noise,
        "noise_255": round(task.noise * 255, 6),
        "solver": task.solver,
        "denoiser": task.label,
        "denoiser_spec": task.denoiser,
        "denoiser_sha256": denoiser_fingerprint(task.denoiser),
        "psnr": float(psnr(x.detach().double(), x_true.double())[0]),
        "ssim": ssim(x_hwc, deg.clean),
        "psnr_input": float(psnr(y.double(), x_true.double())[0]),
        **rec,
        "max_iter": budget,
        "tol": protocol.tol,
        "total_time": total,
        "opnorm": opnorm,
        "image_size": [int(h), int(w)],
        "channels": int(y.shape[1]),
        "finite": bool(np.isfinite(x_hwc).all()),
    }
    record["key"] = task.key()
    if out is not None:
        slug = _slug(record["key"].replace("|", "__"))
        record["history_file"] = f"histories/{slug}.npz" if hist else None
        if hist:
            _save_history(Path(out), slug, hist)
        if save_image:
            img_dir = Path(out) / "images"
            img_dir.mkdir(exist_ok=True)
            _save_png(img_dir / f"{slug}.png", x_hwc)
            case = _slug(f"{task.image}__{task.kernel}__n{record['noise_255']:g}")
            if not (img_dir / f"{case}__observed.png").exists():
                _save_png(img_dir / f"{case}__observed.png", deg.observed)
                _save_png(img_dir / f"{case}__clean.png", deg.clean)
            record["image_file"] = f"images/{slug}.png"
            record["case_files"] = [f"images/{case}__clean.png", f"images/{case}__observed.png"]
    return record
