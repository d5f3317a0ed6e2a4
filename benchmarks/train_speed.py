"""Training-step time of averaged-network architectures, measured side by side.

    python -m benchmarks.train_speed --arch 32:32:12:1,64:64:12:2 --batch-size 16 --patch-size 48 --repeats 5

Each ``--arch`` entry is ``channels:hidden:depth:pixel_unshuffle`` (ReLU Euler blocks, alpha 0.98
per block, constrained as in training: warm-started power iteration and adaptive step), optionally
followed by variant settings ``+key=value`` or ``+flag`` (:class:`AveragedConfig` fields, e.g.
``64:64:12:2+factors=2``, ``+anchor``, ``+tied``, ``+activation=odd_spline+spline_init=clip+bias=false``;
``+teacher=PATH`` adds a distillation teacher's forward pass to each step). Entries are separated by
commas. One
*step* is what the trainer does per iteration: forward on a batch of noisy patches, MSE, backward,
Adam update. The architectures are timed in interleaved rounds (A, B, A, B, ...) after a warm-up,
so a change of machine load affects them alike; the figure is the median over rounds of the mean
step time of ``--steps`` consecutive steps. Prints a table and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["parse_arch", "measure", "main"]


_VARIANT_TYPES = {"factors": int, "kernel_size": int, "theta": float, "activation": str, "spline_init": str,
                  "bias": bool, "anchor": bool, "tied": bool, "teacher": str}


def parse_arch(text: str) -> tuple:
    """``c:h:d:r`` -> ``(c, h, d, r)``; with ``+key=value`` settings -> ``(c, h, d, r, {key: value})``."""
    head, *opts = text.split("+")
    try:
        c, h, d, r = (int(t) for t in head.split(":"))
    except ValueError:
        raise ValueError(f"--arch entries must be channels:hidden:depth:pixel_unshuffle, got {text!r}") from None
    if not opts:
        return c, h, d, r
    extra: dict[str, Any] = {}
    for o in opts:
        key, _, val = o.partition("=")
        typ = _VARIANT_TYPES.get(key)
        if typ is None:
            raise ValueError(f"unknown variant setting {key!r} in {text!r}; known: {sorted(_VARIANT_TYPES)}")
        if typ is bool:
            if val.lower() not in ("", "true", "false"):
                raise ValueError(f"{key} must be true or false in {text!r}")
            extra[key] = val.lower() != "false"
        else:
            try:
                extra[key] = typ(val)
            except ValueError:
                raise ValueError(f"bad value for {key} in {text!r}") from None
    return c, h, d, r, extra


def measure(archs: list[tuple], *, batch_size: int = 16, patch_size: int = 48,
            steps: int = 5, repeats: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    from denoisers.models.averaged import AveragedConfig, AveragedResNet
    from denoisers.serialize import load_denoiser

    torch.manual_seed(seed)
    runs = []
    for arch in archs:
        c, h, d, r = arch[:4]
        extra = dict(arch[4]) if len(arch) > 4 else {}
        teacher_path = extra.pop("teacher", None)
        net = AveragedResNet(AveragedConfig(channels=c, hidden=h, depth=d, alpha_block=0.98, pixel_unshuffle=r, **extra))
        net.train()
        teacher = load_denoiser(teacher_path).eval() if teacher_path else None
        runs.append({"net": net, "opt": torch.optim.Adam(net.parameters(), 1e-4), "times": [], "teacher": teacher,
                     "arch": {"channels": c, "hidden": h, "depth": d, "pixel_unshuffle": r}
                     | ({"variant": arch[4]} if len(arch) > 4 else {})})
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 1, patch_size, patch_size, generator=g)
    y = x + 0.1 * torch.randn(x.shape, generator=g)

    def step(run):
        target = x
        if run["teacher"] is not None:
            with torch.no_grad():
                target = run["teacher"](y, 0.1)
        loss = torch.mean((run["net"](y, 0.1) - target) ** 2)
        run["opt"].zero_grad(set_to_none=True)
        loss.backward()
        run["opt"].step()

    for run in runs:  # warm-up
        step(run)
    for _ in range(repeats):
        for run in runs:
            t0 = time.perf_counter()
            for _ in range(steps):
                step(run)
            run["times"].append((time.perf_counter() - t0) / steps)
    out = []
    for run in runs:
        n = sum(p.numel() for p in run["net"].parameters())
        sec = statistics.median(run["times"])
        out.append({**run["arch"], "parameters": n, "seconds_per_step": sec,
                    "patches_per_second": batch_size / sec, "rounds": run["times"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="32:32:12:1,64:64:12:2")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed round")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    try:
        archs = [parse_arch(t) for t in a.arch.split(",") if t.strip()]
        if a.batch_size < 1 or a.patch_size < 8 or a.steps < 1 or a.repeats < 1:
            raise ValueError("--batch-size, --steps and --repeats must be >= 1 and --patch-size >= 8")
        recs = measure(archs, batch_size=a.batch_size, patch_size=a.patch_size, steps=a.steps, repeats=a.repeats)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"torch threads {torch.get_num_threads()}, batch {a.batch_size} x {a.patch_size}x{a.patch_size}")
    base = recs[0]["seconds_per_step"]
    print("| channels:hidden:depth:unshuffle | variant | parameters | s / step | ratio to the first | patches / s |")
    print("|---|---|---:|---:|---:|---:|")
    for r in recs:
        var = " ".join(f"{k}={v}" for k, v in r.get("variant", {}).items()) or "-"
        print(f"| {r['channels']}:{r['hidden']}:{r['depth']}:{r['pixel_unshuffle']} | {var} | {r['parameters']:,} | "
              f"{r['seconds_per_step']:.3f} | {r['seconds_per_step'] / base:.2f} | {r['patches_per_second']:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "threads": torch.get_num_threads(),
                                            "runs": recs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
