r"""Protocol ``levin10-valid``: deblurring photos whose borders are *not* periodic.

Every other deblurring protocol here blurs circularly, so the circular model is exact there. A
real photo is the blur of a scene that goes on beyond the frame. This protocol builds such an
observation, blurring **before** cropping:

* clean image ``x`` (``H x W``, 8-bit file / 255), kernel ``k`` (``kh x kw``);
* ``y = conv_valid(x, k) + n``: the linear convolution kept only where the kernel lies inside
  the image (:class:`operators.FFTBlur` with ``boundary="valid"``), so ``y`` is
  ``(H - kh + 1) x (W - kw + 1)`` and its border pixels carry genuine outside-scene content;
  ``n`` Gaussian, std ``nu``, torch generator seeded by ``seed + image index``;
* the reference is the part of ``x`` aligned with ``y`` (``FFTBlur.observed_region``).

Each case is restored by PnP-FBS (:func:`pnp.deblur`, its default parameter rule) with each
**model** of the blur, ``circular``, ``reflect`` (and ``replicate``) and ``valid``, and each
**prior**, the shipped certified family ``rk-averaged`` and TV. Reported per run: PSNR on the
full observed frame and on its **border band** (pixels closer than ``max(kh, kw)`` to the frame's
edge), iterations, convergence and time. PSNR: data range 1, both images clipped to ``[0, 1]``,
no crop other than the band.

Run (writes ``levin10-valid.jsonl`` record by record, so a cut run keeps what it did and a
re-run resumes, then ``summary.json`` and the border picture ``border.png``)::

    python -m benchmarks.boundary --images 01,02,03 --kernels levin:0,levin:3 --max-iter 100 \
        --out benchmarks/results/issue18
    python -m benchmarks.boundary --out benchmarks/results/issue18 --table   # markdown summary
    python -m benchmarks.boundary --operator-timing --kernels levin:0,levin:3  # operator costs
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BoundaryCase", "border_mask", "degrade_valid", "main", "operator_timing", "run_case",
    "summary_table",
]

MODELS = ("circular", "reflect", "replicate", "valid")
PRIORS = ("rk-averaged", "tv")


@dataclass(frozen=True)
class BoundaryCase:
    """One restoration of the protocol (serialised as a JSON line)."""

    image: str
    kernel: str
    kernel_size: tuple[int, int]
    noise: float
    seed: int
    prior: str
    model: str
    psnr: float
    psnr_border: float
    psnr_interior: float
    psnr_input: float
    border_width: int
    iterations: int
    converged: bool
    seconds: float
    max_iter: int
    tol: float
    guarantee: str


def border_mask(shape: tuple[int, int], width: int) -> Tensor:
    """Boolean ``[H, W]`` mask of the pixels closer than ``width`` to the frame's edge."""
    h, w = shape
    if width < 1 or 2 * width >= min(h, w):
        raise ValueError(f"width must be in [1, min(H, W) / 2), got {width!r} for {shape}")
    m = torch.ones(h, w, dtype=torch.bool)
    m[width:h - width, width:w - width] = False
    return m


def _masked_psnr(x: Tensor, ref: Tensor, mask: Tensor) -> float:
    d = (x.clamp(0, 1) - ref.clamp(0, 1)).pow(2)
    mse = float(d[..., mask].mean())
    return 10.0 * float(np.log10(1.0 / mse))


def degrade_valid(clean: Tensor, kernel: Tensor, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """``(y, reference)``: the valid blur of ``clean`` plus seeded noise, and the part of
    ``clean`` aligned with ``y``."""
    from operators import FFTBlur, add_gaussian_noise

    op = FFTBlur(kernel, boundary="valid")
    y = add_gaussian_noise(op.A(clean), noise, seed=seed)
    return y, op.observed_region(clean)


def run_case(
    y: Tensor, ref: Tensor, kernel: Tensor, *, noise: float, prior: str, model: str,
    max_iter: int, tol: float,
) -> tuple[Tensor, Any, float]:
    """Restore ``y`` with ``pnp.deblur``; returns ``(x, result, seconds)``."""
    import pnp

    t0 = time.perf_counter()
    res = pnp.deblur(
        y, kernel, noise_level=noise, denoiser=prior, solver="fbs", max_iter=max_iter, tol=tol,
        boundary=model,
    )
    return res.x, res, time.perf_counter() - t0


def summary_table(records: list[dict[str, Any]]) -> str:
    """Markdown table: per prior and model, the mean over the cases of PSNR (full frame, border
    band, interior), iterations and seconds, and how many runs converged."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["prior"], r["model"]), []).append(r)
    order = {m: i for i, m in enumerate(MODELS)}
    lines = [
        "| prior | model | cases | PSNR full | PSNR border band | PSNR interior | iterations | converged | s / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (prior, model) in sorted(groups, key=lambda k: (k[0], order.get(k[1], 9))):
        rs = groups[(prior, model)]
        mean = lambda key: sum(float(r[key]) for r in rs) / len(rs)  # noqa: E731
        lines.append(
            f"| {prior} | {model} | {len(rs)} | {mean('psnr'):.2f} | {mean('psnr_border'):.2f} | "
            f"{mean('psnr_interior'):.2f} | {mean('iterations'):.0f} | "
            f"{sum(bool(r['converged']) for r in rs)}/{len(rs)} | {mean('seconds'):.1f} |"
        )
    return "\n".join(lines)


def operator_timing(kernels: Sequence[str], size: int = 256, repeats: int = 20) -> str:
    """Markdown table, per kernel and boundary model on a ``size x size`` scene (float32, the
    observation ``size - k + 1``): the norm bound ``B``, milliseconds of one gradient
    ``A^T (A x - y)``, and CG iterations and milliseconds of ``prox_l2`` at ``gamma = 1/B^2``,
    ``1.95/B^2`` and ``100/B^2``."""
    from operators import FFTBlur, load_kernel

    lines = [
        "| kernel | model | x grid | bound B on ||A|| | gradient ms | prox: CG iterations / ms at gamma = 1, 1.95, 100 over B^2 |",
        "|---|---|---|---|---|---|",
    ]
    with torch.no_grad():
        for spec in kernels:
            k = load_kernel(spec)
            kh, kw = k.shape
            g = torch.Generator().manual_seed(0)
            y = torch.rand(1, 1, size - kh + 1, size - kw + 1, generator=g)
            for model in ("circular", "reflect", "replicate", "valid"):
                op = FFTBlur(k, boundary=model)
                xs = op.x_shape(tuple(y.shape))
                x = torch.rand(xs, generator=g)
                bound = op.opnorm(image_size=tuple(xs[-2:]))
                op.A_adjoint(op.A(x) - y)
                t0 = time.perf_counter()
                for _ in range(repeats):
                    op.A_adjoint(op.A(x) - y)
                grad_ms = (time.perf_counter() - t0) / repeats * 1e3
                cells = []
                for scale in (1.0, 1.95, 100.0):
                    op.last_prox_info = None
                    t0 = time.perf_counter()
                    op.prox_l2(x, y, scale / bound**2)
                    ms = (time.perf_counter() - t0) * 1e3
                    its = op.last_prox_info[0] if op.last_prox_info else 0
                    cells.append(f"{its} / {ms:.0f}")
                lines.append(f"| {spec} | {model} | {xs[-2]}x{xs[-1]} | {bound:.4f} | {grad_ms:.1f} | "
                             + ", ".join(cells) + " |")
    return "\n".join(lines)


def _border_picture(path: Path, panels: list[tuple[str, Tensor]], corner: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.6))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img[0, 0, :corner, :corner].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.degrade import load_clean, resolve_data, to_tensor
    from operators import load_kernel

    ap = argparse.ArgumentParser(prog="python -m benchmarks.boundary", description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="set12")
    ap.add_argument("--images", default="01,02,03")
    ap.add_argument("--kernels", default="levin:0,levin:2,levin:3")
    ap.add_argument("--noise", type=float, default=7.65 / 255)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--priors", default=",".join(PRIORS))
    ap.add_argument("--models", default="circular,reflect,valid")
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--picture", default="01:levin:3", help="IMAGE:KERNEL of the border picture")
    ap.add_argument("--corner", type=int, default=72, help="side of the top-left crop pictured")
    ap.add_argument("--out", default=None, help="results folder (required except with --operator-timing)")
    ap.add_argument("--operator-timing", action="store_true",
                    help="only print the operator cost table (norm bound, gradient, CG prox) for --kernels")
    ap.add_argument("--table", action="store_true",
                    help="only print the markdown summary of the records already in --out")
    args = ap.parse_args(argv)
    if args.operator_timing:
        print(operator_timing([k for k in args.kernels.split(",") if k]))
        return 0
    if args.out is None:
        ap.error("--out is required")
    if args.table:
        path = Path(args.out) / "levin10-valid.jsonl"
        print(summary_table([json.loads(l) for l in path.read_text().splitlines() if l.strip()]))
        return 0
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"--models: unknown model {m!r} (choose from {', '.join(MODELS)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "levin10-valid.jsonl"
    done = set()
    if records_path.exists():
        for line in records_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["image"], r["kernel"], r["prior"], r["model"]))
    folder = resolve_data(args.data)
    pic_image, pic_kernel = args.picture.split(":", 1)
    panels: list[tuple[str, Tensor]] = []
    for spec in [k for k in args.kernels.split(",") if k]:
        kernel = load_kernel(spec)
        kh, kw = kernel.shape
        width = max(kh, kw)
        for idx, name in enumerate([i for i in args.images.split(",") if i]):
            arr, _ = load_clean(folder / f"{name}.png")
            clean = to_tensor(arr, dtype=torch.float32)
            y, ref = degrade_valid(clean, kernel, args.noise, args.seed + idx)
            mask = border_mask(tuple(ref.shape[-2:]), width)
            psnr_in = _masked_psnr(y, ref, torch.ones_like(mask))
            picture = name == pic_image and spec == pic_kernel
            if picture:
                panels = [("clean (reference)", ref), (f"observed {psnr_in:.2f} dB", y)]
            for prior in [p for p in args.priors.split(",") if p]:
                for model in models:
                    key = (name, spec, prior, model)
                    if key in done and not (picture and prior == "rk-averaged"):
                        continue  # recorded (the pictured case re-runs its rk-averaged panels)
                    x, res, secs = run_case(
                        y, ref, kernel, noise=args.noise, prior=prior, model=model,
                        max_iter=args.max_iter, tol=args.tol,
                    )
                    case = BoundaryCase(
                        image=name, kernel=spec, kernel_size=(kh, kw), noise=args.noise,
                        seed=args.seed + idx, prior=prior, model=model,
                        psnr=_masked_psnr(x, ref, torch.ones_like(mask)),
                        psnr_border=_masked_psnr(x, ref, mask),
                        psnr_interior=_masked_psnr(x, ref, ~mask),
                        psnr_input=psnr_in, border_width=width, iterations=res.iterations,
                        converged=res.converged, seconds=secs, max_iter=args.max_iter,
                        tol=args.tol, guarantee=res.guarantee.summary(),
                    )
                    if picture and prior == "rk-averaged":
                        panels.append((f"{model}: {case.psnr:.2f} / border {case.psnr_border:.2f}", x))
                    if key not in done:
                        with records_path.open("a") as fh:
                            fh.write(json.dumps(asdict(case)) + "\n")
                        done.add(key)
                    print(f"{name} {spec} {prior:12s} {model:9s} PSNR {case.psnr:6.2f} border "
                          f"{case.psnr_border:6.2f} it {case.iterations:4d} {secs:6.1f} s", flush=True)
    if panels:
        _border_picture(out / "border.png", panels, args.corner)
    env = {
        "python": platform.python_version(), "torch": torch.__version__, "dtype": "float32",
        "device": "cpu", "threads": torch.get_num_threads(),
    }
    summary = {"protocol": "levin10-valid", "args": vars(args), "environment": env,
               "psnr_definition": "10 log10(1/MSE), data range 1, clipped to [0,1]; border band = "
                                  "pixels closer than max(kh, kw) to the observed frame's edge"}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
