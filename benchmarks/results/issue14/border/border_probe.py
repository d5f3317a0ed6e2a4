"""How much PSNR the valid-window border band costs the shipped crr (BENCHMARKS.md, issue 14).

    python benchmarks/results/issue14/border/border_probe.py N LEVEL     # Set12 images 1..N, LEVEL in /255

Validation-loop noise (numpy default_rng(0) per image). Rows: the prox as shipped (whole image, and the
interior without a 12 px band), the prox of the image extended by 12 px of reflection and cropped back,
and the 12 px band alone (PSNR over its pixels)."""
import math, sys, time
import numpy as np, torch, torch.nn.functional as F
from denoisers.train.trainer import validation_images
from pnp.resolve import resolve_denoiser
torch.set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
lv = float(sys.argv[2]) if len(sys.argv) > 2 else 25
imgs, _ = validation_images(n)
D = resolve_denoiser("crr", argument="--denoiser")
s = lv / 255
def psnr(a, b): return 10 * math.log10(1 / float(F.mse_loss(a, b)))
rows = {"plain": [], "plain_interior12": [], "reflect12": [], "reflect12_interior12": [], "band12": []}
for im in imgs:
    x = im[None].float()
    rng = np.random.default_rng(0)
    y = x + torch.from_numpy(rng.normal(0, s, size=tuple(x.shape)).astype(np.float32))
    out = D(y, s).clamp(0, 1)
    rows["plain"].append(psnr(out, x))
    rows["plain_interior12"].append(psnr(out[..., 12:-12, 12:-12], x[..., 12:-12, 12:-12]))
    yp = F.pad(y, (12, 12, 12, 12), mode="reflect")
    outp = D(yp, s)[..., 12:-12, 12:-12].clamp(0, 1)
    rows["reflect12"].append(psnr(outp, x))
    rows["reflect12_interior12"].append(psnr(outp[..., 12:-12, 12:-12], x[..., 12:-12, 12:-12]))
    m = torch.ones_like(x); m[..., 12:-12, 12:-12] = 0
    rows["band12"].append(10 * math.log10(1 / float(((out - x) ** 2 * m).sum() / m.sum())))
for k, v in rows.items():
    print(f"{k:24s} {np.mean(v):.3f}  " + " ".join(f"{t:.2f}" for t in v))
