"""Markdown table of the issue-15 ablation: python benchmarks/results/issue15/table.py RUN_DIR [SPEED_JSON]

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


def main(run_dir: str, speed: str | None = None) -> None:
    d = Path(run_dir)
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
        summ, s12 = d / f"{name}.json", d / f"{name}.set12.json"
        if not summ.exists() or not s12.exists():
            print(f"| {LABEL[name]} | not finished | | | | | | | |")
            continue
        meta = json.loads(summ.read_text())
        rec = json.loads(s12.read_text())["runs"][0]
        from safetensors import safe_open

        with safe_open(str(d / f"{name}.safetensors"), "pt") as f:
            hist = json.loads(f.metadata()["pnp_toolkit"]).get("history", {})
        curve = " / ".join(f"{v:.2f}" for v in hist.get("val_psnr", []))
        s, ratio = sec.get(name, (None, None))
        ps = rec["psnr"]
        print(f"| {LABEL[name]} | {rec['params']:,} | {meta['certificate']['alpha']:.4f} | "
              f"{'' if s is None else f'{s:.3f}'} | {'' if ratio is None else f'{ratio:.2f}'} | {curve} | "
              f"{ps['15']:.2f} | {ps['25']:.2f} | {ps['50']:.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
