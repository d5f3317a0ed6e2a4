"""Denoising PSNR of networks on the validation set, with the training loop's noise convention.

    python -m benchmarks.set12_denoise --denoiser rk-averaged,w/rk-relu.safetensors --levels 15,25 --json out.json

Noise: ``numpy.random.default_rng(seed)`` drawn per image (a fresh generator for each image), PSNR
on ``[0, 1]`` with the output clipped (:func:`denoisers.train.validate`), on ``../shared/data/set12``
when present. Each denoiser is loaded with :func:`denoisers.load` (zoo name or checkpoint path) and
called as ``D(y, sigma)``, i.e. rescaled to the level; ``--as-is`` instead applies a single
network at its own training level to every noise level (no rescaling); ``--ensemble`` averages
each denoiser over the 8 symmetries of the square (:class:`denoisers.GeometricEnsemble`, which
keeps the certificate, at 8 times the cost). Reports the parameter count,
certificate and, for spline networks, the effective knots.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["evaluate", "main"]


def _levels(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--levels must be numbers (in /255 units), got {text!r}") from None
    if not vals or any(not (0 < v < 255) for v in vals):
        raise argparse.ArgumentTypeError(f"--levels must be in (0, 255) (units of 1/255), got {text!r}")
    return vals


def evaluate(name: str, levels_255: list[float], *, as_is: bool = False, ensemble: bool = False, seed: int = 0,
             max_images: int | None = None, log=print) -> dict[str, Any]:
    import denoisers
    from denoisers.layers.spline import spline_report
    from denoisers.models.lipschitz_ff import count_parameters
    from denoisers.train import validate, validation_images

    imgs, where = validation_images(max_images)
    if imgs is None:
        raise FileNotFoundError("no validation set: ../shared/data/set12 (or $PNP_SHARED_DATA/set12) not found")
    from pnp.resolve import resolve_denoiser

    model = resolve_denoiser(name, argument="--denoiser")  # the resolver of every entry point
    if hasattr(model, "reg"):  # a ridge regulariser's prox: one model for every level
        inner = model
        nets = [model.reg]
    else:
        if not isinstance(model, denoisers.PerChannel):
            raise ValueError(f"--denoiser {name!r} is not a network of the zoo or a checkpoint")
        inner = model.denoiser
        nets = [m.net for m in inner.members] if hasattr(inner, "members") else [inner.net]
    rec: dict[str, Any] = {
        "denoiser": name,
        "set": str(where),
        "params": sum(count_parameters(n) for n in nets),
        "lipschitz_bound": model.certificate.lipschitz_bound,
        "alpha": model.certificate.alpha,
        "rescaled": not as_is,
        "ensemble": ensemble,
        "psnr": {},
    }
    if as_is:
        if len(nets) != 1:
            raise ValueError(f"--as-is needs a single network, {name!r} has {len(nets)}")
        s0 = inner.train_sigma
        fn = lambda y, s: inner.net(y, s0)  # noqa: E731
    else:
        fn = model
    if ensemble:
        fn = denoisers.GeometricEnsemble(fn)
    tag = (" (as is)" if as_is else "") + (" (x8 ensemble)" if ensemble else "")
    for s in levels_255:
        t0 = time.perf_counter()
        rec["psnr"][f"{s:g}"] = validate(fn, imgs, s / 255, seed=seed)
        log(f"{name} {s:g}/255{tag}: {rec['psnr'][f'{s:g}']:.3f} dB "
            f"({time.perf_counter() - t0:.0f} s)")
    knots = [k for n in nets for row in spline_report(n) for k in row["effective_knots"]]
    if knots:
        rec["effective_knots_mean"] = sum(knots) / len(knots)
        rec["effective_knots_max"] = max(knots)
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.set12_denoise", description=__doc__.split("\n\n")[0])
    ap.add_argument("--denoiser", required=True, help="comma-separated zoo names or checkpoint paths")
    ap.add_argument("--levels", type=_levels, default=[15.0, 25.0, 50.0], help="noise levels in /255 units")
    ap.add_argument("--as-is", action="store_true", help="apply each network at its training level (no rescaling)")
    ap.add_argument("--ensemble", action="store_true", help="mean over the 8 symmetries (certificate kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-images", type=int, default=None, help="first N images only")
    ap.add_argument("--json", help="write the records here")
    a = ap.parse_args(argv)
    if a.json and Path(a.json).exists() and Path(a.json).is_dir():
        ap.error(f"--json must be a file, got directory {a.json!r}")
    try:
        recs = [evaluate(n.strip(), a.levels, as_is=a.as_is, ensemble=a.ensemble, seed=a.seed, max_images=a.max_images) for n in a.denoiser.split(",") if n.strip()]
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        from benchmarks.records import write_runs_json

        write_runs_json(a.json, recs)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    raise SystemExit(main())
