r"""The deblurring benchmark runner: every (image, kernel, noise, solver, denoiser), resumable.

For each test case the runner degrades the clean image exactly as the protocol says
(:mod:`benchmarks.degrade`), picks ``(sigma, gamma)`` from the protocol's parameter rule with the
exact ``||A||``, runs the solver from ``x0 = A^T y`` until the largest relative fixed-point
residual ``||x_{k+1} - x_k|| / ||x_k||`` drops below ``tol`` or the budget is spent, and writes one
record (:data:`RECORD_KEYS`):

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
same denoiser and the parameters, budget and tolerance of ``fbs``: the cross-check), and ``closed-form`` for the ``wiener`` /
``tikhonov`` baselines (one record per case whatever solvers were asked for).

**Resumable.** Records are appended one line at a time to ``OUTDIR/records.jsonl`` by the parent
process (one ``write`` + ``fsync`` per record; a torn last line from a crash is dropped on
restart). A rerun with the same protocol and data skips every record already there, so an
interrupted benchmark continues where it stopped and the final tables are the same. ``run.json``
holds the effective protocol; rerunning into ``OUTDIR`` with another protocol is refused unless it
merely *extends* the folder's (:func:`extension_problems`: the same degradations and budgets, and
every record keeps its parameters, e.g. a rule calibrated afterwards for a baseline the folder has
no record of); ``run.json`` then keeps the earlier protocols under ``superseded_protocols``. Every
record carries ``denoiser_sha256`` (:func:`benchmarks.baselines.denoiser_fingerprint`: the
weights behind the denoiser name, ``None`` for classical ones); a record whose fingerprint is not
the current one (the zoo or the checkpoint changed since) is stale and runs again, its new record
replacing the old one in the tables. The reports (``results.json``, ``results.csv``,
``summary.md``, ``plots/``) cover every current record of ``OUTDIR``, not only the last
command's, so one folder can collect the runs of several commands (and sessions); ``run.json``
lists those commands.

**Parallel.** ``workers > 1`` shards the cases across processes (spawned; each runs
``torch.set_num_threads(max(1, cores // workers))``), cases grouped by image. ``shard=(k, n)``
runs only images ``i`` with ``i % n == k`` (several machines on one OUTDIR each writing their own
``records.jsonl`` copy, merged by concatenation).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchmarks.baselines import (
    CLOSED_FORM,
    closed_form,
    denoiser_fingerprint,
    describe,
    files_digest,
    resolve_denoiser,
    run_deepinv_pgd,
)
from benchmarks.degrade import degrade, list_images, load_clean, resolve_data, to_hwc, to_tensor
from benchmarks.protocols import Protocol, load_protocol

__all__ = [
    "BenchConfig",
    "BenchmarkError",
    "RECORD_KEYS",
    "SOLVER_NAMES",
    "Task",
    "environment",
    "extension_problems",
    "load_records",
    "plan_tasks",
    "record_key",
    "run_benchmark",
    "run_denoise_benchmark",
    "run_task",
]

SOLVER_NAMES = ("fbs", "hqs", "admm", "deepinv-pgd", "variational")

#: Keys every record has (more may follow).
RECORD_KEYS = (
    "image", "kernel", "noise", "solver", "denoiser", "psnr", "ssim", "iterations", "converged",
    "final_residual", "monotone", "guarantee", "time_per_iteration", "total_time",
)

class BenchmarkError(RuntimeError):
    """Every planned run of a benchmark command failed (the message quotes the first error)."""


def check_denoisers(names: tuple[str, ...] | list[str], *, allow_closed_form: bool) -> None:
    """Resolve every denoiser name once, before any folder is created or any run starts, so that a
    name that cannot run (unknown, missing or corrupt checkpoint) stops the command with the
    resolver's error (:func:`pnp.resolve.resolve_denoiser`) instead of one error per run."""
    from pnp.resolve import resolve_denoiser

    for name in names:
        if isinstance(name, str) and name.strip().lower() in CLOSED_FORM:
            if not allow_closed_form:
                raise ValueError(f"--denoiser {name!r} is a deblurring baseline, not a denoiser")
            continue
        resolve_denoiser(name, argument="--denoiser")


def _remove_new_folder(outp: Path) -> None:
    """Remove a results folder this command created (a command that ran nothing leaves nothing)."""
    import shutil

    shutil.rmtree(outp, ignore_errors=True)


_RECORDS = "records.jsonl"
_RUN = "run.json"
_ERRORS = "errors.jsonl"


@dataclass(frozen=True)
class Task:
    """One benchmark run."""

    image: str
    image_path: str
    image_index: int
    kernel: str
    kernel_index: int
    noise: float
    solver: str
    denoiser: str

    @property
    def label(self) -> str:
        return describe(self.denoiser)

    def key(self) -> str:
        return record_key(self.image, self.kernel, self.noise, self.solver, self.label)


def record_key(image: str, kernel: str, noise: float, solver: str, denoiser: str) -> str:
    """The identity of a record: ``image|kernel|noise*255|solver|denoiser``."""
    return f"{image}|{kernel}|{round(float(noise) * 255, 6):g}|{solver}|{denoiser}"


@dataclass(frozen=True)
class BenchConfig:
    """What to run: a protocol plus the selection (subset of kernels/noise/images, solvers,
    denoisers) and execution settings. ``max_iter`` overrides every iteration budget."""

    protocol: Protocol
    denoisers: tuple[str, ...]
    solvers: tuple[str, ...] = ("fbs",)
    data: str | None = None
    noise_levels: tuple[float, ...] | None = None
    kernels: tuple[int, ...] | None = None
    max_images: int | None = None
    max_iter: int | None = None
    workers: int = 1
    device: str | None = None
    save_images: str = "first"
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.denoisers:
            raise ValueError("give at least one denoiser")
        for s in self.solvers:
            if s not in SOLVER_NAMES:
                raise ValueError(f"unknown solver {s!r}; choose from {', '.join(SOLVER_NAMES)}")
        if not self.solvers and any(d.lower() not in CLOSED_FORM for d in self.denoisers):
            raise ValueError("give at least one solver")
        if self.kernels is not None:
            for i in self.kernels:
                if not 0 <= i < len(self.protocol.kernels):
                    raise ValueError(
                        f"kernel index {i} out of range: protocol {self.protocol.name!r} has "
                        f"{len(self.protocol.kernels)} kernels (0..{len(self.protocol.kernels) - 1})"
                    )
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images!r}")
        if self.max_iter is not None and self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers!r}")
        if self.save_images not in ("none", "first", "all"):
            raise ValueError(f"save_images must be none, first or all, got {self.save_images!r}")
        if self.shard is not None:
            k, n = self.shard
            if not (n >= 1 and 0 <= k < n):
                raise ValueError(f"shard must be K/N with 0 <= K < N, got {k}/{n}")

    def effective_protocol(self) -> Protocol:
        """The protocol with the ``max_iter`` override applied (what records are computed with)."""
        if self.max_iter is None:
            return self.protocol
        return self.protocol.replace(max_iter=int(self.max_iter), max_iter_overrides=())

    def resolved_device(self) -> str:
        if self.device in (None, "auto"):
            return "cuda" if torch.cuda.is_available() else "cpu"
        return str(self.device)


def plan_tasks(config: BenchConfig) -> list[Task]:
    """All tasks of ``config`` in a deterministic order (image, kernel, noise, denoiser, solver)."""
    p = config.protocol
    images = list_images(config.data if config.data is not None else p.images)
    if config.max_images is not None:
        images = images[: config.max_images]
    kidx = list(config.kernels) if config.kernels is not None else list(range(len(p.kernels)))
    noises = list(config.noise_levels) if config.noise_levels is not None else list(p.noise_levels)
    # a level given as 0.03 is the protocol's 7.65/255: use the protocol's exact value
    noises = [p.noise_levels[i] if (i := p.noise_index(nu)) is not None else nu for nu in noises]
    tasks = []
    for ii, path in enumerate(images):
        if config.shard is not None and ii % config.shard[1] != config.shard[0]:
            continue
        for ki in kidx:
            for nu in noises:
                for den in config.denoisers:
                    solvers = ("closed-form",) if den.lower() in CLOSED_FORM else config.solvers
                    for s in solvers:
                        tasks.append(Task(path.name, str(path), ii, p.kernels[ki], ki, float(nu), s, den))
    return tasks


# --------------------------------------------------------------------------- one run
_KERNELS: dict[str, Any] = {}
_NETS: dict[tuple[str, str, str | None], Any] = {}


def _kernel(spec: str) -> Any:
    if spec not in _KERNELS:
        from operators import load_kernel

        _KERNELS[spec] = load_kernel(spec)
    return _KERNELS[spec]


def _denoiser(name: str, device: str) -> Any:
    """Stateless networks are cached per process; classical denoisers (TV warm-starts) are not."""
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


def _ssim(x: np.ndarray, ref: np.ndarray) -> float:
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


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_history(out: Path, slug: str, hist: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v, dtype=np.float64) for k, v in hist.items() if v is not None})
    (out / "histories").mkdir(exist_ok=True)
    _atomic_write(out / "histories" / f"{slug}.npz", buf.getvalue())


def _save_png(path: Path, x_hwc: np.ndarray) -> None:
    import imageio.v3 as iio

    arr = np.round(np.clip(x_hwc, 0, 1) * 255).astype(np.uint8)
    arr = arr[..., 0] if arr.shape[-1] == 1 else arr
    import io

    buf = io.BytesIO()
    iio.imwrite(buf, arr, extension=".png")
    _atomic_write(path, buf.getvalue())


def _rule_solver(solver: str) -> str:
    """The solver whose rule entry applies: deepinv's PGD is the same iteration as our FBS and
    takes the FBS parameters (the cross-check)."""
    return "fbs" if solver == "deepinv-pgd" else solver


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
    s, gamma = protocol.rule.parameters(task.label, solver=_rule_solver(task.solver), noise=task.noise,
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
        den = _denoiser(task.denoiser, device)
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

        den = _denoiser(task.denoiser, device)
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
        mono = all(b <= a + 1e-12 * abs(a) for a, b in zip(obj, obj[1:]))
        times = result.history.time.tolist()
        rec.update(iterations=result.iterations, converged=result.converged, stop_reason=result.stop_reason,
                   final_residual=res[-1] if res else None, monotone=mono, max_residual_ratio=None,
                   objective_monotone=mono, final_grad_norm=float(result.final_grad_norm[0]),
                   safeguard_steps=result.safeguard_steps,
                   time_per_iteration=float(np.mean(times)) if times else None,
                   sigma=s, gamma=None, lam=float(result.lam[0]), **_guarantee_fields(result.guarantee))
        hist = {"residual": res,
                "psnr": None if result.history.psnr is None else result.history.psnr[:, 0].tolist(),
                "time": times, "objective": obj, "grad_norm": result.grad_norm[:, 0].tolist()}
    else:
        den = _denoiser(task.denoiser, device)
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
        "ssim": _ssim(x_hwc, deg.clean),
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


# --------------------------------------------------------------------------- records store
def load_records(out: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Records of ``OUTDIR/records.jsonl`` by key (a torn last line is ignored)."""
    path = Path(out) / _RECORDS
    recs: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return recs
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn write from an interrupted run
        recs[r["key"]] = r
    return recs


def _repair_tail(path: Path) -> None:
    """Drop a torn last line so that the next append starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(cut)


def _append(path: Path, record: dict[str, Any]) -> None:
    line = (json.dumps(_clean_json(record), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_json(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean_json(x) for x in v]
    return v


def environment(device: str, dtype: str) -> dict[str, Any]:
    """Versions and machine facts stored in every result file."""
    import deepinv
    import scipy
    import skimage

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "deepinv": deepinv.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
    }
    try:
        from importlib.metadata import version

        versions["pnp-toolkit"] = version("pnp-toolkit")
        versions["bm3d"] = version("bm3d")
    except Exception:  # pragma: no cover - metadata missing
        pass
    commit = None
    try:
        import subprocess

        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip() or None
    except Exception:  # pragma: no cover
        pass
    return {
        "versions": versions,
        "git_commit": commit,
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else platform.processor() or platform.machine(),
        "dtype": dtype,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")


def _worker(task: Task, protocol: Protocol, device: str, out: str, save: bool) -> dict[str, Any]:
    try:
        return run_task(task, protocol, device=device, out=out, save_image=save)
    except Exception as exc:  # reported, and retried on the next run
        return {"key": task.key(), "error": f"{type(exc).__name__}: {exc}", "task": dataclasses.asdict(task)}


def run_benchmark(
    config: BenchConfig,
    out: str | os.PathLike[str],
    *,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """Run every task of ``config`` not yet recorded in ``out``; return all records of the plan.

    ``stop_after``: stop after that many new records (simulates an interruption; for tests).
    Writes ``records.jsonl`` (appended), ``run.json`` and, via :func:`benchmarks.report.write_all`,
    ``results.json``, ``results.csv``, ``summary.md`` and ``plots/``.
    """
    log = log or (lambda s: None)
    outp = Path(out)
    if outp.exists() and not outp.is_dir():
        raise NotADirectoryError(f"--out must be a directory, got existing file {str(outp)!r}")
    protocol = config.effective_protocol()
    device = config.resolved_device()
    data_dir = str(resolve_data(config.data if config.data is not None else protocol.images).resolve())
    data_id = _data_identity(data_dir)
    check_denoisers(config.denoisers, allow_closed_form=True)  # before the folder exists
    created = not outp.exists()
    outp.mkdir(parents=True, exist_ok=True)
    run_info = {"protocol": protocol.to_dict(), "data": data_dir, "data_sha256": data_id}
    run_path = outp / _RUN
    if run_path.exists():
        old = json.loads(run_path.read_text())
        # the same images (names and bytes) wherever the folder lies; older run.json: the same path
        same_data = old.get("data_sha256") == data_id if "data_sha256" in old else old.get("data") == data_dir
        if not same_data:
            raise ValueError(
                f"--out {str(outp)!r} holds results of another protocol or data folder "
                f"({old.get('protocol', {}).get('name')!r} on {old.get('data')!r}); use a new --out"
            )
        if old.get("protocol") != json.loads(json.dumps(run_info["protocol"])):
            problems = extension_problems(old.get("protocol", {}), protocol, load_records(outp))
            if problems:
                shown = "; ".join(problems[:3]) + (f"; ... ({len(problems)} in all)" if len(problems) > 3 else "")
                raise ValueError(
                    f"--out {str(outp)!r} holds results of another protocol or data folder "
                    f"({old.get('protocol', {}).get('name')!r} on {old.get('data')!r}), and "
                    f"{protocol.name!r} does not merely extend it: {shown}; use a new --out"
                )
            log(f"protocol {protocol.name!r} extends the folder's {old['protocol'].get('name')!r}: "
                "the degradations and budgets are the same and every record keeps its parameters")
            old = {**old, "superseded_protocols": [*old.get("superseded_protocols", []), old["protocol"]]}
    else:
        old = dict(run_info)
    this_run = {"command": command if command is not None else " ".join(sys.argv),
                "date": datetime.datetime.now().isoformat(timespec="seconds")}
    history = [*old.get("commands", []), this_run]
    superseded = {"superseded_protocols": old["superseded_protocols"]} if old.get("superseded_protocols") else {}
    _atomic_write(run_path, (json.dumps({**run_info, "data": old.get("data", data_dir), "commands": history,
                                         **superseded}, indent=2) + "\n").encode())
    tasks = plan_tasks(dataclasses.replace(config, data=data_dir))
    rec_path = outp / _RECORDS
    _repair_tail(rec_path)
    done = load_records(outp)
    prints = {d: denoiser_fingerprint(d) for d in config.denoisers}
    stale = {t.key() for t in tasks
             if t.key() in done and done[t.key()].get("denoiser_sha256") != prints[t.denoiser]}
    for k in stale:
        del done[k]
    todo = [t for t in tasks if t.key() not in done]
    first_image = tasks[0].image if tasks else None
    first_kernel = tasks[0].kernel if tasks else None

    def wants_image(t: Task) -> bool:
        if config.save_images == "all":
            return True
        return config.save_images == "first" and t.image == first_image and t.kernel == first_kernel

    log(f"{len(tasks)} runs planned, {len(tasks) - len(todo)} already done, {len(todo)} to run "
        f"({config.workers} worker(s), device {device})"
        + (f"; {len(stale)} recorded with other weights are rerun" if stale else ""))
    new = 0
    errors = 0
    first_error: list[str] = []

    def accept(r: dict[str, Any]) -> None:
        nonlocal new, errors
        if "error" in r:
            errors += 1
            first_error[:] = first_error or [f"{r['key']}: {r['error']}"]
            _append(outp / _ERRORS, r)
            log(f"  error {r['key']}: {r['error']}")
            return
        _append(rec_path, r)
        done[r["key"]] = r
        new += 1
        log(f"  [{len(tasks) - len(todo) + new}/{len(tasks)}] {r['key']}: PSNR {r['psnr']:.2f} dB, {r['iterations']} it, "
            f"converged={r['converged']}, {r['total_time']:.1f} s")

    if config.workers == 1 or len(todo) <= 1:
        for t in todo:
            if stop_after is not None and new >= stop_after:
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                accept(_worker(t, protocol, device, str(outp), wants_image(t)))
    else:
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // config.workers)
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(config.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(threads,)) as ex:
            futures = [ex.submit(_worker, t, protocol, device, str(outp), wants_image(t)) for t in todo]
            try:
                for f in as_completed(futures):
                    accept(f.result())
                    if stop_after is not None and new >= stop_after:
                        break
            finally:
                for f in futures:
                    f.cancel()
    if todo and new == 0 and errors > 0 and (stop_after is None or stop_after > 0):
        where = f"see {outp / _ERRORS}"
        if created:
            _remove_new_folder(outp)
            where = f"{outp} was not created"
        raise BenchmarkError(f"all {errors} planned run(s) failed (first: {first_error[0]}); {where}")
    from benchmarks.report import write_all

    keys = [t.key() for t in tasks]
    records = [done[k] for k in keys if k in done]
    table, left_out = _current_records(outp, keys)
    meta = {
        "benchmark": "deblur",
        "protocol": protocol.to_dict(),
        "data": data_dir,
        "images": sorted({r["image"] for r in table}),
        "seed": protocol.seed,
        "command": this_run["command"],
        "date": this_run["date"],
        "commands": history,
        "workers": config.workers,
        **environment(device, protocol.dtype),
    }
    write_all(outp, table, meta)
    log(f"{new} new records, {errors} errors; wrote {outp / 'results.json'}, results.csv, summary.md "
        f"({len(table)} records: every current record of the folder"
        + (f"; {left_out} made with other or missing weights left out)" if left_out else ")"))
    return records


# fields of a protocol that an extension may change (the rest fixes the degradations and budgets)
_EXTENSIBLE = ("name", "description", "rule", "calibration")


def extension_problems(old: dict[str, Any], new: Protocol, records: dict[str, dict[str, Any]]) -> list[str]:
    """Why ``new`` is not an extension of the protocol ``old`` (its dict form) for ``records``;
    an empty list when it is.

    ``new`` extends ``old`` when only the name, description, rule and calibration differ and every
    record keeps its parameters under the new rule: the same denoiser sigma (or closed-form
    weight), the same step gamma (recomputed from the record's ``||A||``) and the same budget. A
    calibration for a denoiser the folder has no record of (adding baselines after the fact) is
    such an extension; changing the rule of a recorded denoiser is not."""
    cur = json.loads(json.dumps(new.to_dict()))
    problems = [f"{k} differs ({old.get(k)!r} -> {cur.get(k)!r})"
                for k in sorted(set(old) | set(cur)) if k not in _EXTENSIBLE and old.get(k) != cur.get(k)]
    if problems:
        return problems

    def same(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)

    for key, r in sorted(records.items()):
        try:
            s, gamma = new.rule.parameters(r["denoiser"], solver=_rule_solver(r["solver"]), noise=float(r["noise"]),
                                           opnorm=float(r["opnorm"]))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"record {key!r} cannot be checked ({exc})")
            continue
        if r["solver"] == "closed-form":
            if not same(s, r.get("lam")):
                problems.append(f"record {key!r}: lambda {r.get('lam')!r} -> {s!r}")
        else:
            if not same(s, r.get("sigma")):
                problems.append(f"record {key!r}: sigma {r.get('sigma')!r} -> {s!r}")
            if not same(gamma, r.get("gamma")):
                problems.append(f"record {key!r}: gamma {r.get('gamma')!r} -> {gamma!r}")
        if new.budget(r["denoiser"]) != r.get("max_iter"):
            problems.append(f"record {key!r}: budget {r.get('max_iter')!r} -> {new.budget(r['denoiser'])}")
    return problems


def _data_identity(folder: str) -> str:
    """SHA-256 over the names and SHA-256 digests of a folder's images (its identity, wherever
    the folder lies)."""
    return files_digest(list_images(folder))


def _current_records(outp: Path, first: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Every record of ``outp`` made with the current weights of its denoiser (the tables of the
    folder, which may hold the records of several commands), the keys ``first`` in that order and
    the others sorted by image, kernel, noise, denoiser and solver; and how many were left out."""
    allrec = load_records(outp)
    prints: dict[str, str | None] = {}

    def current(r: dict[str, Any]) -> bool:
        spec = r.get("denoiser_spec", r.get("denoiser"))
        if spec not in prints:
            try:
                prints[spec] = denoiser_fingerprint(spec)
            except ValueError:
                prints[spec] = "?"
        return r.get("denoiser_sha256") == prints[spec]

    ok = {k: r for k, r in allrec.items() if current(r)}
    head = [ok[k] for k in first if k in ok]
    seen = set(first)
    rest = sorted((r for k, r in ok.items() if k not in seen),
                  key=lambda r: (r["image"], r.get("kernel_index", 0), r["noise"], r["denoiser"], r["solver"]))
    return head + rest, len(allrec) - len(ok)


def config_from_args(
    *,
    protocol: str,
    denoisers: list[str],
    solvers: list[str],
    data: str | None = None,
    noise: list[float] | None = None,
    kernels: list[int] | None = None,
    max_images: int | None = None,
    max_iter: int | None = None,
    workers: int = 1,
    device: str | None = None,
    save_images: str = "first",
    shard: tuple[int, int] | None = None,
) -> BenchConfig:
    """A :class:`BenchConfig` from plain values (the command line's path)."""
    return BenchConfig(
        protocol=load_protocol(protocol), denoisers=tuple(denoisers), solvers=tuple(solvers),
        data=data, noise_levels=None if noise is None else tuple(noise),
        kernels=None if kernels is None else tuple(kernels), max_images=max_images,
        max_iter=max_iter, workers=workers, device=device, save_images=save_images, shard=shard,
    )


# --------------------------------------------------------------------------- denoising benchmark
def run_denoise_benchmark(
    *,
    data: str,
    noise_levels: tuple[float, ...],
    denoisers: tuple[str, ...],
    out: str | os.PathLike[str],
    max_images: int | None = None,
    seed: int = 0,
    dtype: str = "float32",
    device: str | None = None,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """PSNR/SSIM of denoisers on a folder at given noise levels (``pnp bench denoise``).

    Noise: ``numpy.random.seed(seed); numpy.random.normal(0, nu, (H, W, C))`` per image (as in
    the deblurring protocol); the denoiser is called as ``D(y, nu)`` (its noise-level contract);
    PSNR/SSIM as in the deblurring protocols. Resumable like :func:`run_benchmark` (records keyed
    by image, noise and denoiser; a record made with other weights runs again).
    """
    from operators import numpy_gaussian_noise
    from pnp.metrics import psnr

    log = log or (lambda s: None)
    outp = Path(out)
    if outp.exists() and not outp.is_dir():
        raise NotADirectoryError(f"--out must be a directory, got existing file {str(outp)!r}")
    if not noise_levels:
        raise ValueError("give at least one noise level")
    if not denoisers:
        raise ValueError("give at least one denoiser")
    check_denoisers(denoisers, allow_closed_form=False)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"--dtype must be float32 or float64, got {dtype!r}")
    tdtype = getattr(torch, dtype)
    images = list_images(data)
    if max_images is not None:
        images = images[:max_images]
    created = not outp.exists()
    outp.mkdir(parents=True, exist_ok=True)
    dev = device if device not in (None, "auto") else ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return _denoise_benchmark(outp, images, data=data, noise_levels=noise_levels, denoisers=denoisers,
                                  seed=seed, dtype=dtype, tdtype=tdtype, dev=dev, log=log, command=command)
    except BaseException:
        if created and not (outp / _RECORDS).exists():  # nothing recorded: leave nothing behind
            _remove_new_folder(outp)
        raise


def _denoise_benchmark(outp: Path, images: list[Path], *, data: str, noise_levels: tuple[float, ...],
                       denoisers: tuple[str, ...], seed: int, dtype: str, tdtype: Any, dev: str,
                       log: Callable[[str], None], command: str | None) -> list[dict[str, Any]]:
    from operators import numpy_gaussian_noise
    from pnp.metrics import psnr

    rec_path = outp / _RECORDS
    _repair_tail(rec_path)
    done = load_records(outp)
    prints = {d: denoiser_fingerprint(d) for d in denoisers}
    keys = []
    for path in images:
        clean, _ = load_clean(path)
        x_true = to_tensor(clean, dtype=tdtype, device=dev)
        for nu in noise_levels:
            noisy = clean + numpy_gaussian_noise(clean.shape, float(nu), seed=seed)
            y = to_tensor(noisy, dtype=tdtype, device=dev)
            for name in denoisers:
                key = f"{path.name}|{round(float(nu) * 255, 6):g}|{describe(name)}"
                keys.append(key)
                if key in done and done[key].get("denoiser_sha256") == prints[name]:
                    continue
                den = _denoiser(name, dev)
                t0 = time.perf_counter()
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        x = den(y, float(nu))
                    except Exception as exc:  # stops the command (rerun resumes after the fix)
                        raise BenchmarkError(f"{key}: {type(exc).__name__}: {exc}") from exc
                elapsed = time.perf_counter() - t0
                r = {
                    "key": key, "image": path.name, "noise": float(nu), "noise_255": round(float(nu) * 255, 6),
                    "denoiser": describe(name), "denoiser_spec": name, "denoiser_sha256": prints[name],
                    "psnr": float(psnr(x.double(), x_true.double())[0]),
                    "ssim": _ssim(to_hwc(x), clean),
                    "psnr_input": float(psnr(y.double(), x_true.double())[0]),
                    "time": elapsed, "image_size": list(clean.shape[:2]), "channels": int(clean.shape[2]),
                }
                _append(rec_path, r)
                done[key] = r
                log(f"  {key}: PSNR {r['psnr']:.2f} dB ({elapsed:.2f} s)")
    records = [done[k] for k in keys]
    meta = {
        "benchmark": "denoise", "data": str(resolve_data(data).resolve()),
        "images": [p.name for p in images], "noise_levels": list(noise_levels), "seed": seed,
        "noise": "numpy.random.seed(seed); numpy.random.normal(0, noise, (H, W, C)) per image",
        "psnr": "10 log10(1 / MSE), data range 1, both images clipped to [0, 1], no crop",
        "command": command if command is not None else " ".join(sys.argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        **environment(dev, dtype),
    }
    from benchmarks.report import denoise_table, write_csv, write_json

    write_json(outp / "results.json", records, meta)
    write_csv(outp / "results.csv", records, meta)
    text = f"# Denoising benchmark on `{meta['data']}`\n\n* command: `{meta['command']}`\n* {meta['noise']}; " \
           f"{meta['psnr']}\n\n" + denoise_table(records)
    (outp / "summary.md").write_text(text)
    return records
