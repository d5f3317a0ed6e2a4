"""Figures of BENCHMARKS.md (issue 14, loss weighting and noise range): steps, lambda(sigma) and the
Set12 01-03 PSNR of each 600 s fine-tune. Run from the repository root after the runs exist under runs/:
python benchmarks/results/issue14/sigma/summarise.py"""
import json
import torch
from denoisers.ridge.train import load_ridge

torch.set_grad_enabled(False)
d = "benchmarks/results/issue14/sigma/"
for n in ("ctl", "w0", "wm1", "r30"):
    reg, meta = load_ridge(f"runs/s14-{n}/crr.safetensors")
    lam = [round(float(reg.lambda_of(torch.tensor([s / 255]))), 2) for s in (5, 25, 50)]
    psnr = json.load(open(d + f"{n}-val3.json"))["runs"][0]["psnr"]
    print(n, "steps", meta["steps"], "lambda(5, 25, 50 /255)", lam, "PSNR", {k: round(v, 3) for k, v in psnr.items()})
