"""Forward throughput of the certified averaged network against a DnCNN of the same parameter
count, and the cost of computing the certificate (issue: certified averaged denoiser).

Both networks run side by side in one process, alternating, on the same inputs; the figure of
merit is megapixels per second (median over repeats) and the ratio of the two.

    python -m benchmarks.throughput --sizes 256,512 --repeats 5 [--weights NAME_OR_PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

__all__ = ["dncnn_matching", "measure_throughput", "main"]


def _nparams(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def dncnn_matching(n_params: int, *, nf: int = 32, channels: int = 1) -> torch.nn.Module:
    """A deepinv DnCNN (random weights, no download) whose depth gives the closest parameter count."""
    from deepinv.models import DnCNN

    best = None
    for depth in range(3, 60):
        m = DnCNN(in_channels=channels, out_channels=channels, depth=depth, nf=nf, pretrained=None, device="cpu")
        gap = abs(_nparams(m) - n_params)
        if best is None or gap < best[0]:
            best = (gap, m)
    assert best is not None
    return best[1]


@torch.no_grad()
def _time(fn, x, sigma, repeats: int) -> list[float]:
    fn(x, sigma)  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x, sigma)
        out.append(time.perf_counter() - t0)
    return out


def measure_throughput(net: torch.nn.Module, *, sizes: list[int], repeats: int = 5, batch: int = 1) -> dict[str, Any]:
    """Median megapixels/second of ``net`` (and of its ``export()``) and of a matched DnCNN."""
    import denoisers

    base = net
    exported = base.export() if isinstance(base, denoisers.AveragedResNet) else None
    dn = dncnn_matching(_nparams(base), nf=base.config.hidden, channels=base.config.image_channels).eval()
    rows = []
    for s in sizes:
        x = torch.rand(batch, base.config.image_channels, s, s)
        times = {"averaged": [], "averaged_export": [], "dncnn": []}
        for _ in range(repeats):  # interleave to share the machine's state fairly
            times["averaged"] += _time(base, x, 0.1, 1)
            if exported is not None:
                times["averaged_export"] += _time(exported, x, 0.1, 1)
            times["dncnn"] += _time(dn, x, 0.1, 1)
        mp = batch * s * s / 1e6
        row = {"size": s, "batch": batch}
        for k, v in times.items():
            if v:
                row[f"{k}_seconds"] = statistics.median(v)
                row[f"{k}_mpix_per_s"] = mp / statistics.median(v)
        row["ratio_averaged_over_dncnn"] = row["averaged_mpix_per_s"] / row["dncnn_mpix_per_s"]
        if exported is not None:
            row["ratio_export_over_dncnn"] = row["averaged_export_mpix_per_s"] / row["dncnn_mpix_per_s"]
        rows.append(row)
    # certificate cost: recompute from scratch (no cache)
    t_cert = []
    for _ in range(3):
        for b in base.blocks:
            b._ub_cache = None
        t0 = time.perf_counter()
        base.compute_certificate()
        t_cert.append(time.perf_counter() - t0)
    return {
        "averaged_params": _nparams(base),
        "dncnn_params": _nparams(dn),
        "dncnn_depth": sum(1 for m in dn.modules() if isinstance(m, torch.nn.Conv2d)),
        "rows": rows,
        "certificate_seconds": statistics.median(t_cert),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    import denoisers
    from denoisers.models import AveragedConfig, AveragedResNet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--weights", default=None, help="zoo name or checkpoint (default: a random frozen network of the zoo architecture)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.weights:
        net = denoisers.load_denoiser(a.weights) if a.weights.endswith(".safetensors") else denoisers.load(a.weights).denoiser.net
    else:
        net = AveragedResNet(AveragedConfig(channels=32, hidden=32, depth=12, alpha_block=0.98))
        net.eval()
        net.freeze()
    res = measure_throughput(net.eval(), sizes=[int(s) for s in a.sizes.split(",")], repeats=a.repeats)
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
