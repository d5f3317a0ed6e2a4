"""``pnp train``: train (or fine-tune) a certified averaged denoiser.

Examples::

    pnp train --sigma 0.1 --out weights/my-s0.1.safetensors
    pnp train --sigma 0.1 --sigma-range 0.01:0.2 --data DIR1,DIR2 --out weights/cond.safetensors
    pnp train --sigma 0.06 --init rk-averaged-s25 --steps 500 --out weights/ft.safetensors
    torchrun --nproc_per_node=2 -m pnp train --sigma 0.1 --out weights/ddp.safetensors
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def _sigma_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sigma-range must be LO:HI, got {text!r}") from None
    return lo, hi


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a certified averaged denoiser",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sigma", type=float, required=True, help="noise level on [0,1] (e.g. 0.1 = 25.5/255)")
    p.add_argument("--sigma-range", type=_sigma_range, default=None, help="LO:HI: draw a level per patch (noise-conditional network)")
    p.add_argument("--data", default=None, help="image folders, comma separated (default: shared/data/train400, else scikit-image images)")
    p.add_argument("--out", required=True, help="output .safetensors (a .json, .curve.png and .state.safetensors are written beside it)")
    p.add_argument("--init", default=None, help="start from a zoo model or checkpoint (fine-tuning)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.state.safetensors")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validate-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--alpha-block", type=float, default=0.98)
    p.add_argument("--activation", default="relu", choices=("relu", "leaky_relu"))
    p.add_argument("--integrator", default="euler", choices=("euler", "heun", "rk4"))
    p.add_argument("--theta", type=float, default=1.0, help="final relaxation (1 - theta) I + theta N")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import denoisers
    from denoisers.models import AveragedConfig
    from denoisers.train import TrainConfig, train

    if not args.sigma > 0:
        raise ValueError(f"--sigma must be > 0, got {args.sigma}")
    data = [d for d in args.data.split(",") if d] if args.data else None
    for d in data or []:
        if not Path(d).exists():
            raise FileNotFoundError(f"--data folder not found: {d}")
    init_net = None
    if args.init:
        loaded = denoisers.load(args.init)
        inner = loaded.denoiser if hasattr(loaded, "denoiser") else loaded
        inner = inner.net if hasattr(inner, "net") else inner
        if not isinstance(inner, denoisers.AveragedResNet):
            raise ValueError(f"--init {args.init} is not a single averaged network (use a member name, not a family)")
        init_net = inner
        arch = inner.config
    else:
        arch = AveragedConfig(
            channels=args.channels, hidden=args.hidden, depth=args.depth, alpha_block=args.alpha_block,
            activation=args.activation, integrator=args.integrator, theta=args.theta,
            noise_conditional=args.sigma_range is not None,
        )
    cfg = TrainConfig(
        sigma=args.sigma, sigma_range=args.sigma_range, steps=args.steps, batch_size=args.batch_size,
        patch_size=args.patch_size, lr=args.lr, seed=args.seed, validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every,
    )
    res = train(args.out, config=cfg, architecture=arch, data=data, init=init_net, init_name=args.init,
                resume=args.resume, progress=args.progress)
    print(f"saved {res.path}")
    print(f"certificate: Lipschitz <= {res.certificate.get('lipschitz_bound')}, alpha = {res.certificate.get('alpha')}")
    if res.val_psnr is not None:
        print(f"validation PSNR: {res.val_psnr:.3f} dB")
    return 0
