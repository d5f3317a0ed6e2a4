"""Time per iteration of several (denoiser, solver) pairs, measured side by side.

    python -m benchmarks.iteration_time --pairs rk-averaged:fbs,crr:variational,crr:admm,wcrr:variational \
        --size 256 --iterations 5 --repeats 3 --json out.json

One problem (scikit-image's ``camera`` resized to ``size``, ``gaussian:25:1.6`` circular blur, noise
7.65/255, seed 0) is solved by every pair with ``pnp.deblur`` (its default parameters, the plain
loop: no Anderson acceleration) for ``iterations`` iterations (the stop test disabled), and the
pairs run in turn, ``repeats`` times (A B C A B C ...), so that a machine whose load changes slows
them alike. The figure per pair is the median over repeats of the wall time of the call divided
by its iterations (set-up included: the operator norm, loading the weights once beforehand).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

__all__ = ["main", "measure"]


def measure(pairs: list[tuple[str, str]], *, size: int = 256, iterations: int = 5, repeats: int = 3,
            log=print) -> list[dict[str, Any]]:
    import torch
    from skimage import data, transform

    import pnp
    from operators import FFTBlur, add_gaussian_noise, load_kernel
    from pnp.resolve import resolve_denoiser

    x = torch.from_numpy(transform.resize(data.camera() / 255.0, (size, size))).float()[None, None]
    kernel = load_kernel("gaussian:25:1.6")
    y = add_gaussian_noise(FFTBlur(kernel).A(x), 7.65 / 255, seed=0)
    dens = {name: resolve_denoiser(name, argument="--pairs") for name, _ in pairs}
    times: dict[tuple[str, str], list[float]] = {p: [] for p in pairs}
    for r in range(repeats):
        for name, solver in pairs:
            t0 = time.perf_counter()
            res = pnp.deblur(y, kernel, noise_level=7.65 / 255, denoiser=dens[name], solver=solver,
                             max_iter=iterations, tol=1e-30, acceleration="none")
            dt = (time.perf_counter() - t0) / res.iterations
            times[(name, solver)].append(dt)
            log(f"repeat {r + 1}: {name} / {solver}: {dt:.3f} s per iteration")
    return [{"denoiser": n, "solver": s, "seconds_per_iteration": statistics.median(times[(n, s)]),
             "all": times[(n, s)]} for n, s in pairs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.iteration_time", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", required=True, help="comma-separated DENOISER:SOLVER pairs")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    try:
        pairs = [tuple(p.split(":")) for p in a.pairs.split(",") if p]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"--pairs must be DENOISER:SOLVER,..., got {a.pairs!r}")
        rows = measure(pairs, size=a.size, iterations=a.iterations, repeats=a.repeats)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base = rows[0]["seconds_per_iteration"]
    for r in rows:
        print(f"{r['denoiser']:>12} / {r['solver']:<11} {r['seconds_per_iteration']:.3f} s/iteration "
              f"({r['seconds_per_iteration'] / base:.2f} x the first pair)")
    if a.json:
        from pathlib import Path

        Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
