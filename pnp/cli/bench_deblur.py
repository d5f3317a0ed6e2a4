"""``pnp bench deblur``: the deblurring benchmark; ``pnp bench calibrate``: tune the parameter rule.

Examples::

    pnp bench deblur --protocol levin10 --data set12 --noise 2.55/255 --solver fbs,hqs,admm \\
        --denoiser tv,wiener,rk-averaged --out runs/levin10-set12 --kernels 0,9 --max-images 2
    pnp bench calibrate --protocol levin10 --data train400 --max-images 3 --denoiser tv,wiener \\
        --solver fbs --out levin10-cal.toml

Denoisers: ``tv``, ``quadratic``, ``bm3d``, ``wiener``/``tikhonov`` (closed form), zoo names, a
checkpoint path, or ``py:MODULE:CALLABLE`` (the hook for an unconstrained network). Solvers:
``fbs``, ``hqs``, ``admm``, ``deepinv-pgd``. An interrupted run resumes when rerun with the same
``--out``. See :mod:`benchmarks.runner` and :mod:`benchmarks.protocols`.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from pnp.cli._common import DENOISER_HELP

__all__ = ["add_parser", "run", "run_calibrate"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated integers, got {text!r}") from None


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(t) for t in _names(text)]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated numbers, got {text!r}") from None


def _noise(text: str | None) -> list[float] | None:
    if text is None:
        return None
    from benchmarks.protocols import parse_noise
    from pnp.validate import check_noise_level

    levels = []
    for t in _names(text):
        try:
            nu = parse_noise(t)
        except ValueError as exc:
            raise ValueError(f"--noise {t!r}: {exc}") from None
        levels.append(check_noise_level(nu, name=f"--noise {t!r}"))
    if not levels:
        raise ValueError(f"--noise needs at least one level, got {text!r}")
    return levels


def _common(p: argparse.ArgumentParser, *, data_required: bool) -> None:
    p.add_argument("--protocol", default="levin10", help="shipped name (levin10, gauss25) or a .toml file")
    p.add_argument("--data", required=data_required, default=None,
                   help="image folder (a path, or a folder name under shared/data; default: the protocol's)")
    p.add_argument("--noise", default=None, help="noise levels, e.g. 0.01,7.65/255 (default: the protocol's)")
    p.add_argument("--denoiser", required=True,
                   help="comma-separated: " + DENOISER_HELP + ", or the closed-form wiener, tikhonov")
    p.add_argument("--solver", default="fbs", help="comma-separated: fbs,hqs,admm,deepinv-pgd,variational "
                   "(variational: the ridge priors crr/wcrr only; default fbs)")
    p.add_argument("--kernels", default=None, help="kernel indices into the protocol, e.g. 0,9 (default all)")
    p.add_argument("--max-images", type=_positive_int, default=None, help="first N images only")
    p.add_argument("--max-iter", type=_positive_int, default=None, help="override every iteration budget")
    p.add_argument("--workers", type=_positive_int, default=1, help="processes (default 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "deblur", help="deblurring benchmark (protocols levin10, gauss25; resumable)",
        description="Run PnP solvers and baselines on a deblurring protocol; write results.json, "
                    "results.csv, summary.md and plots to --out. Rerun to resume.",
    )
    _common(p, data_required=False)
    p.add_argument("--out", required=True, help="output directory (created; reused to resume)")
    p.add_argument("--save-images", choices=("none", "first", "all"), default="first",
                   help="restored PNGs to keep (default: first image and kernel, for the panels)")
    p.add_argument("--shard", default=None, help="K/N: run only images i with i %% N == K")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    p.set_defaults(func=run)

    c = subparsers.add_parser(
        "calibrate", help="grid-search a protocol's parameter rule on development images",
        description="Tune the rule (denoiser strength, step) per denoiser, solver and noise level by "
                    "mean PSNR on a development folder, and write a new protocol TOML.",
    )
    _common(c, data_required=True)
    c.set_defaults(max_images=3)
    c.add_argument("--factors", default=",".join(str(f) for f in (0.5, 0.7071, 1.0, 1.4142, 2.0)),
                   help="multipliers of the rule's scale (default 0.5,0.7071,1,1.4142,2)")
    c.add_argument("--gamma-factors", default="1.0", help="multipliers of the step (default 1.0)")
    c.add_argument("--name", default=None, help="name of the new protocol (default <protocol>-cal)")
    c.add_argument("--out", required=True, help="the calibrated protocol (.toml); scores next to it")
    c.add_argument("--force", action="store_true", help="overwrite --out")
    c.set_defaults(func=run_calibrate)


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like K/N, got {text!r}") from None
    return k, n


def run(args: argparse.Namespace) -> int:
    from benchmarks.report import psnr_table
    from benchmarks.runner import config_from_args, run_benchmark

    cfg = config_from_args(
        protocol=args.protocol, denoisers=_names(args.denoiser), solvers=_names(args.solver),
        data=args.data, noise=_noise(args.noise),
        kernels=None if args.kernels is None else _ints(args.kernels, "kernels"),
        max_images=args.max_images, max_iter=args.max_iter, workers=args.workers,
        device=args.device, save_images=args.save_images, shard=_shard(args.shard),
    )
    from benchmarks.runner import BenchmarkError
    from pnp.cli import CLIError

    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    try:
        records = run_benchmark(cfg, args.out, log=log, command="pnp " + shlex.join(sys.argv[1:]))
    except BenchmarkError as exc:  # every planned run failed: exit 2
        raise CLIError(str(exc)) from None
    print(psnr_table(records), end="")
    print(f"wrote {args.out}/results.json, results.csv, summary.md, plots/")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.calibrate import calibrate, write_calibrated

    from pnp.cli._outputs import OutputPlan

    out = Path(args.out)
    plan = OutputPlan(force=args.force)  # both files checked before the (long) calibration
    plan.add("--out", out, suffixes=(".toml",))
    plan.add("--out (scores beside it)", out.with_suffix(".scores.json"))
    protocol, scores = calibrate(
        args.protocol, data=args.data, denoisers=tuple(_names(args.denoiser)),
        solvers=tuple(_names(args.solver)),
        kernels=None if args.kernels is None else tuple(_ints(args.kernels, "kernels")),
        noise_levels=None if args.noise is None else tuple(_noise(args.noise)),
        max_images=args.max_images, max_iter=args.max_iter,
        factors=tuple(_floats(args.factors, "factors")),
        gamma_factors=tuple(_floats(args.gamma_factors, "gamma-factors")),
        name=args.name, device=args.device, workers=args.workers,
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )
    path, spath = write_calibrated(protocol, scores, out, command="pnp " + shlex.join(sys.argv[1:]),
                                   force=args.force)
    print(f"wrote {path} (protocol {protocol.name!r}) and {spath}")
    return 0
