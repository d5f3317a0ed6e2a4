"""Where the zoo crr's scaled filter responses a = mu(sigma) W y lie, against its spline grid [-4, 4]
(Set12 01 with Gaussian noise, seed 0), and the odd profile at a few points.

    python benchmarks/results/issue14/wide-grid/responses.py
"""
import numpy as np
import torch
from skimage import io

from denoisers.zoo import load

reg = load("crr-circular").reg
img = torch.from_numpy(io.imread("/work/shared/data/set12/01.png").astype(np.float32) / 255.0)[None, None]
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for s in (5, 15, 25, 50):
        sig = torch.tensor([s / 255.0])
        y = img + s / 255.0 * torch.randn(img.shape, generator=g)
        u, mu, _, _ = reg._responses(y, sig, None)
        a = (mu * u).abs().flatten()
        q = torch.quantile(a[::7], torch.tensor([0.5, 0.9, 0.99]))
        print(f"{s}/255: mu {reg.mu_of(sig).item():.0f}, |a| quantiles 50/90/99 % {q.numpy().round(2)}, "
              f"beyond the grid {(a > 4).float().mean().item():.3f}")
    t = torch.tensor([0, 0.5, 1, 2, 4]).view(1, 1, -1).expand(1, 60, -1).contiguous()
    print("profile f_odd at 0, 0.5, 1, 2, 4 (first 3 filters):", reg.f_plus.odd(t)[0, :3].numpy().round(3))
    print("slope of the last piece (first 5 filters):", reg.f_plus.odd_projection()[1][:5, -1].numpy().round(4))
