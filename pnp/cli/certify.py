"""``pnp certify WEIGHTS_OR_NAME``: print a denoiser's certificate and empirical lower bounds.

The certificate (Lipschitz bound, averagedness alpha, per-layer norm bounds) is computed from
upper bounds; the empirical checks search for evidence against it (Jacobian power iteration,
adversarial pairs, the averagedness inequality). Certified values must dominate the empirical ones.
Networks with learned spline activations also get a summary of their effective knots (slope
changes larger than 1e-3) per spline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "certify",
        help="print a denoiser's certificate and empirical Lipschitz/averagedness lower bounds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="WEIGHTS_OR_NAME", help="a zoo name (see denoisers.available()) or a .safetensors file")
    p.add_argument("--json", dest="json_out", default=None, help="write the results as JSON here")
    p.add_argument("--sigma", type=float, default=25 / 255, help="noise level for the checks (default 25/255)")
    p.add_argument("--size", type=int, default=32, help="image size for the empirical checks (default 32)")
    p.add_argument("--steps", type=int, default=100, help="adversarial search steps (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("--quiet", action="store_true", help="no progress line (shown only on a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import denoisers
    from denoisers.estimate import adversarial_averagedness, adversarial_lipschitz, jacobian_spectral_norm
    from denoisers.layers.spline import spline_report

    if args.size < 8:
        raise ValueError(f"--size must be >= 8, got {args.size}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if not args.sigma > 0:
        raise ValueError(f"--sigma must be > 0, got {args.sigma}")
    if args.json_out and Path(args.json_out).exists() and not args.force:
        raise FileExistsError(f"--json {args.json_out} exists; pass --force to overwrite")
    from pnp.cli._common import progress_enabled
    from pnp.progress import ProgressLine

    line = ProgressLine("certify", total=4) if progress_enabled(getattr(args, "quiet", False)) else None
    t_start = time.perf_counter()

    def stage(k: int, what: str) -> None:
        if line is not None:
            line.message(f"certify stage {k}/4: {what} (elapsed {time.perf_counter() - t_start:.1f} s)")

    stage(1, "certificate from the weights")
    t0 = time.perf_counter()  # loading recomputes the certificate: time both
    model = denoisers.load(args.model, verify=True)  # recompute, never trust a stored certificate
    cert = model.certificate
    t_cert = time.perf_counter() - t0
    g = torch.Generator().manual_seed(args.seed)
    # start the searches near natural-image-like inputs: smooth random field plus noise
    base = torch.rand(1, 1, args.size // 4, args.size // 4, generator=g)
    x0 = torch.nn.functional.interpolate(base, size=(args.size, args.size), mode="bilinear", align_corners=False)
    x0 = x0 + args.sigma * torch.randn(x0.shape, generator=g)
    try:
        stage(2, "Jacobian power iteration")
        jac = jacobian_spectral_norm(model, x0, args.sigma, iters=30, seed=args.seed)
        stage(3, f"adversarial pair search ({args.steps} steps)")
        lip = adversarial_lipschitz(model, x0, args.sigma, steps=args.steps, lr=1e-2, seed=args.seed)
        empirical_lip = max(jac.value, lip.value)
        avg = None
        if cert.alpha is not None:
            stage(4, f"averagedness search ({args.steps} steps)")
            avg = adversarial_averagedness(model, x0, cert.alpha, args.sigma, steps=args.steps, lr=1e-2, seed=args.seed)
    finally:
        if line is not None:
            line.close()
    holds = empirical_lip <= cert.lipschitz_bound * (1 + 1e-4) and (avg is None or avg.value <= 1 + 1e-4)
    out = {
        "model": str(args.model),
        "lipschitz_bound": cert.lipschitz_bound,
        "alpha": cert.alpha,
        "firmly_nonexpansive": cert.firmly_nonexpansive,
        "certificate_exact": cert.exact,
        "method": cert.method,
        "notes": cert.notes,
        "layers": [layer.to_dict() for layer in cert.layers],
        "empirical_lipschitz": empirical_lip,
        "empirical_jacobian_norm": jac.value,
        "empirical_adversarial_lipschitz": lip.value,
        "empirical_averagedness_ratio": None if avg is None else avg.value,
        "empirical_checks_consistent": holds,
        "check_sigma": args.sigma,
        "check_size": args.size,
        "check_steps": args.steps,
        "certificate_seconds": t_cert,
        "metadata": {k: v for k, v in getattr(model, "metadata", {}).items() if k != "history"},
    }
    splines = spline_report(model)
    if splines:
        out["splines"] = splines
    print(f"model            : {args.model}")
    print(f"certified        : Lipschitz <= {cert.lipschitz_bound:.6g}, alpha = {cert.alpha}")
    print(f"how              : {cert.method}")
    print(f"layers           : {len(cert.layers)} (max norm bound {max((l.norm_bound for l in cert.layers), default=0):.4g})")
    print(f"empirical (lower): Jacobian norm {jac.value:.6f}, adversarial pair {lip.value:.6f}")
    if avg is not None:
        print(f"averagedness     : worst ratio found {avg.value:.6f} (<= 1 means alpha = {cert.alpha:.6g} holds)")
    if splines:
        eff = [k for entry in splines for k in entry["effective_knots"]]
        print(f"splines          : {len(splines)} activations, {len(eff)} channels, effective knots "
              f"mean {sum(eff) / len(eff):.2f} (min {min(eff)}, max {max(eff)})")
    print(f"consistent       : {'yes' if holds else 'NO: an empirical lower bound exceeds the certificate'}")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2, default=str))
    return 0 if holds else 1
