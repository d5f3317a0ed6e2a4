"""The shipped crr with a boundary-aware regulariser R(P x), P the reflection extension by p pixels
(BENCHMARKS.md, issue 14): its prox is still the prox of a convex function (firmly non-expansive), with
Lip(grad R o P) <= ||P||^2 Lip(grad R) = 4 Lip(grad R). Solved here by accelerated gradient with restart to
RMS gradient 1e-4, as the shipped prox.

    python benchmarks/results/issue14/border/reflect_prior_probe.py N LEVEL PAD [PAD ...]
"""
import math, sys, time
import numpy as np, torch, torch.nn.functional as F
from denoisers.train.trainer import validation_images
from denoisers.ridge.train import load_ridge
torch.set_num_threads(1)
n, lv = int(sys.argv[1]), float(sys.argv[2])
pads = [int(a) for a in sys.argv[3:]] or [6]
imgs, _ = validation_images(n)
reg, _ = load_ridge("denoisers/zoo/weights/crr.safetensors")
reg.requires_grad_(False)
kern = reg.kernel()
lip = reg.certificate().lip_grad
s = lv / 255
sig = torch.tensor([s])
lam = float(reg.lambda_of(sig))

def grad_RP(x, p):
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        xp = F.pad(xr, (p, p, p, p), mode="reflect")
        g = reg.grad(xp.detach(), sig, kernel=kern)
        (gt,) = torch.autograd.grad(xp, xr, g)
    return gt

def prox(y, p, tol=1e-4, max_iter=4000):
    L = 1.0 + lam * 4.0 * lip
    beta = (math.sqrt(L) - 1) / (math.sqrt(L) + 1)
    x_prev = y.clone(); z = y.clone()
    for it in range(max_iter):
        g = z - y + lam * grad_RP(z, p)
        if float(g.square().mean().sqrt()) <= tol:
            return z, it
        x = z - g / L
        if float((g * (x - x_prev)).sum()) > 0:  # gradient restart
            z = x.clone()
        else:
            z = x + beta * (x - x_prev)
        x_prev = x
    return x_prev, max_iter

def psnr(a, b): return 10 * math.log10(1 / float(F.mse_loss(a, b)))
for p in pads:
    vals, its, t0 = [], [], time.time()
    for im in imgs:
        x = im[None].float()
        rng = np.random.default_rng(0)
        y = x + torch.from_numpy(rng.normal(0, s, size=tuple(x.shape)).astype(np.float32))
        out, it = prox(y, p)
        vals.append(psnr(out.clamp(0, 1), x)); its.append(it)
    print(f"R(P x), reflect pad {p:2d}: mean {np.mean(vals):.3f}  " + " ".join(f"{v:.2f}" for v in vals)
          + f"  iterations {its}  ({time.time() - t0:.0f} s)", flush=True)
