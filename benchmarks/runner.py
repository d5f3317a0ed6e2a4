r"""The deblurring benchmark command: every (image, kernel, noise, solver, denoiser), resumable.

The runner orchestrates three rooms and holds none of their contents:

* planning, :mod:`benchmarks.plan`: :class:`BenchConfig` (what to run) -> :func:`plan_tasks` (the
  :class:`Task` list), :func:`record_key`, :data:`SOLVER_NAMES`, :func:`config_from_args`;
* execution, :mod:`benchmarks.execute`: :func:`run_task` (one task -> one record,
  :data:`RECORD_KEYS`: degradation, parameters, the solver loop, histories and images);
* recording, :mod:`benchmarks.records`: ``records.jsonl`` (:func:`load_records`), ``run.json``,
  ``errors.jsonl``, :func:`environment`; the reports on top of them are :mod:`benchmarks.report`.

Those names stay importable from here. The runner itself holds :func:`run_benchmark`,
:func:`run_denoise_benchmark`, :func:`extension_problems`, :func:`check_denoisers` and
:class:`BenchmarkError`.

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
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import torch

from benchmarks.baselines import CLOSED_FORM, denoiser_fingerprint, describe
from benchmarks.degrade import list_images, load_clean, resolve_data, to_hwc, to_tensor
# also re-exported for the callers that import them from here: BenchConfig, Task, SOLVER_NAMES,
# config_from_args, plan_tasks, record_key, RECORD_KEYS, run_task, environment, load_records
from benchmarks.execute import RECORD_KEYS, cached_denoiser, run_task, ssim
from benchmarks.plan import SOLVER_NAMES, BenchConfig, Task, config_from_args, plan_tasks, record_key, rule_solver
from benchmarks.protocols import Protocol
from benchmarks.records import (
    ERRORS_FILE,
    RECORDS_FILE,
    RUN_FILE,
    append_record,
    atomic_write,
    current_records,
    data_identity,
    environment,
    load_records,
    repair_tail,
)

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
    data_id = data_identity(data_dir)
    check_denoisers(config.denoisers, allow_closed_form=True)  # before the folder exists
    created = not outp.exists()
    outp.mkdir(parents=True, exist_ok=True)
    run_info = {"protocol": protocol.to_dict(), "data": data_dir, "data_sha256": data_id}
    run_path = outp / RUN_FILE
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
    atomic_write(run_path, (json.dumps({**run_info, "data": old.get("data", data_dir), "commands": history,
                                         **superseded}, indent=2) + "\n").encode())
    tasks = plan_tasks(dataclasses.replace(config, data=data_dir))
    rec_path = outp / RECORDS_FILE
    repair_tail(rec_path)
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
            append_record(outp / ERRORS_FILE, r)
            log(f"  error {r['key']}: {r['error']}")
            return
        append_record(rec_path, r)
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
        where = f"see {outp / ERRORS_FILE}"
        if created:
            _remove_new_folder(outp)
            where = f"{outp} was not created"
        raise BenchmarkError(f"all {errors} planned run(s) failed (first: {first_error[0]}); {where}")
    from benchmarks.report import write_all

    keys = [t.key() for t in tasks]
    records = [done[k] for k in keys if k in done]
    table, left_out = current_records(outp, keys)
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

    def old_rule() -> Any:
        from benchmarks.protocols import protocol_from_dict

        return protocol_from_dict(old).rule

    def same(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)

    for key, r in sorted(records.items()):
        try:
            s, gamma = new.rule.parameters(r["denoiser"], solver=rule_solver(r["solver"]), noise=float(r["noise"]),
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
            recorded = r.get("gamma")
            if recorded is None and r["solver"] == "variational":
                # variational records keep lambda (multiplier x lambda(s)), not the rule's gamma: compare
                # the multiplier the old rule gave them
                try:
                    recorded = old_rule().parameters(r["denoiser"], solver=rule_solver(r["solver"]),
                                                     noise=float(r["noise"]), opnorm=float(r["opnorm"]))[1]
                except (KeyError, TypeError, ValueError) as exc:
                    problems.append(f"record {key!r} cannot be checked ({exc})")
                    continue
            if not same(gamma, recorded):
                problems.append(f"record {key!r}: gamma {recorded!r} -> {gamma!r}")
        if new.budget(r["denoiser"]) != r.get("max_iter"):
            problems.append(f"record {key!r}: budget {r.get('max_iter')!r} -> {new.budget(r['denoiser'])}")
    return problems


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
        if created and not (outp / RECORDS_FILE).exists():  # nothing recorded: leave nothing behind
            _remove_new_folder(outp)
        raise


def _denoise_benchmark(outp: Path, images: list[Path], *, data: str, noise_levels: tuple[float, ...],
                       denoisers: tuple[str, ...], seed: int, dtype: str, tdtype: Any, dev: str,
                       log: Callable[[str], None], command: str | None) -> list[dict[str, Any]]:
    from operators import numpy_gaussian_noise
    from pnp.metrics import psnr

    rec_path = outp / RECORDS_FILE
    repair_tail(rec_path)
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
                den = cached_denoiser(name, dev)
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
                    "ssim": ssim(to_hwc(x), clean),
                    "psnr_input": float(psnr(y.double(), x_true.double())[0]),
                    "time": elapsed, "image_size": list(clean.shape[:2]), "channels": int(clean.shape[2]),
                }
                append_record(rec_path, r)
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
