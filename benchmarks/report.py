"""Reports of a deblurring (or denoising) benchmark: JSON, CSV, a Markdown summary and plots.

* ``results.json``: ``{"metadata": {...}, "records": [...]}`` -- metadata holds the protocol,
  seed, device, dtype, versions, command and date;
* ``results.csv``: one row per record, plus the columns ``protocol, seed, device, dtype, torch,
  deepinv`` repeated on every row;
* ``summary.md``: for each noise level, the mean PSNR per kernel and method (the deterministic
  table, :func:`psnr_table`), where methods ran different subsets each method against the most
  complete one on the cases both ran (:func:`common_table`), then one line per method with mean PSNR/SSIM, convergence, monotone
  residuals, iterations, time per iteration and the guarantee;
* ``plots/``: ``residual_<noise>.png`` (median relative residual against iteration, log-log),
  ``psnr_<noise>.png`` (median PSNR against iteration) and ``panel_<noise>.png`` (clean /
  observed / restored by each method, first image and kernel).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from benchmarks.records import clean_json

__all__ = ["common_table", "denoise_table", "method_name", "psnr_table", "method_table", "summary_markdown", "write_all", "write_csv", "write_json"]

_CSV_META = ("protocol", "seed", "device", "dtype", "torch", "deepinv")


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def method_name(r: dict[str, Any]) -> str:
    """``denoiser / solver`` (``wiener (closed form)`` for the closed-form baselines)."""
    if r["solver"] == "closed-form":
        return f"{r['denoiser']} (closed form)"
    return f"{r['denoiser']} / {r['solver']}"


def _noise_label(nu: float) -> str:
    return f"{nu * 255:.4g}/255"


def _ordered(values: Iterable[Any]) -> list[Any]:
    return list(OrderedDict.fromkeys(values))


def _fmt(v: float | None, spec: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def psnr_table(records: list[dict[str, Any]], *, metric: str = "psnr") -> str:
    """Markdown: per noise level, mean ``metric`` per kernel (columns) and method (rows); the last
    column counts the images behind each row (methods run on different subsets are not compared
    on the same images)."""
    lines: list[str] = []
    noises = sorted({r["noise"] for r in records})
    for nu in noises:
        rs = [r for r in records if r["noise"] == nu]
        kernels = _ordered(r["kernel"] for r in sorted(rs, key=lambda r: r.get("kernel_index", 0)))
        methods = _ordered(method_name(r) for r in rs)
        n_img = len({r["image"] for r in rs})
        lines.append(f"### noise {_noise_label(nu)}: mean {metric.upper()} over {n_img} image(s)")
        lines.append("")
        lines.append("| method | " + " | ".join(kernels) + " | mean | images |")
        lines.append("|---|" + "---|" * (len(kernels) + 2))
        for m in methods:
            cells = []
            allv = []
            for k in kernels:
                v = [r[metric] for r in rs if method_name(r) == m and r["kernel"] == k and r.get(metric) is not None]
                allv += v
                cells.append(_fmt(float(np.mean(v)) if v else None, ".2f" if metric == "psnr" else ".4f"))
            mean = float(np.mean(allv)) if allv else None
            n_m = len({r["image"] for r in rs if method_name(r) == m})
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {_fmt(mean, '.2f' if metric == 'psnr' else '.4f')} | {n_m} |")
        lines.append("")
    return "\n".join(lines)


def common_table(records: list[dict[str, Any]]) -> str:
    """Markdown: per noise level where the methods ran on different cases, every method against a
    reference on the ``(image, kernel)`` cases both ran (the paired comparison). The reference is
    the method with the most cases (the first of them in the records' order on a tie). Empty when
    every method ran the same cases."""
    lines: list[str] = []
    for nu in sorted({r["noise"] for r in records}):
        rs = [r for r in records if r["noise"] == nu]
        methods = _ordered(method_name(r) for r in rs)
        by = {m: {(r["image"], r["kernel"]): r for r in rs if method_name(r) == m} for m in methods}
        if len({frozenset(c) for c in by.values()}) <= 1:
            continue
        ref = max(methods, key=lambda m: (len(by[m]), -methods.index(m)))
        lines.append(f"### noise {_noise_label(nu)}: each method against `{ref}` on the cases both ran")
        lines.append("")
        lines += ["| method | cases | images | PSNR | PSNR of the reference | difference | SSIM | SSIM of the reference | converged |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for m in methods:
            if m == ref:
                continue
            both = sorted(set(by[m]) & set(by[ref]))
            if not both:
                lines.append(f"| {m} | 0 | 0 | - | - | - | - | - | - |")
                continue
            a = float(np.mean([by[m][c]["psnr"] for c in both]))
            b = float(np.mean([by[ref][c]["psnr"] for c in both]))
            sa = float(np.mean([by[m][c]["ssim"] for c in both]))
            sb = float(np.mean([by[ref][c]["ssim"] for c in both]))
            conv = sum(bool(by[m][c]["converged"]) for c in both)
            lines.append(f"| {m} | {len(both)} | {len({i for i, _ in both})} | {a:.2f} | {b:.2f} | {a - b:+.2f} | "
                         f"{sa:.4f} | {sb:.4f} | {conv}/{len(both)} |")
        lines.append("")
    return "\n".join(lines)


def method_table(records: list[dict[str, Any]]) -> str:
    """Markdown: per noise level and method, mean PSNR/SSIM, convergence, timing, guarantee."""
    lines = [
        "| noise | method | runs | PSNR | SSIM | converged | monotone | mean iterations | ms / iteration | guarantee |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for nu in sorted({r["noise"] for r in records}):
        rs = [r for r in records if r["noise"] == nu]
        for m in _ordered(method_name(r) for r in rs):
            g = [r for r in rs if method_name(r) == m]
            tpi = [r["time_per_iteration"] for r in g if r.get("time_per_iteration") is not None and r["iterations"]]
            guar = ", ".join(sorted({str(r["guarantee"]) for r in g}))
            lines.append(
                f"| {_noise_label(nu)} | {m} | {len(g)} | {np.mean([r['psnr'] for r in g]):.2f} | "
                f"{np.mean([r['ssim'] for r in g]):.4f} | {sum(bool(r['converged']) for r in g)}/{len(g)} | "
                f"{sum(bool(r['monotone']) for r in g)}/{len(g)} | {np.mean([r['iterations'] for r in g]):.1f} | "
                f"{_fmt(1e3 * float(np.mean(tpi)) if tpi else None, '.1f')} | {guar} |"
            )
    return "\n".join(lines) + "\n"


def summary_markdown(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    p = meta.get("protocol", {})
    head = [
        f"# Deblurring benchmark: protocol `{p.get('name', '?')}`",
        "",
        f"* data: `{meta.get('data')}` ({len(meta.get('images', []))} image(s)); kernels: "
        f"{', '.join(sorted({r['kernel'] for r in records}, key=lambda k: (p.get('kernels') or []).index(k) if k in (p.get('kernels') or []) else 99))}",
        f"* command: `{meta.get('command', '')}`",
        f"* date {meta.get('date')}; device {meta.get('device')} ({meta.get('device_name')}), dtype "
        f"{meta.get('dtype')}, seed {meta.get('seed')}; versions: "
        + ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items()),
        f"* PSNR: {p.get('psnr', '')}; budget {p.get('max_iter')} iterations "
        f"(overrides {p.get('max_iter_overrides') or {}}), tol {p.get('tol')} on the relative residual",
        "",
        "## PSNR (dB)",
        "",
    ]
    common = common_table(records)
    paired = ("\n## Paired comparison on shared cases\n\n" + common) if common else ""
    return ("\n".join(head) + psnr_table(records) + paired + "\n## Convergence and time per method\n\n"
            + method_table(records))


def write_json(path: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    _atomic_text(path, json.dumps(clean_json({"metadata": meta, "records": records}), indent=1) + "\n")


def write_csv(path: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    keys: list[str] = []
    for r in records:
        for k, v in r.items():
            if k not in keys and not isinstance(v, (dict, list)):
                keys.append(k)
    vers = meta.get("versions") or {}
    metarow = {
        "protocol": (meta.get("protocol") or {}).get("name"),
        "seed": meta.get("seed"),
        "device": meta.get("device"),
        "dtype": meta.get("dtype"),
        "torch": vers.get("torch"),
        "deepinv": vers.get("deepinv"),
    }
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys + list(_CSV_META), extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow({**{k: r.get(k) for k in keys}, **metarow})
    _atomic_text(path, buf.getvalue())


def _median_curves(out: Path, rs: list[dict[str, Any]], field: str) -> dict[str, np.ndarray]:
    curves: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in rs:
        f = r.get("history_file")
        if not f or not (out / f).exists():
            continue
        with np.load(out / f) as h:
            if field in h.files and h[field].size:
                curves[method_name(r)].append(h[field])
    med = {}
    for m, cs in curves.items():
        n = max(len(c) for c in cs)
        arr = np.full((len(cs), n), np.nan)
        for i, c in enumerate(cs):
            arr[i, : len(c)] = c
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                med[m] = np.nanmedian(arr, axis=0)
    return med


def write_plots(out: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Residual (log-log) and PSNR against iteration (medians over runs), and image panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pdir = out / "plots"
    pdir.mkdir(exist_ok=True)
    written = []
    for nu in sorted({r["noise"] for r in records}):
        rs = [r for r in records if r["noise"] == nu]
        tag = f"{nu * 255:.4g}".replace(".", "p")
        for field, ylabel, loglog, name in (
            ("residual", "median ||x_{k+1}-x_k|| / ||x_k||", True, "residual"),
            ("psnr", "median PSNR (dB)", False, "psnr"),
        ):
            med = _median_curves(out, rs, field)
            if not med:
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            for m, c in med.items():
                it = np.arange(1, len(c) + 1)
                if loglog:
                    ax.loglog(it, np.clip(c, 1e-300, None), label=m)
                else:
                    ax.plot(it, c, label=m)
            ax.set_xlabel("iteration")
            ax.set_ylabel(ylabel)
            ax.set_title(f"noise {_noise_label(nu)} ({len({r['image'] for r in rs})} image(s), "
                         f"{len({r['kernel'] for r in rs})} kernel(s))")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            p = pdir / f"{name}_{tag}.png"
            fig.savefig(p, dpi=100)
            plt.close(fig)
            written.append(p)
        with_img = [r for r in rs if r.get("image_file") and (out / r["image_file"]).exists()]
        if with_img:
            first = (with_img[0]["image"], with_img[0]["kernel"])
            sel = [r for r in with_img if (r["image"], r["kernel"]) == first]
            import imageio.v3 as iio

            panels = [("clean", out / sel[0]["case_files"][0]),
                      (f"observed ({sel[0]['psnr_input']:.2f} dB)", out / sel[0]["case_files"][1])]
            panels += [(f"{method_name(r)}\n{r['psnr']:.2f} dB", out / r["image_file"]) for r in sel]
            n = len(panels)
            cols = min(n, 4)
            rows = (n + cols - 1) // cols
            fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
            for ax in axes.flat:
                ax.axis("off")
            for ax, (title, f) in zip(axes.flat, panels):
                img = iio.imread(f)
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_title(title, fontsize=8)
            fig.suptitle(f"{first[0]}, kernel {first[1]}, noise {_noise_label(nu)}", fontsize=9)
            fig.tight_layout()
            p = pdir / f"panel_{tag}.png"
            fig.savefig(p, dpi=100)
            plt.close(fig)
            written.append(p)
    return written


def write_all(out: str | os.PathLike[str], records: list[dict[str, Any]], meta: dict[str, Any], *,
              plots: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``summary.md`` and (``plots=True``) ``plots/``."""
    outp = Path(out)
    paths = {"json": outp / "results.json", "csv": outp / "results.csv", "md": outp / "summary.md"}
    write_json(paths["json"], records, meta)
    write_csv(paths["csv"], records, meta)
    _atomic_text(paths["md"], summary_markdown(records, meta) if records else "# no records\n")
    if plots and records:
        write_plots(outp, records)
    return paths


def denoise_table(records: list[dict[str, Any]]) -> str:
    """Markdown: mean PSNR / SSIM per denoiser (rows) and noise level (columns)."""
    noises = sorted({r["noise"] for r in records})
    dens = _ordered(r["denoiser"] for r in records)
    lines = ["| denoiser | " + " | ".join(_noise_label(n) for n in noises) + " |",
             "|---|" + "---|" * len(noises)]
    inp = []
    for n in noises:
        v = [r["psnr_input"] for r in records if r["noise"] == n]
        inp.append(f"{np.mean(v):.2f}" if v else "-")
    lines.append("| (noisy input) | " + " | ".join(inp) + " |")
    for d in dens:
        cells = []
        for n in noises:
            v = [r for r in records if r["denoiser"] == d and r["noise"] == n]
            cells.append(f"{np.mean([r['psnr'] for r in v]):.2f} / {np.mean([r['ssim'] for r in v]):.3f}" if v else "-")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    n_img = len({r["image"] for r in records})
    return f"Mean PSNR (dB) / SSIM over {n_img} image(s)\n\n" + "\n".join(lines) + "\n"
