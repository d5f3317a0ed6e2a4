"""Per-iteration overhead of our PnP-FBS loop against deepinv's PGD, side by side.

Same problem (a ``size x size`` grey image blurred circularly by ``kernel`` with Gaussian noise),
same operator (:class:`operators.FFTBlur`), same denoiser, same step and the same number of
iterations; within each repeat the three loops run one after the other:

* ``ours``: :meth:`pnp.PnPFBS.run` (records the per-image residual, time per iteration and the
  stop test every iteration; the solver is built outside the timed region);
* ``deepinv``: ``deepinv.optim.optim_builder("PGD", ...)`` with ``early_stop=False`` (whole
  ``model(y, physics)`` call timed, including its ``A^T y`` initialisation);
* ``bare``: the plain loop ``x = D(x - gamma A^T(Ax - y), sigma)`` (the floor both loops pay).

Reported numbers are medians over ``repeats`` of (wall time / iterations). Run::

    python -m benchmarks.overhead --size 256 --denoiser quadratic --iterations 50 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from typing import Any

import torch

__all__ = ["measure_overhead", "main"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_overhead(
    *,
    size: int = 256,
    denoiser: str = "quadratic",
    kernel: str = "gaussian:25:1.6",
    noise: float = 0.01,
    iterations: int = 50,
    repeats: int = 5,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Median seconds per iteration of ours / deepinv PGD / a bare loop, and their ratios."""
    import deepinv
    from deepinv.optim import optim_builder
    from deepinv.optim.data_fidelity import L2
    from deepinv.optim.prior import PnP

    import pnp
    from operators import FFTBlur, add_gaussian_noise, load_kernel

    if size < 8:
        raise ValueError(f"size must be >= 8, got {size!r}")
    if iterations < 1 or repeats < 1:
        raise ValueError(f"iterations and repeats must be >= 1, got {iterations!r}, {repeats!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, size, size, generator=g, dtype=dtype)
    k = load_kernel(kernel)
    physics = FFTBlur(k).to(dev)
    x = x.to(dev)
    y = add_gaussian_noise(physics.A(x), noise, seed=seed)
    opnorm = physics.opnorm(image_size=(size, size))
    probe = pnp.get_denoiser(denoiser)
    sigma, gamma = pnp.default_parameters(noise, denoiser=probe, opnorm=opnorm)

    ours_t: list[float] = []
    dinv_t: list[float] = []
    bare_t: list[float] = []
    max_diff = 0.0
    for _ in range(repeats):
        # ours
        den = pnp.get_denoiser(denoiser)
        solver = pnp.PnPFBS(physics, y, den, sigma=sigma, gamma=gamma, max_iter=iterations,
                            tol=1e-30)
        _sync(dev)
        t0 = time.perf_counter()
        res = solver.run()
        _sync(dev)
        ours_t.append((time.perf_counter() - t0) / iterations)
        # deepinv
        den = pnp.get_denoiser(denoiser)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = optim_builder(
                "PGD", prior=PnP(den), data_fidelity=L2(), max_iter=iterations,
                early_stop=False, params_algo={"stepsize": gamma, "g_param": sigma, "lambda": 1.0},
            )
            _sync(dev)
            t0 = time.perf_counter()
            with torch.no_grad():
                x_d = model(y, physics)
            _sync(dev)
        dinv_t.append((time.perf_counter() - t0) / iterations)
        # bare loop
        den = pnp.get_denoiser(denoiser)
        _sync(dev)
        t0 = time.perf_counter()
        with torch.no_grad():
            xb = physics.A_adjoint(y)
            for _ in range(iterations):
                xb = den(xb - gamma * physics.A_adjoint(physics.A(xb) - y), sigma)
        _sync(dev)
        bare_t.append((time.perf_counter() - t0) / iterations)
        max_diff = max(max_diff, float((res.x - x_d).norm() / x_d.norm()))

    ours, dinv, bare = (statistics.median(t) for t in (ours_t, dinv_t, bare_t))
    return {
        "benchmark": "fbs_overhead",
        "size": size,
        "denoiser": denoiser,
        "kernel": kernel,
        "noise": noise,
        "sigma": sigma,
        "gamma": gamma,
        "iterations": iterations,
        "repeats": repeats,
        "seed": seed,
        "ours_s_per_iter": ours,
        "deepinv_s_per_iter": dinv,
        "bare_s_per_iter": bare,
        "ratio_ours_over_deepinv": ours / dinv,
        "ours_overhead_over_bare_s": ours - bare,
        "deepinv_overhead_over_bare_s": dinv - bare,
        "ours_all": ours_t,
        "deepinv_all": dinv_t,
        "bare_all": bare_t,
        "max_rel_diff_ours_vs_deepinv": max_diff,
        "device": str(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "deepinv": deepinv.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--denoiser", default="quadratic")
    p.add_argument("--kernel", default="gaussian:25:1.6")
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--json", default=None, help="write the result dict as JSON")
    args = p.parse_args(argv)
    out = measure_overhead(size=args.size, denoiser=args.denoiser, kernel=args.kernel,
                           iterations=args.iterations, repeats=args.repeats, device=args.device)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
