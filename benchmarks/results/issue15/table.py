"""Markdown table of the issue-15 ablation: python benchmarks/results/issue15/table.py RUN_DIR [SPEED_JSON [PLOT_PNG]]

Reads, for each variant, RUN_DIR/NAME.json (the trainer's summary: certificate, validation history,
training seconds) and RUN_DIR/NAME.set12.json (`benchmarks.set12_denoise`), and optionally the
interleaved step times of `benchmarks.train_speed --json` (in the order of VARIANTS)."""

import json
import sys
from pathlib import Path

VARIANTS = ["baseline", "multiconv", "oddspline", "anchor", "tied", "distill", "firm"]
LABEL = {
    "baseline": "shipped s25 recipe (ReLU + bias, 12 untied blocks)",
    "multiconv": "1. multi-convolution W (2 x 3x3 -> 5x5 composed)",
    "oddspline": "2. odd monotone splines (clip init), no bias",
    "anchor": "3. blocks anchored to the input (learned c_i)",
    "tied": "4. one block applied 12 times (tied)",
    "distill": "5. distillation from the unconstrained twin",
    "firm": "firmly non-expansive: relaxation theta = 1/2 in training",
}


def plot(d: Path, out: Path) -> None:
    """Validation PSNR at 25/255 against the step, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from safetensors import safe_open

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in VARIANTS:
        f = _find(d, name, ".safetensors")
        if f is None:
            continue
        with safe_open(str(f), "pt") as h:
            hist = json.loads(h.metadata()["pnp_toolkit"]).get("history", {})
        if hist.get("val_step"):
            ax.plot(hist["val_step"], hist["val_psnr"], "o-", label=LABEL[name])
    ax.set_xlabel("training step (equal budget)")
    ax.set_ylabel("Set12 PSNR at 25/255 (dB, before freezing)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _find(d: Path, name: str, suffix: str) -> Path | None:
    """RUN_DIR/NAME<suffix>, or RUN_DIR/d/NAME<suffix> (a variant run on its own), when it is a real file."""
    for f in (d / f"{name}{suffix}", d / "d" / f"{name}{suffix}"):
        if f.exists() and f.stat().st_size > 0:
            return f
    return None


def main(run_dir: str, speed: str | None = None, plot_to: str | None = None) -> None:
    d = Path(run_dir)
    if plot_to:
        plot(d, Path(plot_to))
    sec = {}
    if speed:
        runs = json.loads(Path(speed).read_text())["runs"]
        base = runs[0]["seconds_per_step"]
        for name, r in zip(VARIANTS, runs):
            sec[name] = (r["seconds_per_step"], r["seconds_per_step"] / base)
    print("| variant | parameters | certified alpha | s / step (interleaved) | ratio | val. 25/255 at 500 / 1000 / 1500 steps "
          "| Set12 15/255 | 25/255 | 50/255 |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for name in VARIANTS:
        summ, s12 = _find(d, name, ".json"), _find(d, name, ".set12.json")
        if summ is None or s12 is None:
            print(f"| {LABEL[name]} | not finished | | | | | | | |")
            continue
        meta = json.loads(summ.read_text())
        rec = json.loads(s12.read_text())["runs"][0]
        from safetensors import safe_open

        with safe_open(str(_find(d, name, ".safetensors")), "pt") as f:
            hist = json.loads(f.metadata()["pnp_toolkit"]).get("history", {})
        curve = " / ".join(f"{v:.2f}" for v in hist.get("val_psnr", []))
        s, ratio = sec.get(name, (None, None))
        ps = rec["psnr"]
        print(f"| {LABEL[name]} | {rec['params']:,} | {meta['certificate']['alpha']:.4f} | "
              f"{'' if s is None else f'{s:.3f}'} | {'' if ratio is None else f'{ratio:.2f}'} | {curve} | "
              f"{ps['15']:.2f} | {ps['25']:.2f} | {ps['50']:.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
