"""PnP-ADMM with the crr-circular prox: each inner prox solve started cold (from its input) against warm-started
from the previous output (``RidgeDenoiser.for_loop``, what the solvers now do), on levin10-cal6 problems (the
protocol's ADMM rule and noise seeding, tol 1e-5, 300 iterations, plain loop). Usage:
    python compare.py SHARED_DATA OUT.json IMAGES KERNELS NOISES_255     e.g. ... 02 levin:0,gaussian:25:1.6 7.65
"""
import json
import sys
import time

import numpy as np
import torch
from skimage.io import imread

import denoisers
import denoisers.ridge.prox as prox_mod
from benchmarks.protocols import load_protocol
from operators import FFTBlur, load_kernel
from pnp.metrics import psnr
from pnp.api import SOLVERS

torch.set_num_threads(1)
data, out = sys.argv[1], sys.argv[2]
images, kernels, noises = (a.split(",") for a in sys.argv[3:6])
proto = load_protocol("levin10-cal6")
den = denoisers.load("crr-circular")
inner = {"n": 0}
_prox = prox_mod.ridge_prox


def counting_prox(*a, **k):
    x, info = _prox(*a, **k)
    inner["n"] += info.iterations
    return x, info


prox_mod.ridge_prox = counting_prox
rows = []
for img in images:
    x = torch.tensor(imread(f"{data}/set12/{img}.png").astype(np.float32) / 255)[None, None]
    for kname in kernels:
        A = FFTBlur(load_kernel(kname))
        opnorm = float(A.opnorm(image_size=x.shape[-2:]))
        for n255 in noises:
            nu = float(n255) / 255
            np.random.seed(0)
            noise = np.random.normal(0, nu, (x.shape[2], x.shape[3], 1)).astype(np.float32)
            y = A(x) + torch.tensor(noise[..., 0])[None, None]
            s, gamma = proto.rule.parameters("crr-circular", solver="admm", noise=nu, opnorm=opnorm)
            row = {"image": img, "kernel": kname, "noise_255": float(n255), "sigma": s, "gamma": gamma}
            for mode in ("cold", "warm"):
                den.for_loop = None if mode == "cold" else type(den).for_loop.__get__(den)
                inner["n"] = 0
                t = time.perf_counter()
                solver = SOLVERS["admm"](A, y, den, sigma=s, gamma=gamma, max_iter=300, tol=1e-5, x_true=x)
                r = solver.run()
                row[mode] = {"iterations": r.iterations, "inner_iterations": inner["n"],
                             "seconds": time.perf_counter() - t, "psnr": float(psnr(r.x, x)),
                             "stop": r.stop_reason}
                print(img, kname, n255, mode, row[mode], flush=True)
            rows.append(row)
json.dump(rows, open(out, "w"), indent=1)
