r"""Speed of the PnP loop: overhead against deepinv, time and memory per iteration against size.

Two measurements, one call (:func:`measure_speed`):

* **overhead** -- :func:`benchmarks.overhead.measure_overhead`: our PnP-FBS loop, deepinv's PGD
  and a bare loop on the same problem, side by side, median seconds per iteration and the ratio;
* **scaling** -- for each size ``n`` in ``sizes`` (``n x n`` grey image, circular blur by
  ``kernel``, PnP-FBS with ``denoiser``): the median seconds per iteration over ``iterations``
  timed steps (after ``warmup`` steps), the peak memory *above the level before the first
  iteration* (the iterations' working memory: buffers of the first iteration included), and the
  memory after every timed iteration. The scaling exponent ``p`` is the
  least-squares slope of ``log t`` against ``log(n^2)`` (time ~ pixels^p; an FFT blur plus a
  convolutional denoiser give ``p`` close to 1). Memory must stay flat over iterations: the
  growth (the largest memory level over the second half of the timed iterations minus that over
  the first half) must stay below two image buffers, or the memory may rise (by half an image
  buffer or more, from one timed iteration to the next) at most once (``flat=True``). A solver
  that kept every iterate grows by one buffer at every iteration; the allocator alone sometimes
  maps one more arena once, a single step that is not a leak.

Memory on CUDA: ``torch.cuda.max_memory_allocated`` (reset before the iterations) and
``torch.cuda.memory_allocated``. On the CPU: the process's resident set (``VmRSS``) and its
peak ``VmHWM`` from ``/proc/self/status``, the peak reset through ``/proc/self/clear_refs``
(Linux), each size in a fresh process (the allocator keeps freed memory, which would hide the
peak of a later size); elsewhere the CPU memory fields are ``None``.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["default_sizes", "fit_exponent", "measure_scaling", "measure_speed", "speed_markdown"]


def default_sizes(device: str) -> tuple[int, ...]:
    """128..2048 on a GPU; 128..512 on a CPU (2048 takes minutes per iteration there)."""
    if str(device).startswith("cuda"):
        return (128, 256, 512, 1024, 2048)
    return (128, 256, 512)


def fit_exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope of ``log t`` against ``log(n^2)``."""
    pts = [(math.log(n * n), math.log(t)) for n, t in zip(sizes, seconds) if t and t > 0]
    if len(pts) < 2:
        return None
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def _proc_status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _measure_one(n: int, denoiser: str, kernel: str, noise: float, iterations: int, warmup: int,
                 device: str, dtype: torch.dtype, seed: int, threads: int | None) -> dict[str, Any]:
    """One size: the row of :func:`measure_scaling` (run in a fresh process on the CPU)."""
    import pnp
    from benchmarks.baselines import resolve_denoiser
    from operators import FFTBlur, add_gaussian_noise, load_kernel

    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    k = load_kernel(kernel)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, n, n, generator=g, dtype=dtype).to(dev)
    physics = FFTBlur(k).to(dev)
    y = add_gaussian_noise(physics.A(x), noise, seed=seed)
    den = resolve_denoiser(denoiser, device=dev)
    opn = physics.opnorm(image_size=(n, n))
    sigma, gamma = pnp.default_parameters(noise, denoiser=den, opnorm=opn)
    image_bytes = x.numel() * x.element_size()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = pnp.PnPFBS(physics, y, den, sigma=sigma, gamma=gamma,
                            max_iter=warmup + iterations, tol=1e-30)
        _sync(dev)
        # the peak is measured from before the first iteration (its working buffers included)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            reset = True
        else:
            reset = _reset_peak_rss()
            base = _proc_status("VmRSS")
        for _ in range(warmup):
            solver.step()
        _sync(dev)
        mem: list[int | None] = []
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            solver.step()
            _sync(dev)
            times.append(time.perf_counter() - t0)
            mem.append(torch.cuda.memory_allocated(dev) if dev.type == "cuda" else _proc_status("VmRSS"))
        if dev.type == "cuda":
            peak: int | None = torch.cuda.max_memory_allocated(dev) - base
        else:
            hwm = _proc_status("VmHWM")
            peak = (hwm - base) if (reset and hwm is not None and base is not None) else None
    # growth = max over the 2nd half minus max over the 1st half of the timed iterations: a leak
    # of b bytes per iteration shows as ~b * iterations / 2; allocator oscillations cancel
    h = len(mem) // 2
    growth = (max(mem[h:]) - max(mem[:h])) if None not in mem and h >= 1 else None
    # iterations after which memory rose by half an image buffer or more: a leak rises at every
    # one, the allocator's occasional extra arena once
    rises = (sum(1 for a, b in zip(mem, mem[1:]) if b - a >= image_bytes / 2)
             if None not in mem else None)
    return {
        "size": n,
        "pixels": n * n,
        "s_per_iter": statistics.median(times),
        "s_per_iter_all": times,
        "peak_extra_bytes": peak,
        "memory_after_iteration": mem,
        "memory_growth_bytes": growth,
        "image_bytes": image_bytes,
        "memory_rises": rises,
        "flat": None if growth is None else bool(growth < 2 * image_bytes or rises <= 1),
        "sigma": sigma,
        "gamma": gamma,
    }


def measure_scaling(
    *,
    sizes: tuple[int, ...] | None = None,
    denoiser: str = "quadratic",
    kernel: str = "gaussian:25:1.6",
    noise: float = 0.01,
    iterations: int = 10,
    warmup: int = 3,
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    isolate: bool | None = None,
) -> dict[str, Any]:
    """Time and memory per PnP-FBS iteration for each size (module docstring).

    ``isolate`` (default: on the CPU): measure each size in a fresh spawned process, so that the
    resident-set peak is not hidden by memory the allocator kept from earlier sizes.
    """
    dev = torch.device(device) if device not in (None, "auto") else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = tuple(sizes) if sizes else default_sizes(dev.type)
    if iterations < 2 or warmup < 0:
        raise ValueError(f"iterations must be >= 2 and warmup >= 0, got {iterations!r}, {warmup!r}")
    _check_sizes(sizes, kernel)
    isolate = (dev.type == "cpu") if isolate is None else bool(isolate)
    rows = []
    for n in sizes:
        args = (n, denoiser, kernel, noise, iterations, warmup, str(dev), dtype, seed)
        if isolate:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
                rows.append(ex.submit(_measure_one, *args, torch.get_num_threads()).result())
        else:
            rows.append(_measure_one(*args, None))
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return {
        "benchmark": "fbs_scaling",
        "denoiser": denoiser,
        "kernel": kernel,
        "noise": noise,
        "iterations": iterations,
        "warmup": warmup,
        "device": str(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "isolated_processes": isolate,
        "memory_source": "torch.cuda allocator" if dev.type == "cuda" else "/proc/self/status VmRSS, VmHWM",
        "rows": rows,
        "exponent_vs_pixels": fit_exponent([r["size"] for r in rows], [r["s_per_iter"] for r in rows]),
        "memory_flat": all(r["flat"] for r in rows if r["flat"] is not None) if any(r["flat"] is not None for r in rows) else None,
    }


def _check_sizes(sizes: tuple[int, ...], kernel: str) -> None:
    from operators import load_kernel

    k = load_kernel(kernel)
    for n in sizes:
        if n < max(k.shape) or n < 8:
            raise ValueError(f"size {n} is smaller than the kernel {tuple(k.shape)} (or 8)")


def measure_speed(
    *,
    sizes: tuple[int, ...] | None = None,
    denoiser: str = "quadratic",
    kernel: str = "gaussian:25:1.6",
    iterations: int = 10,
    overhead_size: int = 256,
    overhead_iterations: int = 30,
    repeats: int = 5,
    device: str | None = None,
    isolate: bool | None = None,
) -> dict[str, Any]:
    """Overhead vs deepinv (:mod:`benchmarks.overhead`) and the size scaling, in one dict."""
    from benchmarks.overhead import measure_overhead

    dev = device if device not in (None, "auto") else ("cuda" if torch.cuda.is_available() else "cpu")
    _check_sizes(tuple(sizes) if sizes else default_sizes(torch.device(dev).type), kernel)  # before any work
    over = measure_overhead(size=overhead_size, denoiser=denoiser, kernel=kernel,
                            iterations=overhead_iterations, repeats=repeats, device=dev)
    scal = measure_scaling(sizes=sizes, denoiser=denoiser, kernel=kernel, iterations=iterations, device=dev,
                           isolate=isolate)
    return {"overhead": over, "scaling": scal}


def _mb(v: int | None) -> str:
    return "-" if v is None else f"{v / 2**20:.1f}"


def speed_markdown(result: dict[str, Any]) -> str:
    """Markdown tables for :func:`measure_speed`'s result."""
    o, s = result["overhead"], result["scaling"]
    lines = [
        f"## Loop overhead vs deepinv ({o['size']}x{o['size']}, {o['denoiser']}, {o['iterations']} iterations, "
        f"median of {o['repeats']}; device {o['device']}, {o['torch_threads']} thread(s))",
        "",
        "| loop | ms / iteration |",
        "|---|---|",
        f"| ours (pnp.PnPFBS.run) | {1e3 * o['ours_s_per_iter']:.2f} |",
        f"| deepinv PGD | {1e3 * o['deepinv_s_per_iter']:.2f} |",
        f"| bare loop | {1e3 * o['bare_s_per_iter']:.2f} |",
        "",
        f"ratio ours / deepinv = {o['ratio_ours_over_deepinv']:.3f}; max relative difference of the "
        f"iterates {o['max_rel_diff_ours_vs_deepinv']:.2e}",
        "",
        f"## Time and memory per iteration (PnP-FBS, {s['denoiser']}, kernel {s['kernel']}, "
        f"{s['iterations']} timed iterations after {s['warmup']}; memory: {s['memory_source']})",
        "",
        "| size | ms / iteration | peak memory above pre-iteration level (MiB) | growth, 2nd vs 1st half of timed iterations (MiB) | flat |",
        "|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        lines.append(f"| {r['size']}x{r['size']} | {1e3 * r['s_per_iter']:.2f} | {_mb(r['peak_extra_bytes'])} | "
                     f"{_mb(r['memory_growth_bytes'])} | {r['flat']} |")
    exp = s["exponent_vs_pixels"]
    lines += ["", f"scaling exponent (time ~ pixels^p): p = {exp:.3f}" if exp is not None else "scaling exponent: -", ""]
    return "\n".join(lines)
