"""``pnp certify WEIGHTS_OR_NAME``: print a denoiser's certificate and empirical lower bounds.

The certificate (Lipschitz bound, averagedness alpha, per-layer norm bounds) is computed from
upper bounds; the empirical checks search for evidence against it (Jacobian power iteration,
adversarial pairs, the averagedness inequality). Certified values must dominate the empirical ones.
Networks with learned spline activations also get a summary of their effective knots (slope
changes larger than 1e-3) per spline.

Ridge regularisers (``crr``, ``wcrr``, or their checkpoints) print their certified constants (``||W||``
from the composed filter's frequency response, spline slope bounds, ``Lip(grad R)``, the
weak-convexity modulus, ``sup lambda``, and what the prox is) and check them: Hessian power
iteration (``<= Lip(grad R)``), the smallest Hessian eigenvalue and the convexity inequality on
adversarial pairs (``<= rho``), and the prox's Lipschitz constant / firm non-expansiveness on
adversarial pairs.
"""

from __future__ import annotations

import argparse
import json
import time

from pnp.cli._outputs import OutputPlan

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "certify",
        help="print a denoiser's certificate and empirical Lipschitz/averagedness lower bounds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="WEIGHTS_OR_NAME", help="a zoo name (see denoisers.available()) or a .safetensors file")
    p.add_argument("--json", dest="json_out", default=None, help="write the results as JSON here (.json; default none)")
    p.add_argument("--sigma", type=float, default=25 / 255, help="noise level for the checks (default 25/255)")
    p.add_argument("--size", type=int, default=32, help="image size for the empirical checks (default 32)")
    p.add_argument("--steps", type=int, default=100, help="adversarial search steps (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the empirical searches (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file (default: refuse)")
    p.add_argument("--quiet", action="store_true", help="no progress line (shown only on a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.size < 8:
        raise ValueError(f"--size must be >= 8, got {args.size}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    from pnp.validate import check_positive

    check_positive(args.sigma, name="--sigma")
    plan = OutputPlan(force=args.force)
    if args.json_out:
        plan.add("--json", args.json_out, suffixes=(".json",))
    with plan:
        return _run(args, plan)


def _run(args: argparse.Namespace, plan: OutputPlan) -> int:
    import torch

    from denoisers.estimate import adversarial_averagedness, adversarial_lipschitz, jacobian_spectral_norm
    from denoisers.layers.spline import spline_report
    from pnp.resolve import resolve_denoiser

    from pnp.cli._common import progress_enabled
    from pnp.progress import ProgressLine

    line = ProgressLine("certify", total=4) if progress_enabled(getattr(args, "quiet", False)) else None
    t_start = time.perf_counter()

    def stage(k: int, what: str) -> None:
        if line is not None:
            line.message(f"certify stage {k}/4: {what} (elapsed {time.perf_counter() - t_start:.1f} s)")

    stage(1, "certificate from the weights")
    t0 = time.perf_counter()  # loading recomputes the certificate: time both
    # recompute, never trust a stored certificate
    model = resolve_denoiser(args.model, argument="WEIGHTS_OR_NAME", verify=True)
    if hasattr(model, "reg"):
        return _run_ridge(args, model, t0, plan)
    cert = getattr(model, "certificate", None)
    if cert is None:
        raise ValueError(f"WEIGHTS_OR_NAME {args.model!r} has no certificate to check")
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
    return _finish(args, plan, out, holds)


def _finish(args: argparse.Namespace, plan: OutputPlan, out: dict, holds: bool) -> int:
    """The verdict line, the JSON (when asked) and the exit code: 0 when every empirical lower bound
    stays below its certified upper bound, 1 otherwise."""
    print(f"consistent       : {'yes' if holds else 'NO: an empirical lower bound exceeds the certificate'}")
    if args.json_out:
        plan.stage("--json", lambda tmp: tmp.write_text(json.dumps(out, indent=2, default=str)))
        plan.commit()
    return 0 if holds else 1


def _x0(args: argparse.Namespace):
    import torch

    g = torch.Generator().manual_seed(args.seed)
    base = torch.rand(1, 1, args.size // 4, args.size // 4, generator=g)
    x0 = torch.nn.functional.interpolate(base, size=(args.size, args.size), mode="bilinear", align_corners=False)
    return x0 + args.sigma * torch.randn(x0.shape, generator=g)


def _run_ridge(args: argparse.Namespace, model, t0: float, plan) -> int:
    from denoisers.estimate import (
        adversarial_averagedness,
        adversarial_lipschitz,
        adversarial_weak_convexity,
        hessian_min_eigenvalue,
        hessian_spectral_norm,
    )
    from denoisers.ridge import ProxSearchSurrogate

    reg = model.reg.double()
    rc = reg.certificate()
    t_cert = time.perf_counter() - t0
    if args.size < reg.conv.size:
        raise ValueError(f"--size must be >= the filter size {reg.conv.size}, got {args.size}")
    x0 = _x0(args).double()
    hess = hessian_spectral_norm(reg, x0, args.sigma, iters=50, seed=args.seed)
    low = hessian_min_eigenvalue(reg, x0, args.sigma, shift=rc.lip_grad, iters=100, seed=args.seed)
    wc = adversarial_weak_convexity(reg, x0, args.sigma, steps=args.steps, lr=1e-2, seed=args.seed)
    surrogate = ProxSearchSurrogate(reg)
    lip = adversarial_lipschitz(surrogate, x0, args.sigma, steps=max(1, args.steps // 5), lr=1e-2, seed=args.seed)
    avg = None
    if rc.prox_alpha is not None:
        avg = adversarial_averagedness(surrogate, x0, rc.prox_alpha, args.sigma, steps=max(1, args.steps // 5),
                                       lr=1e-2, seed=args.seed)
    tol = 1e-6
    holds = (
        hess.value <= rc.lip_grad * (1 + tol)
        and -low.value <= rc.weak_convexity + tol * max(1.0, rc.lip_grad)
        and wc.value <= rc.weak_convexity + tol * max(1.0, rc.lip_grad)
        and lip.value <= rc.prox_lipschitz * (1 + 1e-4)
        and (avg is None or avg.value <= 1 + 1e-4)
    )
    den_cert = model.certificate
    out = {
        "model": str(args.model),
        "ridge_certificate": rc.to_dict(),
        "lipschitz_bound": den_cert.lipschitz_bound,
        "alpha": den_cert.alpha,
        "firmly_nonexpansive": den_cert.firmly_nonexpansive,
        "certificate_exact": den_cert.exact,
        "method": den_cert.method,
        "notes": den_cert.notes,
        "empirical_hessian_norm": hess.value,
        "empirical_min_hessian_eigenvalue": low.value,
        "empirical_weak_convexity": wc.value,
        "empirical_prox_lipschitz": lip.value,
        "empirical_averagedness_ratio": None if avg is None else avg.value,
        "empirical_checks_consistent": holds,
        "check_sigma": args.sigma,
        "check_size": args.size,
        "check_steps": args.steps,
        "certificate_seconds": t_cert,
        "parameters": int(sum(p.numel() for p in reg.parameters())),
        "metadata": {k: v for k, v in getattr(model, "metadata", {}).items() if k not in ("history", "certificate")},
    }
    print(f"model            : {args.model} ({out['parameters']} parameters)")
    print(rc.summary())
    print(f"as a denoiser    : Lipschitz <= {den_cert.lipschitz_bound:.6g}, alpha = {den_cert.alpha} ({den_cert.notes})")
    print(f"empirical (lower): Hessian norm {hess.value:.6g} (<= {rc.lip_grad:.6g}); smallest Hessian eigenvalue "
          f"{low.value:.6g} (>= -{rc.weak_convexity:.6g}); convexity inequality on pairs {wc.value:.6g} "
          f"(<= {rc.weak_convexity:.6g})")
    print(f"prox (lower)     : adversarial Lipschitz {lip.value:.6f} (<= {rc.prox_lipschitz:.6g})"
          + ("" if avg is None else f"; firm non-expansiveness ratio {avg.value:.6f} (<= 1)"))
    return _finish(args, plan, out, holds)
