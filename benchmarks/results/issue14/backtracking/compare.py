"""Variational solver, certified step 1/L against backtracking L_k <= L, on levin10-cal6 problems (crr-circular,
the protocol's rule and noise seeding, tol 1e-5, 300 iterations). Usage:
    python compare.py SHARED_DATA OUT.json IMAGES KERNELS NOISES_255     e.g. ... 01,04 levin:0,levin:3,gaussian:25:1.6 7.65,12.75
"""
import json
import sys
import time

import numpy as np
import torch
from skimage.io import imread

import denoisers
from benchmarks.protocols import load_protocol
from operators import FFTBlur, load_kernel
from pnp.metrics import psnr
from pnp.solvers.variational import VariationalRidge

torch.set_num_threads(1)
data, out = sys.argv[1], sys.argv[2]
images, kernels, noises = (a.split(",") for a in sys.argv[3:6])
proto = load_protocol("levin10-cal6")
reg = denoisers.load("crr-circular").reg
rows = []
for img in images:
    x = torch.tensor(imread(f"{data}/set12/{img}.png").astype(np.float32) / 255)[None, None]
    for kname in kernels:
        A = FFTBlur(load_kernel(kname))
        for n255 in noises:
            nu = float(n255) / 255
            np.random.seed(0)
            noise = np.random.normal(0, nu, (x.shape[2], x.shape[3], 1)).astype(np.float32)
            y = A(x) + torch.tensor(noise[..., 0])[None, None]
            e = proto.rule.entry("crr-circular", solver="variational", noise=nu)
            s, mult = e.scale * nu ** e.power, e.gamma_scale
            row = {"image": img, "kernel": kname, "noise_255": float(n255)}
            for step in ("certified", "backtracking"):
                t = time.perf_counter()
                r = VariationalRidge(A, y, reg, sigma=s, lam_scale=mult, max_iter=300, tol=1e-5, x_true=x,
                                     step=step).run()
                row[step] = {"iterations": r.iterations, "converged": r.converged, "seconds": time.perf_counter() - t,
                             "psnr": float(psnr(r.x.clamp(0, 1), x)[0]), "objective": float(r.objective[-1, 0]),
                             "backtracks": r.backtracks, "safeguard_steps": r.safeguard_steps,
                             "last_L": float(r.step_constant[0]), "certified_L": 1.0 / r.params.gamma}
            print(json.dumps(row), flush=True)
            rows.append(row)
json.dump(rows, open(out, "w"), indent=1)
