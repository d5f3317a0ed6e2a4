"""Paired table of a deblurring results folder: mean PSNR per kernel, SSIM, converged, for chosen
(denoiser, solver) pairs at one noise level, over the images that every pair has.

    python benchmarks/results/issue14/t1275/paired.py FOLDER NOISE_255 DEN/SOLVER[,DEN/SOLVER...]
"""
import json
import statistics
import sys
from collections import defaultdict

folder, noise, pairs = sys.argv[1], float(sys.argv[2]), [tuple(p.split("/")) for p in sys.argv[3].split(",")]
recs = [json.loads(line) for line in open(f"{folder}/records.jsonl")]
recs = [r for r in recs if abs(r["noise_255"] - noise) < 1e-6]
by = defaultdict(dict)
for r in recs:
    by[(r["denoiser"], r["solver"])][(r["image"], r["kernel"])] = r
common = set.intersection(*(set(by[p]) for p in pairs))
kernels = sorted({k for _, k in common}, key=lambda k: [r["kernel_index"] for r in recs if r["kernel"] == k][0])
images = sorted(i for i in {i for i, _ in common} if all((i, k) in common for k in kernels))
common = {(i, k) for i in images for k in kernels}  # whole images only
print(f"{len(common)} cases: images {', '.join(images)}; {len(kernels)} kernels; noise {noise}/255")
print("| method | " + " | ".join(kernels) + " | mean | SSIM | converged | median s/it |")
print("|---|" + "---:|" * (len(kernels) + 4))
for p in pairs:
    cells = [statistics.mean(by[p][(i, k)]["psnr"] for i in images) for k in kernels]
    cases = [by[p][c] for c in common]
    print(f"| {p[0]} / {p[1]} | " + " | ".join(f"{c:.2f}" for c in cells)
          + f" | {statistics.mean(r['psnr'] for r in cases):.2f} | {statistics.mean(r['ssim'] for r in cases):.4f}"
          + f" | {sum(r['converged'] for r in cases)}/{len(cases)}"
          + f" | {statistics.median(r['time_per_iteration'] for r in cases):.3f} |")
ref = pairs[-1]
for p in pairs[:-1]:
    d = [by[p][c]["psnr"] - by[ref][c]["psnr"] for c in common]
    per_img = [statistics.mean(by[p][(i, k)]["psnr"] - by[ref][(i, k)]["psnr"] for k in kernels) for i in images]
    print(f"{p[0]}/{p[1]} - {ref[0]}/{ref[1]}: mean {statistics.mean(d):+.3f} dB, above in {sum(x > 0 for x in d)}"
          f"/{len(d)}; per image " + ", ".join(f"{x:+.2f}" for x in per_img)
          + f"; monotone {sum(by[p][c]['monotone'] for c in common)}/{len(common)}")
