"""Training-step time of averaged-network architectures, measured side by side.

    python -m benchmarks.train_speed --arch 32:32:12:1,64:64:12:2 --batch-size 16 --patch-size 48 --repeats 5

Each ``--arch`` entry is ``channels:hidden:depth:pixel_unshuffle`` (ReLU Euler blocks, alpha 0.98
per block, constrained as in training: warm-started power iteration and adaptive step). One
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


def parse_arch(text: str) -> tuple[int, int, int, int]:
    try:
        c, h, d, r = (int(t) for t in text.split(":"))
    except ValueError:
        raise ValueError(f"--arch entries must be channels:hidden:depth:pixel_unshuffle, got {text!r}") from None
    return c, h, d, r


def measure(archs: list[tuple[int, int, int, int]], *, batch_size: int = 16, patch_size: int = 48,
            steps: int = 5, repeats: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    from denoisers.models.averaged import AveragedConfig, AveragedResNet

    torch.manual_seed(seed)
    runs = []
    for c, h, d, r in archs:
        net = AveragedResNet(AveragedConfig(channels=c, hidden=h, depth=d, alpha_block=0.98, pixel_unshuffle=r))
        net.train()
        runs.append({"net": net, "opt": torch.optim.Adam(net.parameters(), 1e-4), "times": [],
                     "arch": {"channels": c, "hidden": h, "depth": d, "pixel_unshuffle": r}})
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 1, patch_size, patch_size, generator=g)
    y = x + 0.1 * torch.randn(x.shape, generator=g)

    def step(run):
        loss = torch.mean((run["net"](y) - x) ** 2)
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
    print("| channels:hidden:depth:unshuffle | parameters | s / step | patches / s |")
    print("|---|---:|---:|---:|")
    for r in recs:
        print(f"| {r['channels']}:{r['hidden']}:{r['depth']}:{r['pixel_unshuffle']} | {r['parameters']:,} | "
              f"{r['seconds_per_step']:.3f} | {r['patches_per_second']:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "threads": torch.get_num_threads(),
                                            "runs": recs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
