"""``pnp train``: train (or fine-tune) a certified averaged denoiser.

Two families (``--family``):

* ``rk`` (default): the averaged ResNet of gradient steps (:class:`denoisers.AveragedResNet`);
  ``--channels``, ``--hidden``, ``--depth`` (blocks, default 12), ``--alpha-block``,
  ``--integrator``, ``--theta`` (default 1).
* ``ff``: the feed-forward 1-Lipschitz CNN (:class:`denoisers.LipschitzFFNet`); ``--features``
  (width, default 64; a separate flag from ``--channels`` because the widths that match in size
  differ: 64 x 5 convolutions ~ the rk default 32 x 12 blocks), ``--depth`` (convolutions,
  default 5), ``--theta`` (default 0.99: ``D = (1 - theta) I + theta N`` is theta-averaged).
  The network is blind: with ``--sigma-range`` it is trained over the range, not conditioned.

Flags of the other family are refused. Both take ``--activation``; ``--activation spline`` learns
a monotone 1-Lipschitz linear spline per channel (``--spline-knots``, ``--spline-range``,
``--spline-init``), regularised by ``--tv2-weight`` (see :mod:`denoisers.layers.spline`).
``ff`` only: ``--spline-slope-min -1`` widens the slopes to ``[-1, 1]`` (1-Lipschitz, not monotone:
enough for the feed-forward certificate, not for the Runge-Kutta blocks), and
``--spline-init absolute`` (``|x|``) switches it on by itself; both are refused for ``rk``.

Examples::

    pnp train --sigma 0.1 --out weights/my-s0.1.safetensors
    pnp train --sigma 0.1 --sigma-range 0.01:0.2 --data DIR1,DIR2 --out weights/cond.safetensors
    pnp train --sigma 0.06 --init rk-averaged-s25 --steps 500 --out weights/ft.safetensors
    pnp train --family ff --features 64 --depth 5 --sigma 0.1 --out weights/ff-s0.1.safetensors
    pnp train --sigma 0.1 --activation spline --tv2-weight 1e-5 --out weights/spline.safetensors
    pnp train --family ff --activation spline --spline-init absolute --sigma 0.1 --out weights/ff-abs.safetensors
    torchrun --nproc_per_node=2 -m pnp train --sigma 0.1 --out weights/ddp.safetensors
"""

from __future__ import annotations

import argparse
import math

from pnp.cli._common import positive_int as _positive_int

__all__ = ["add_parser", "run"]




def _check_outputs(out: str, resume: bool) -> None:
    """``--out`` and the files written beside it, before any work: a ``.safetensors`` path that is
    no folder, in a folder that exists or can be created (its nearest existing ancestor is a
    writable folder), and, unless ``--resume``, none of the outputs exists yet."""
    import os
    from pathlib import Path

    p = Path(out).expanduser()
    if p.suffix != ".safetensors":
        raise ValueError(f"--out {out!r} must end with .safetensors")
    if p.is_dir():
        raise IsADirectoryError(f"--out {out!r} is a directory")
    anc = p.parent if str(p.parent) else Path(".")
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise NotADirectoryError(f"--out {out!r}: {str(anc)!r} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out!r}: directory {str(anc)!r} is not writable")
    if not resume:
        for q in (p, p.with_suffix(".json"), p.with_suffix(".curve.png")):
            if q.exists():
                raise FileExistsError(f"--out {out!r}: {str(q)!r} exists (choose another path, or --resume)")


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
    p.add_argument("--init-as-is", action="store_true", default=None,
                   help="with --init trained at another level: keep its biases (default: start from the network "
                        "rescaled to --sigma, N(c x)/c with c = s_init/sigma, what the zoo serves at --sigma)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.state.safetensors")
    p.add_argument("--steps", type=_positive_int, default=2000, help="optimiser steps (default 2000)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="patches per step (default 16)")
    p.add_argument("--patch-size", type=_positive_int, default=40, help="patch side in pixels (default 40)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, cosine decay (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and patches (default 0)")
    p.add_argument("--validate-every", type=_positive_int, default=500,
                   help="validation PSNR every N steps, before freezing (default 500)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=100,
                   help="write the resumable state every N steps (default 100)")
    p.add_argument("--family", choices=("rk", "ff", "crr", "wcrr"), default=None,
                   help="rk: averaged gradient-step ResNet (default); ff: feed-forward 1-Lipschitz CNN; "
                        "crr / wcrr: convex / weakly convex ridge regulariser, one model for every noise level "
                        "(--sigma-range, default 2/255:55/255; --sigma is the validation level)")
    p.add_argument("--ridge-mode", choices=("deq-jfb", "unrolled", "deq-implicit"), default=None,
                   help="crr/wcrr: how the prox is differentiated (default deq-jfb, the best PSNR per CPU-hour "
                        "measured; see BENCHMARKS.md)")
    p.add_argument("--loss-crop", type=int, default=None,
                   help="crr/wcrr: border pixels of each patch left out of the loss (default 6)")
    p.add_argument("--sigma-weight-power", type=float, default=None,
                   help="crr/wcrr: weight each patch's squared error by (25/255 / sigma)^P (default 1; 0: plain MSE)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="crr/wcrr: stop after this many seconds (state and weights saved; resumable)")
    p.add_argument("--channels", type=int, default=None, help="rk: state channels (default 32)")
    p.add_argument("--hidden", type=int, default=None, help="rk: hidden channels per block (default 32)")
    p.add_argument("--features", type=int, default=None, help="ff: width of the hidden layers (default 64)")
    p.add_argument("--depth", type=int, default=None, help="rk: blocks (default 12); ff: convolutions (default 5)")
    p.add_argument("--pixel-unshuffle", type=int, default=None,
                   help="rk: run the blocks on r x r cells stacked as channels (space-to-depth; default 1)")
    p.add_argument("--alpha-block", type=float, default=None, help="rk: averagedness per block (default 0.98)")
    p.add_argument("--activation", default="relu", choices=("relu", "leaky_relu", "spline", "odd_spline"),
                   help="spline: learned per-channel monotone 1-Lipschitz linear splines; odd_spline: their "
                        "odd part, a soft-threshold-like profile (rk; default relu)")
    p.add_argument("--spline-knots", type=int, default=None, help="spline: odd number of knots (default 33)")
    p.add_argument("--spline-range", type=float, default=None, help="spline: knots on [-R, R] (default 1.0)")
    p.add_argument("--spline-init", default=None, choices=("relu", "identity", "zero", "clip", "absolute"),
                   help="spline: initial function (default relu); absolute (|x|, not monotone): "
                        "ff only, implies --spline-slope-min -1")
    p.add_argument("--spline-slope-min", type=float, default=None, choices=(0.0, -1.0),
                   help="ff spline: lower slope bound, 0 (monotone, default) or -1 (slopes in [-1, 1], "
                        "1-Lipschitz but not monotone; default -1 with --spline-init absolute)")
    p.add_argument("--tv2-weight", type=float, default=None,
                   help="spline: weight of the TV(2) penalty (total slope change of every spline) "
                        "added to the MSE (default 1e-4; no effect without splines)")
    p.add_argument("--integrator", default=None, choices=("euler", "heun", "rk4"), help="rk: (default euler)")
    p.add_argument("--theta", type=float, default=None,
                   help="final relaxation (1 - theta) I + theta N (default: rk 1, ff 0.99); with --init, "
                        "fine-tunes the network into that relaxation (theta = 0.5: firmly non-expansive)")
    p.add_argument("--unconstrained", action="store_true", default=None,
                   help="rk: no spectral constraint (a learned free step per block): an uncertified "
                        "baseline of the same architecture, to measure the price of the certificate")
    p.add_argument("--factors", type=int, default=None,
                   help="rk: each block's W is a multi-convolution of F stacked k x k convolutions, certified "
                        "from the composed kernel (default 1)")
    p.add_argument("--no-bias", action="store_true", default=None, help="rk: blocks without biases")
    p.add_argument("--anchor", action="store_true", default=None,
                   help="rk: blocks anchored to the input, z <- (1 - c_i) B_i(z) + c_i y with learned c_i")
    p.add_argument("--tied", action="store_true", default=None, help="rk: one block applied --depth times")
    p.add_argument("--teacher", default=None,
                   help="distillation: regress on this saved denoiser's outputs instead of the clean patches")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal only)")
    p.set_defaults(func=run)


def _or(value, default):
    return default if value is None else value


def _refuse(flags: dict, family: str) -> None:
    given = sorted(name for name, value in flags.items() if value is not None)
    if given:
        raise ValueError(f"{', '.join(given)} do(es) not apply to --family {family}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pnp.validate import check_noise_level, check_positive

    check_noise_level(args.sigma, name="--sigma", allow_zero=False)
    check_positive(args.lr, name="--lr")
    if args.sigma_range is not None:
        lo, hi = (check_noise_level(v, name="--sigma-range", allow_zero=False) for v in args.sigma_range)
        if not lo < hi:
            raise ValueError(f"--sigma-range must be LO:HI with LO < HI, got {lo:g}:{hi:g}")
    _check_outputs(args.out, args.resume)

    import denoisers
    from denoisers.models import AveragedConfig, LipschitzFFConfig
    from denoisers.train import TrainConfig, train
    from pnp.resolve import resolve_denoiser

    if args.family in ("crr", "wcrr"):
        _refuse({"--factors": args.factors, "--no-bias": args.no_bias, "--anchor": args.anchor, "--tied": args.tied,
                 "--teacher": args.teacher}, args.family)
        return _run_ridge(args)
    _refuse({"--ridge-mode": args.ridge_mode, "--time-budget": args.time_budget, "--loss-crop": args.loss_crop,
             "--sigma-weight-power": args.sigma_weight_power}, args.family or "rk")
    data = [d for d in args.data.split(",") if d] if args.data else None
    for d in data or []:
        if not Path(d).exists():
            raise FileNotFoundError(f"--data folder not found: {d}")
        if not Path(d).is_dir():
            raise NotADirectoryError(f"--data {d!r} is not a folder")
    rk_only = {"--channels": args.channels, "--hidden": args.hidden, "--alpha-block": args.alpha_block,
               "--integrator": args.integrator, "--pixel-unshuffle": args.pixel_unshuffle}
    ff_only = {"--features": args.features, "--spline-slope-min": getattr(args, "spline_slope_min", None)}
    rk_only["--unconstrained"] = args.unconstrained
    rk_only.update({"--factors": args.factors, "--no-bias": args.no_bias, "--anchor": args.anchor, "--tied": args.tied})
    if args.teacher is not None:
        if not Path(args.teacher).is_file():
            raise FileNotFoundError(f"--teacher file not found: {args.teacher}")
    init_net = None
    init_name = args.init
    if args.init:
        loaded = resolve_denoiser(args.init, argument="--init")
        scaled = loaded.denoiser if hasattr(loaded, "denoiser") else loaded
        inner = scaled.net if hasattr(scaled, "net") else scaled
        if not isinstance(inner, (denoisers.AveragedResNet, denoisers.LipschitzFFNet)):
            raise ValueError(f"--init {args.init} is not a single certified network (use a member name, not a family)")
        family = "ff" if isinstance(inner, denoisers.LipschitzFFNet) else "rk"
        if args.family is not None and args.family != family:
            raise ValueError(f"--family {args.family} does not match --init {args.init} (a {family} network)")
        init_net = inner
        arch = inner.config
        if args.theta is not None and args.theta != arch.theta:
            # fine-tune into a relaxed network (1 - theta) I + theta N: same weights, new theta
            import dataclasses

            arch = dataclasses.replace(arch, theta=args.theta)
            init_net = type(inner)(arch)
            init_net.load_state_dict(inner.state_dict())
        s_init = getattr(scaled, "train_sigma", None)
        if (family == "rk" and not args.init_as_is and args.sigma_range is None and s_init is not None
                and not math.isclose(s_init, args.sigma, rel_tol=1e-9)):
            try:
                init_net.conjugate_scale_(s_init / args.sigma)
                init_name = f"{args.init} rescaled to --sigma (biases x {args.sigma / s_init:.6g})"
                print(f"--init {args.init}: rescaled from {s_init * 255:.4g}/255 to {args.sigma * 255:.4g}/255 "
                      f"(biases x {args.sigma / s_init:.4g}: the zoo's rescaled network; --init-as-is keeps them)")
            except ValueError as err:
                print(f"--init {args.init}: not rescaled to --sigma ({err})")
    elif (args.family or "rk") == "rk":
        _refuse(ff_only, "rk")
        if args.spline_init == "absolute":
            raise ValueError(
                "--spline-init absolute needs --family ff: |x| is not monotone, and the Runge-Kutta "
                "gradient-step blocks need a monotone activation (spline slopes in [0, 1])"
            )
        arch = AveragedConfig(
            channels=_or(args.channels, 32), hidden=_or(args.hidden, 32), depth=_or(args.depth, 12),
            alpha_block=_or(args.alpha_block, 0.98), activation=args.activation,
            integrator=_or(args.integrator, "euler"), theta=_or(args.theta, 1.0),
            noise_conditional=args.sigma_range is not None, constrained=not args.unconstrained,
            pixel_unshuffle=_or(args.pixel_unshuffle, 1), factors=_or(args.factors, 1),
            bias=not args.no_bias, anchor=bool(args.anchor), tied=bool(args.tied),
            **{k: getattr(args, k) for k in ("spline_knots", "spline_range", "spline_init")
               if getattr(args, k) is not None},
        )
    else:
        _refuse(rk_only, "ff")
        # spline flags (--spline-knots, --spline-range, --spline-init) when the parser has them
        spline = {k: getattr(args, k) for k in ("spline_knots", "spline_range", "spline_init", "spline_slope_min")
                  if getattr(args, k, None) is not None}
        if spline.get("spline_init") == "absolute":  # |x| needs slopes in [-1, 1]
            spline.setdefault("spline_slope_min", -1.0)
        arch = LipschitzFFConfig(
            features=_or(args.features, 64), depth=_or(args.depth, 5), activation=args.activation,
            theta=_or(args.theta, 0.99), **spline,
        )
    cfg = TrainConfig(
        sigma=args.sigma, sigma_range=args.sigma_range, steps=args.steps, batch_size=args.batch_size,
        patch_size=args.patch_size, lr=args.lr, seed=args.seed, validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every,
        **({} if args.tv2_weight is None else {"tv2_weight": args.tv2_weight}),
        **({} if args.teacher is None else {"teacher": args.teacher}),
    )
    res = train(args.out, config=cfg, architecture=arch, data=data, init=init_net, init_name=init_name,
                resume=args.resume, progress=args.progress)
    print(f"saved {res.path}")
    print(f"certificate: Lipschitz <= {res.certificate.get('lipschitz_bound')}, alpha = {res.certificate.get('alpha')}")
    if res.val_psnr is not None:
        last = res.history.get("val_psnr") or []
        before = (f" (last value logged during training, before freezing: {last[-1]:.3f} dB at step "
                  f"{res.history['val_step'][-1]})") if last else ""
        print(f"validation PSNR after freezing (certified steps): {res.val_psnr:.3f} dB{before}")
    return 0


def _run_ridge(args: argparse.Namespace) -> int:
    """``--family crr|wcrr``: :func:`denoisers.ridge.train.train_ridge`; the resumable state lives in
    the folder ``OUT`` without its suffix plus ``.train/`` (``state.safetensors``, ``log.jsonl``)."""
    from pathlib import Path

    from denoisers.ridge import RidgeConfig
    from denoisers.ridge.train import RidgeTrainConfig, train_ridge
    from denoisers.train.data import load_image_folder

    _refuse({"--channels": args.channels, "--hidden": args.hidden, "--features": args.features,
             "--depth": args.depth, "--pixel-unshuffle": args.pixel_unshuffle, "--alpha-block": args.alpha_block,
             "--integrator": args.integrator, "--theta": args.theta, "--unconstrained": args.unconstrained,
             "--spline-init": args.spline_init, "--spline-slope-min": args.spline_slope_min,
             "--init-as-is": args.init_as_is}, args.family)
    if args.activation != "relu":
        raise ValueError(f"--activation does not apply to --family {args.family} (its profiles are splines)")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {args.out!r}")
    folder = out.with_suffix(".train")
    if (folder / "state.safetensors").exists() and not args.resume:
        raise FileExistsError(f"{folder / 'state.safetensors'} exists: pass --resume to continue it, or another --out")
    if out.exists() and not args.resume:
        raise FileExistsError(f"--out {out} exists; choose another path")
    images = desc = None
    if args.data:
        images, desc = [], args.data
        for d in (d for d in args.data.split(",") if d):
            if not Path(d).is_dir():
                raise FileNotFoundError(f"--data folder not found: {d}")
            images += load_image_folder(d)
    if args.loss_crop is not None and not (0 <= 2 * args.loss_crop < args.patch_size):
        raise ValueError(f"--loss-crop must be in [0, --patch-size / 2), got {args.loss_crop} for patches of {args.patch_size}")
    if args.sigma_weight_power is not None and not math.isfinite(args.sigma_weight_power):
        raise ValueError(f"--sigma-weight-power must be a finite number, got {args.sigma_weight_power}")
    sr = args.sigma_range or RidgeTrainConfig.sigma_range
    arch = RidgeConfig(kind=args.family, **({} if args.spline_knots is None else {"spline_knots": args.spline_knots}),
                       **({} if args.spline_range is None else {"spline_range": args.spline_range}))
    cfg = RidgeTrainConfig(
        mode=args.ridge_mode or "deq-jfb", steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size,
        sigma_range=sr, lr=args.lr, seed=args.seed, validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every, val_sigma=args.sigma,
        **({} if args.tv2_weight is None else {"tv2_weight": args.tv2_weight}),
        **({} if args.loss_crop is None else {"loss_crop": args.loss_crop}),
        **({} if args.sigma_weight_power is None else {"sigma_weight_power": args.sigma_weight_power}),
    )
    init = args.init
    if init is not None and not Path(init).exists():
        from denoisers.zoo import weights_dir

        cand = weights_dir() / f"{init}.safetensors"
        if not cand.is_file():
            raise FileNotFoundError(f"--init {init!r}: neither a file nor a shipped ridge model")
        init = str(cand)
    path = train_ridge(cfg, folder, architecture=arch, init=init, images=images, data_desc=desc,
                       time_budget_s=args.time_budget, final_path=out)
    from denoisers.ridge.train import load_ridge

    reg, meta = load_ridge(path)
    print(f"saved {path}")
    print(reg.certificate().summary())
    if meta.get("val_psnr") is not None:
        print(f"validation PSNR (last validation, {args.sigma * 255:.4g}/255): {meta['val_psnr']:.3f} dB")
    return 0
