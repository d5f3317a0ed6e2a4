"""Write the zoo's ``MANIFEST.json`` after recomputing every shipped certificate.

    python -m denoisers.zoo.manifest [--check]

For every ``weights/*.safetensors`` the network is loaded, its certificate is recomputed from
the weights (certified upper bounds of every layer, never the stored numbers) and compared with
the certificate stored in the file: ``alpha``, the Lipschitz bound and every layer's norm bound
must agree to a relative ``1e-9``. Only when all files agree is the manifest written (atomically),
with each file's SHA-256 digest; :func:`denoisers.zoo.load` then trusts the stored certificate of
a file with exactly those bytes. ``--check`` recomputes and compares without writing, and also
fails when the manifest does not list exactly the shipped files with their current digests.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from denoisers.certificate import Certificate
from denoisers.checkpoint import atomic_write_bytes, load_checkpoint
from denoisers.serialize import file_sha256, load_denoiser

__all__ = ["verify_file", "build_manifest", "main"]


def _close(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def verify_file(path: Path) -> dict[str, Any]:
    """Recompute the certificate of ``path`` and compare it with the stored one.

    Returns ``{"sha256", "alpha", "lipschitz_bound", "seconds"}``; raises ``ValueError`` naming
    the file and the first disagreement."""
    _, meta = load_checkpoint(path)
    stored = meta.get("certificate")
    if stored is None:
        raise ValueError(f"{path}: no stored certificate")
    from denoisers.ridge.train import RIDGE_KIND, load_ridge

    if meta.get("kind") == RIDGE_KIND:  # load_ridge recomputes every constant and compares
        t0 = time.perf_counter()
        reg, _ = load_ridge(path)
        rc = reg.certificate()
        return {"sha256": file_sha256(path), "alpha": rc.prox_alpha, "lipschitz_bound": rc.prox_lipschitz,
                "lip_grad": rc.lip_grad, "weak_convexity": rc.weak_convexity,
                "seconds": round(time.perf_counter() - t0, 2)}
    old = Certificate.from_dict(stored)
    t0 = time.perf_counter()
    net = load_denoiser(path)  # no digest: the certificate is recomputed from the weights
    new = net.certificate
    seconds = time.perf_counter() - t0
    if not (_close(new.alpha, old.alpha) and _close(new.lipschitz_bound, old.lipschitz_bound)):
        raise ValueError(f"{path}: recomputed alpha={new.alpha}, Lipschitz {new.lipschitz_bound}; "
                         f"stored alpha={old.alpha}, Lipschitz {old.lipschitz_bound}")
    if len(new.layers) != len(old.layers):
        raise ValueError(f"{path}: {len(new.layers)} layers recomputed, {len(old.layers)} stored")
    for a, b in zip(new.layers, old.layers):
        if a.name != b.name or not _close(a.norm_bound, b.norm_bound):
            raise ValueError(f"{path}: layer {a.name}: recomputed bound {a.norm_bound}, stored {b.name} {b.norm_bound}")
    return {"sha256": file_sha256(path), "alpha": new.alpha, "lipschitz_bound": new.lipschitz_bound,
            "seconds": round(seconds, 2)}


def build_manifest(weights: Path, log=print) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for path in sorted(weights.glob("*.safetensors")):
        files[path.name] = verify_file(path)
        alpha = files[path.name]["alpha"]
        log(f"{path.name}: certificate recomputed and equal to the stored one "
            f"(alpha {'none' if alpha is None else f'{alpha:.6f}'}, {files[path.name]['seconds']} s)")
    return {
        "what": "SHA-256 of shipped weights whose stored certificates were recomputed from the weights and found equal",
        "command": "python -m denoisers.zoo.manifest",
        "date": _dt.date.today().isoformat(),
        "files": files,
    }


def main(argv: list[str] | None = None) -> int:
    from denoisers.zoo import MANIFEST, weights_dir

    ap = argparse.ArgumentParser(prog="python -m denoisers.zoo.manifest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="verify only; fail if the manifest is stale")
    a = ap.parse_args(argv)
    weights = weights_dir()
    try:
        manifest = build_manifest(weights)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = weights / MANIFEST
    if a.check:
        try:
            current = json.loads(path.read_text())["files"]
        except (OSError, ValueError, KeyError) as e:
            print(f"error: cannot read {path}: {e}", file=sys.stderr)
            return 2
        want = {k: v["sha256"] for k, v in manifest["files"].items()}
        have = {k: v.get("sha256") for k, v in current.items()}
        if want != have:
            print(f"error: {path} is stale: run python -m denoisers.zoo.manifest", file=sys.stderr)
            return 2
        print(f"{path}: up to date")
        return 0
    atomic_write_bytes(path, (json.dumps(manifest, indent=1) + "\n").encode())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
