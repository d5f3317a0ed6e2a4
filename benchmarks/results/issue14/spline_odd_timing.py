"""Time of the ridge profiles' derivative psi' (BENCHMARKS.md, issue 14): the odd part of the spline evaluated
as two spline look-ups, (f(a) - f(-a)) / 2 (before), against one look-up in the odd part's own table
(LinearSpline.odd, now), on the shipped crr's filter responses. Same process, interleaved, one thread.

    python benchmarks/results/issue14/spline_odd_timing.py
"""
import time

import torch

from denoisers.ridge.multiconv import MultiConv
from denoisers.ridge.train import load_ridge

torch.set_num_threads(1)
torch.set_grad_enabled(False)
reg, _ = load_ridge("denoisers/zoo/weights/crr.safetensors")
k = reg.kernel()
for shape in [(16, 1, 40, 40), (1, 1, 256, 256)]:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    u = MultiConv.apply(k, x)
    mu = torch.full((shape[0], 1, 1, 1), 100.0)
    two = lambda: 0.5 * (reg.f_plus(mu * u) - reg.f_plus(-mu * u)) / mu
    one = lambda: reg.f_plus.odd(mu * u) / mu
    assert torch.allclose(two(), one(), rtol=1e-5, atol=1e-7)
    times = {"two look-ups": [], "one look-up": []}
    for _ in range(5):
        for name, f in (("two look-ups", two), ("one look-up", one)):
            t = time.perf_counter()
            for _ in range(5):
                f()
            times[name].append((time.perf_counter() - t) / 5 * 1e3)
    med = {n: sorted(v)[len(v) // 2] for n, v in times.items()}
    print(f"{shape}: " + ", ".join(f"{n} {m:.2f} ms" for n, m in med.items())
          + f"; ratio {med['two look-ups'] / med['one look-up']:.2f}")
