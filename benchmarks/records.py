"""The records of a deblurring (or denoising) benchmark folder ``OUTDIR`` and the facts stored with them.

* ``OUTDIR/records.jsonl`` (:data:`RECORDS_FILE`): one JSON record a line, keyed by ``record["key"]``
  (:func:`benchmarks.plan.record_key`), appended by the parent process one line at a time
  (:func:`append_record`: one ``write`` + ``fsync`` per record); a torn last line from a crash is
  ignored by :func:`load_records` and dropped before the next append (:func:`repair_tail`);
* ``OUTDIR/run.json`` (:data:`RUN_FILE`): the effective protocol, the data folder and its identity
  (:func:`data_identity`: names and SHA-256 digests of its images) and the commands that wrote to the
  folder; ``OUTDIR/errors.jsonl`` (:data:`ERRORS_FILE`): the runs that failed (retried on the next run);
* :func:`current_records`: the records made with the current weights of their denoiser (a record
  whose ``denoiser_sha256`` differs from :func:`benchmarks.baselines.denoiser_fingerprint` is stale);
* :func:`environment`: versions and machine facts stored in every result file;
  :func:`clean_json`: non-finite floats as JSON (``NaN -> null``, ``+-inf -> "inf"/"-inf"``);
  :func:`atomic_write`: write a file through a temporary and ``os.replace``.

The reports built from these records are :mod:`benchmarks.report` (which imports this module, never
the runner).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.baselines import denoiser_fingerprint, files_digest
from benchmarks.degrade import list_images

__all__ = [
    "ERRORS_FILE",
    "RECORDS_FILE",
    "RUN_FILE",
    "append_record",
    "atomic_write",
    "clean_json",
    "current_records",
    "data_identity",
    "environment",
    "load_records",
    "repair_tail",
]

RECORDS_FILE = "records.jsonl"
RUN_FILE = "run.json"
ERRORS_FILE = "errors.jsonl"


def load_records(out: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Records of ``OUTDIR/records.jsonl`` by key (a torn last line is ignored)."""
    path = Path(out) / RECORDS_FILE
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


def repair_tail(path: Path) -> None:
    """Drop a torn last line so that the next append starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(cut)


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON-lines file ``path`` as one line (sorted keys, :func:`clean_json`)
    with a single ``write`` followed by ``fsync``."""
    line = (json.dumps(clean_json(record), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_json(v: Any) -> Any:
    """``v`` with every non-finite float made JSON-safe (``NaN -> None``, ``+-inf -> "inf"/"-inf"``),
    through nested dicts, lists and tuples (tuples become lists)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
    return v


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (flushed, ``fsync``-ed)
    and ``os.replace``: readers see the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_runs_json(path: str | os.PathLike[str], runs: list[dict[str, Any]]) -> None:
    """``{"command": <this process's command line>, "runs": runs}`` to ``path``, atomically."""
    doc = {"command": " ".join(sys.argv), "runs": runs}
    atomic_write(Path(path), json.dumps(doc, indent=1).encode())


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


def data_identity(folder: str) -> str:
    """SHA-256 over the names and SHA-256 digests of a folder's images (its identity, wherever
    the folder lies)."""
    return files_digest(list_images(folder))


def current_records(outp: Path, first: list[str]) -> tuple[list[dict[str, Any]], int]:
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
