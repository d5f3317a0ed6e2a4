"""Is a ridge regulariser's learned ``lambda(sigma)`` calibrated? Set12 PSNR of its prox with
``lambda`` scaled by a few factors.

    python -m benchmarks.ridge_calibration --weights crr,runs/x/crr.safetensors --level 25 --scales 0.7,1,1.4

For each checkpoint (zoo name or path of a ridge checkpoint) and each scale ``s``, the denoiser is
``prox_{s lambda(sigma) R}`` (restarted accelerated gradient to RMS gradient ``--tol``) and the PSNR is
the validation loop's (:func:`denoisers.train.validate`: noise from ``numpy.random.default_rng(seed)``
per image, output clipped to ``[0, 1]``). A model whose best scale is far from 1 learned a
``lambda(sigma)`` that does not match full-size images; the scale-1 column is the model as shipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["scan", "main"]


def _floats(text: str, name: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not vals or any(not (v > 0) for v in vals):
        raise argparse.ArgumentTypeError(f"{name} must be numbers > 0, got {text!r}")
    return vals


def _load(name: str):
    from denoisers.ridge.train import load_ridge

    if Path(name).exists():
        return load_ridge(name)[0]
    import denoisers

    model = denoisers.load(name)  # zoo names (the manifest's digests are checked there)
    if not hasattr(model, "reg"):
        raise ValueError(f"--weights {name!r} is not a ridge regulariser")
    return model.reg


def scan(weights: str, level_255: float, scales: list[float], *, tol: float = 1e-4, seed: int = 0,
         max_images: int | None = None, log=print) -> dict[str, Any]:
    """``{"weights", "level", "lambda", "mu", "psnr": {scale: dB}}`` on the validation set."""
    import torch

    from denoisers.ridge.prox import ridge_prox
    from denoisers.train import validate, validation_images

    imgs, where = validation_images(max_images)
    if imgs is None:
        raise FileNotFoundError("no validation set: ../shared/data/set12 (or $PNP_SHARED_DATA/set12) not found")
    reg = _load(weights)
    sigma = level_255 / 255
    s = torch.tensor([sigma])
    rec: dict[str, Any] = {"weights": weights, "set": str(where), "level": level_255,
                           "lambda": float(reg.lambda_of(s).detach()), "mu": float(reg.mu_of(s).detach()), "psnr": {}}
    for sc in scales:
        t0 = time.perf_counter()
        fn = lambda y, sg, sc=sc: ridge_prox(reg, y, sg, lam_scale=sc, tol=tol, max_iter=5000)[0]  # noqa: E731
        rec["psnr"][f"{sc:g}"] = validate(fn, imgs, sigma, seed=seed)
        log(f"{weights} {level_255:g}/255 lambda x {sc:g}: {rec['psnr'][f'{sc:g}']:.3f} dB ({time.perf_counter() - t0:.0f} s)")
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ridge_calibration", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="comma-separated ridge zoo names (crr, wcrr) or checkpoint paths")
    ap.add_argument("--level", type=lambda t: _floats(t, "--level")[0], default=25.0, help="noise level in /255 (default 25)")
    ap.add_argument("--scales", type=lambda t: _floats(t, "--scales"), default=[0.7, 1.0, 1.4],
                    help="lambda factors (default 0.7,1,1.4)")
    ap.add_argument("--tol", type=float, default=1e-4, help="prox tolerance, RMS gradient (default 1e-4)")
    ap.add_argument("--max-images", type=int, default=None, help="first N images only")
    ap.add_argument("--json", help="write the records here")
    a = ap.parse_args(argv)
    if not (a.tol > 0):
        ap.error(f"--tol must be > 0, got {a.tol!r}")
    try:
        recs = [scan(w.strip(), a.level, a.scales, tol=a.tol, max_images=a.max_images)
                for w in a.weights.split(",") if w.strip()]
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in recs:
        best = max(r["psnr"], key=r["psnr"].get)
        print(f"{r['weights']}: lambda({r['level']:g}/255) = {r['lambda']:.4g}, mu = {r['mu']:.4g}; "
              + ", ".join(f"x{k}: {v:.3f}" for k, v in r["psnr"].items()) + f"; best x{best}")
    if a.json:
        from benchmarks.records import write_runs_json

        write_runs_json(a.json, recs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
