"""Training ridge regularisers as denoisers, one model for a range of noise levels.

The loss is the weighted MSE between the clean patch and the denoised one,
``sum_b (sigma_ref / sigma_b)^p mean((D(y_b) - x_b)^2)`` (``sigma_ref = 25/255``, ``p =
sigma_weight_power``, default 1: noisier patches would otherwise dominate; ``p = 0`` is the plain MSE), plus ``tv2_weight`` times the TV(2) penalty of the splines. The mean leaves out
a band of ``loss_crop`` pixels at each patch border (default 6, half the composed 13x13 filter): ``W``
keeps valid windows only, so pixels near a border lie in fewer windows and are regularised less;
in a 40x40 patch that band is half the pixels, against 9 % of a 256x256 image, and fitting it
drove ``lambda(sigma)`` up until full-size images were over-smoothed (BENCHMARKS.md, issue 14). The denoiser ``D``
is trained in one of three ways (``mode``):

* ``"unrolled"``: ``t`` iterations of the accelerated prox solver from ``y``, differentiated
  through (the *t-step* denoiser);
* ``"deq-jfb"``: the prox solved to ``deq_tol`` without autograd, then one differentiable gradient
  step of the prox objective from that point (Jacobian-free backpropagation: the inverse Jacobian
  ``(I + lambda H)^{-1}`` of the implicit function is replaced by the step size);
* ``"deq-implicit"``: the prox solved to ``deq_tol``; the exact implicit gradient
  ``d loss / d theta = -v^T d(lambda grad R(x*; theta)) / d theta`` with ``(I + lambda H) v = d loss / d x*``
  solved by conjugate gradients on Hessian-vector products (``cg_iters``).

Patches are sampled statelessly per step (:class:`denoisers.train.data.PatchSampler`), so a resumed
run draws what an uninterrupted run would. The state (model, Adam, step, history) is written
atomically every ``checkpoint_every`` steps to ``out/state.safetensors``; a run restarted with the
same config resumes from it. The final weights go to ``out/<kind>.safetensors`` with their
certificate (:func:`save_ridge`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from denoisers.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from denoisers.layers.spline import project_splines_
from denoisers.ridge.model import RIDGE_BOUNDARIES, RidgeCertificate, RidgeConfig, RidgeRegularizer
from denoisers.ridge.prox import RidgeDenoiser, ridge_prox

__all__ = ["RIDGE_MODES", "RidgeTrainConfig", "export_state", "load_ridge", "save_ridge", "train_ridge", "RIDGE_KIND"]

RIDGE_KIND = "ridge-regularizer"
STATE_KIND = "ridge-train-state"
RIDGE_MODES = ("unrolled", "deq-jfb", "deq-implicit")
SIGMA_REF = 25.0 / 255
# training-config fields added after states were written, with the value those states were trained with
_LEGACY_FIELDS = {"loss_crop": 0, "sigma_weight_power": 1.0, "scalar_lr_factor": 5.0}


@dataclass(frozen=True)
class RidgeTrainConfig:
    """Everything that defines a ridge training run (serialised into its checkpoints)."""

    mode: str = "deq-jfb"
    steps: int = 4000
    batch_size: int = 16
    patch_size: int = 40
    sigma_range: tuple[float, float] = (2.0 / 255, 55.0 / 255)
    lr: float = 2e-3
    lr_final_fraction: float = 0.05
    unrolled_steps: int = 15
    deq_tol: float = 2e-4
    deq_max_iter: int = 300
    cg_iters: int = 10
    tv2_weight: float = 1e-5
    loss_crop: int = 6
    sigma_weight_power: float = 1.0
    scalar_lr_factor: float = 5.0
    seed: int = 0
    validate_every: int = 250
    checkpoint_every: int = 50
    val_images: int = 3
    val_sigma: float = 25.0 / 255

    def __post_init__(self) -> None:
        if self.mode not in RIDGE_MODES:
            raise ValueError(f"mode must be one of {RIDGE_MODES}, got {self.mode!r}")
        lo, hi = self.sigma_range
        object.__setattr__(self, "sigma_range", (float(lo), float(hi)))
        if not (0 < lo <= hi):
            raise ValueError(f"sigma_range must satisfy 0 < lo <= hi, got {self.sigma_range!r}")
        for name in ("steps", "batch_size", "patch_size", "unrolled_steps", "deq_max_iter", "cg_iters",
                     "validate_every", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if isinstance(self.loss_crop, bool) or not isinstance(self.loss_crop, int) or not (0 <= 2 * self.loss_crop < self.patch_size):
            raise ValueError(f"loss_crop must be an integer in [0, patch_size / 2), got {self.loss_crop!r}")
        if isinstance(self.sigma_weight_power, bool) or not isinstance(self.sigma_weight_power, (int, float)) \
                or not math.isfinite(self.sigma_weight_power):
            raise ValueError(f"sigma_weight_power must be a finite number, got {self.sigma_weight_power!r}")
        object.__setattr__(self, "sigma_weight_power", float(self.sigma_weight_power))
        if isinstance(self.scalar_lr_factor, bool) or not isinstance(self.scalar_lr_factor, (int, float)) \
                or not (self.scalar_lr_factor > 0 and math.isfinite(self.scalar_lr_factor)):
            raise ValueError(f"scalar_lr_factor must be a finite number > 0, got {self.scalar_lr_factor!r}")
        object.__setattr__(self, "scalar_lr_factor", float(self.scalar_lr_factor))
        if not (self.tv2_weight >= 0 and math.isfinite(self.tv2_weight)):
            raise ValueError(f"tv2_weight must be a finite number >= 0, got {self.tv2_weight!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sigma_range"] = list(self.sigma_range)
        return d


# ------------------------------------------------------------------------------------------ I/O
def save_ridge(reg: RidgeRegularizer, path: str | Path, *, metadata: dict[str, Any] | None = None) -> RidgeCertificate:
    """Write the weights with their config and certificate (safetensors, atomic)."""
    cert = reg.certificate()
    meta = {
        "kind": RIDGE_KIND,
        "config": reg.config.to_dict(),
        "certificate": cert.to_dict(),
        **(metadata or {}),
    }
    save_checkpoint(path, dict(reg.state_dict()), meta)
    return cert


def load_ridge(path: str | Path, *, device: Any = None) -> tuple[RidgeRegularizer, dict[str, Any]]:
    """Load a ridge regulariser written by :func:`save_ridge`; the certificate is recomputed from the
    weights and must equal the stored one (``CheckpointError`` otherwise)."""
    tensors, meta = load_checkpoint(path, kind=RIDGE_KIND)
    try:
        cfg = RidgeConfig.from_dict(meta.get("config"))
        reg = RidgeRegularizer(cfg)
        reg.load_state_dict(tensors, strict=True)
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not match the stored ridge config ({exc.__class__.__name__}: {exc})") from None
    if device is not None:
        reg = reg.to(device)
    cert = reg.certificate()
    stored = meta.get("certificate")
    try:
        stored_cert = RidgeCertificate.from_dict(stored)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt stored certificate ({exc})") from None
    # the kernel is composed in float32, so a CPU with other vector instructions recomputes the norm
    # bound ~1e-7 apart; prox_lipschitz = 1 / (1 - lambda rho) amplifies a relative change of rho by
    # (prox_lipschitz - 1), hence its scaled tolerance (a tampered weight moves these by far more)
    for name in ("w_norm_bound", "lip_grad", "weak_convexity", "lambda_max", "prox_lipschitz"):
        a, b = getattr(cert, name), getattr(stored_cert, name)
        rel = 1e-6 * (max(1.0, abs(b)) if name == "prox_lipschitz" and math.isfinite(b) else 1.0)
        if not (math.isclose(a, b, rel_tol=rel, abs_tol=1e-9) or (math.isinf(a) and math.isinf(b))):
            raise CheckpointError(f"{path}: stored certificate {name}={b!r} differs from the recomputed {a!r} (tampered weights?)")
    return reg, meta


# ------------------------------------------------------------------------------------- training
def _lr_factor(cfg: RidgeTrainConfig, step: int) -> float:
    warm = min(50, cfg.steps // 20)
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    f = cfg.lr_final_fraction
    return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _param_groups(reg: RidgeRegularizer, lr: float, scalar_factor: float = 5.0) -> list[dict[str, Any]]:
    conv = list(reg.conv.parameters())
    splines = [p for s in reg.splines() for p in s.parameters()]
    scalars = reg.scalar_parameters()
    return [
        {"params": conv, "lr": lr, "base": lr},
        {"params": splines, "lr": lr * 0.5, "base": lr * 0.5},
        {"params": scalars, "lr": lr * scalar_factor, "base": lr * scalar_factor},
    ]


def sigma_weights(sigma: torch.Tensor, power: float) -> torch.Tensor:
    """The loss weight of each patch, ``(SIGMA_REF / sigma)^power`` (``SIGMA_REF = 25/255``)."""
    return (SIGMA_REF / sigma) ** power


def _unrolled(reg: RidgeRegularizer, y: torch.Tensor, sigma: torch.Tensor, t: int) -> torch.Tensor:
    """``t`` differentiable accelerated-gradient steps of the prox objective from ``y``."""
    kernel = reg.kernel()
    lip, rho = reg.step_constants()
    lam = reg.lambda_of(sigma).view(-1, 1, 1, 1)
    L = 1.0 + lam.detach() * lip
    m = (1.0 - lam.detach() * rho).clamp_min(1e-6)
    beta = (L.sqrt() - m.sqrt()) / (L.sqrt() + m.sqrt())
    x_prev = y
    z = y
    x = y
    for _ in range(t):
        x = z - (z - y + lam * reg.grad(z, sigma, kernel=kernel)) / L
        z = x + beta * (x - x_prev)
        x_prev = x
    return x


def _deq(reg: RidgeRegularizer, y: torch.Tensor, sigma: torch.Tensor, cfg: RidgeTrainConfig, clean: torch.Tensor,
         weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Returns ``(output, surrogate loss whose gradient is the training gradient, inner iterations)``."""
    lip, rho = reg.step_constants()
    with torch.no_grad():
        xs, info = ridge_prox(reg, y, sigma, tol=cfg.deq_tol, max_iter=cfg.deq_max_iter, constants=(lip, rho))
    kernel = reg.kernel()
    lam = reg.lambda_of(sigma).view(-1, 1, 1, 1)
    if cfg.mode == "deq-jfb":
        L = 1.0 + lam.detach() * lip
        x = xs - (xs - y + lam * reg.grad(xs, sigma, kernel=kernel)) / L
        return x, _loss(x, clean, weights, cfg.loss_crop), info.iterations
    # implicit: (I + lambda H) v = dloss/dx*, then loss gradient = -v^T d(lambda grad R)/dtheta
    xv = xs.detach().requires_grad_(True)
    loss_val = _loss(xv, clean, weights, cfg.loss_crop)
    (r,) = torch.autograd.grad(loss_val, xv)
    lam_d = lam.detach()
    xh = xs.detach().requires_grad_(True)
    with torch.enable_grad():
        gR = reg.grad(xh, sigma, kernel=kernel.detach())

    def op(v: torch.Tensor) -> torch.Tensor:
        (hv,) = torch.autograd.grad(gR, xh, v, retain_graph=True)
        return v + lam_d * hv

    v = torch.zeros_like(r)
    res = r.clone()
    p = res.clone()
    rs = (res * res).sum()
    for _ in range(cfg.cg_iters):
        ap = op(p)
        a = rs / (p * ap).sum().clamp_min(1e-30)
        v = v + a * p
        res = res - a * ap
        rs_new = (res * res).sum()
        if rs_new.sqrt() < 1e-6 * r.norm():
            break
        p = res + (rs_new / rs) * p
        rs = rs_new
    surrogate = -(v.detach() * (lam * reg.grad(xs.detach(), sigma, kernel=kernel))).sum()
    return xs.detach(), surrogate + loss_val.detach() - surrogate.detach(), info.iterations


def _loss(x: torch.Tensor, clean: torch.Tensor, weights: torch.Tensor, crop: int = 0) -> torch.Tensor:
    if crop:
        x = x[..., crop:-crop, crop:-crop]
        clean = clean[..., crop:-crop, crop:-crop]
    per = (x - clean).square().flatten(1).mean(1)
    return (weights * per).mean()


def _validate(reg: RidgeRegularizer, images: list[torch.Tensor], sigma: float) -> float:
    from denoisers.train.trainer import validate

    den = RidgeDenoiser(reg, tol=1e-4, max_iter=2000)
    return validate(den, images, sigma)


def train_ridge(
    config: RidgeTrainConfig,
    out: str | Path,
    *,
    architecture: RidgeConfig | None = None,
    init: str | Path | None = None,
    images: list[torch.Tensor] | None = None,
    val_images: list[torch.Tensor] | None = None,
    data_desc: str | None = None,
    stop_after: int | None = None,
    time_budget_s: float | None = None,
    final_path: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train (or resume) a ridge regulariser; returns the path of the final weights.

    ``out`` is a folder: ``state.safetensors`` (resumable state, atomic), ``log.jsonl`` (one JSON
    line per logged step) and, at the end, ``<kind>.safetensors``. ``init`` starts from existing
    weights (fine-tuning). ``stop_after`` ends the call after that step (the state is saved), for
    budgeted runs; ``time_budget_s`` ends it after the first step past that many seconds (state
    and weights saved), for runs compared at equal wall-clock budget. ``final_path`` replaces
    ``out/<kind>.safetensors`` as the place of the final weights.
    """
    from denoisers.train.data import PatchSampler, default_training_images
    from denoisers.train.trainer import _restore, _state_tensors, validation_images

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    state_path = out / "state.safetensors"
    data_desc = data_desc or "given"
    if images is None:
        images, data_desc = default_training_images()
    if val_images is None:
        val_images, _ = validation_images(config.val_images)
    sampler = PatchSampler(images, patch_size=config.patch_size, batch_size=config.batch_size,
                           sigma_range=config.sigma_range, seed=config.seed)
    history: dict[str, list] = {"step": [], "loss": [], "inner": [], "val_step": [], "val_psnr": [], "seconds": []}
    start = 0
    init_desc = str(init) if init is not None else None
    if state_path.exists():
        tensors, meta = load_checkpoint(state_path, kind=STATE_KIND)
        stored = meta.get("train_config")
        if isinstance(stored, dict):  # fields added later: the value every older run used
            stored = {**_LEGACY_FIELDS, **stored}
        if stored != json.loads(json.dumps(config.to_dict())):
            raise CheckpointError(f"{state_path}: written by another training config; use another --out folder")
        architecture = RidgeConfig.from_dict(meta["architecture"])
        reg = RidgeRegularizer(architecture)
        opt = torch.optim.Adam(_param_groups(reg, config.lr, config.scalar_lr_factor))
        _restore(reg, opt, tensors)
        start = int(meta["step"])
        history = meta.get("history", history)
        init_desc = meta.get("init", init_desc)
        say(f"resumed from {state_path} at step {start}")
    else:
        if init is not None:
            reg, _ = load_ridge(init)
            architecture = reg.config
        else:
            architecture = architecture or RidgeConfig()
            reg = RidgeRegularizer(architecture)
        opt = torch.optim.Adam(_param_groups(reg, config.lr, config.scalar_lr_factor))

    def save_state(step: int) -> None:
        tensors = _state_tensors(reg, opt)
        meta = {"kind": STATE_KIND, "step": step, "train_config": config.to_dict(),
                "architecture": architecture.to_dict(), "history": history, "data": data_desc,
                "init": init_desc}
        save_checkpoint(state_path, tensors, meta)

    end = config.steps if stop_after is None else min(config.steps, stop_after)
    t0 = time.time()
    logf = open(out / "log.jsonl", "a")
    try:
        for step in range(start, end):
            fac = _lr_factor(config, step)
            for g in opt.param_groups:
                g["lr"] = g["base"] * fac
            clean, noisy, sigma = sampler.sample(step)
            weights = sigma_weights(sigma, config.sigma_weight_power)
            opt.zero_grad(set_to_none=True)
            if config.mode == "unrolled":
                x = _unrolled(reg, noisy, sigma, config.unrolled_steps)
                loss = _loss(x, clean, weights, config.loss_crop)
                inner = config.unrolled_steps
                total = loss
            else:
                x, loss, inner = _deq(reg, noisy, sigma, config, clean, weights)
                total = loss
            if config.tv2_weight > 0:
                total = total + config.tv2_weight * reg.tv2()
            total.backward()
            opt.step()
            project_splines_(reg)
            lv = float(_loss(x.detach(), clean, weights, config.loss_crop))
            history["step"].append(step + 1)
            history["loss"].append(lv)
            history["inner"].append(inner)
            history["seconds"].append(time.time() - t0)
            rec = {"step": step + 1, "loss": lv, "inner": inner, "seconds": round(time.time() - t0, 2)}
            if (step + 1) % config.validate_every == 0 or step + 1 == config.steps:
                if val_images:
                    psnr = _validate(reg, val_images, config.val_sigma)
                    history["val_step"].append(step + 1)
                    history["val_psnr"].append(psnr)
                    rec["val_psnr"] = psnr
                    say(f"step {step + 1}: val PSNR {psnr:.3f} dB at sigma {config.val_sigma * 255:.4g}/255")
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            if (step + 1) % 10 == 0:
                say(f"step {step + 1}/{config.steps} loss {lv:.3e} inner {inner} ({time.time() - t0:.0f} s)")
            out_of_time = time_budget_s is not None and time.time() - t0 >= time_budget_s
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == end or out_of_time:
                save_state(step + 1)
            if out_of_time:
                end = step + 1
                say(f"time budget of {time_budget_s:.0f} s reached at step {end}")
                break
    finally:
        logf.close()
    final = Path(final_path) if final_path is not None else out / f"{architecture.kind}.safetensors"
    if end >= config.steps or stop_after is not None or time_budget_s is not None:
        save_ridge(reg, final, metadata={"train_config": config.to_dict(), "steps": end, "data": data_desc,
                                          "val_psnr": history["val_psnr"][-1] if history["val_psnr"] else None})
    return final


def export_state(state_path: str | Path, out: str | Path, *, lineage: str | None = None,
                 boundary: str | None = None) -> RidgeCertificate:
    """Write the weights of a training state (``state.safetensors``) as a ridge checkpoint with its
    certificate, plus a JSON summary next to it (``out`` with suffix ``.json``): the step reached,
    the training config, the validation history and the certificate. Lets a run stopped by a time
    budget or by hand be shipped, and resumed later from the same state. ``lineage`` (free text: the
    runs this one was fine-tuned from) is stored with the weights and in the summary; the state's
    ``init`` (the weights it started from) is kept too. ``boundary`` (``"valid"``, ``"reflect"`` or ``"circular"``)
    replaces the architecture's boundary handling, same weights."""
    tensors, meta = load_checkpoint(state_path, kind=STATE_KIND)
    reg = RidgeRegularizer(RidgeConfig.from_dict(meta["architecture"]))
    reg.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    if boundary is not None:
        reg = reg.with_boundary(boundary)
    hist = meta.get("history", {})
    summary = {
        "kind": reg.kind,
        "steps": meta["step"],
        "train_config": meta["train_config"],
        "data": meta.get("data"),
        "noise_levels": [reg.config.sigma_min, reg.config.sigma_max],
        "training_seconds": hist.get("seconds", [None])[-1] if hist.get("seconds") else None,
        "validation": {"step": hist.get("val_step", []), "psnr": hist.get("val_psnr", []),
                       "sigma": meta["train_config"].get("val_sigma")},
        "parameters": int(sum(p.numel() for p in reg.parameters())),
        "init": meta.get("init"),
        "lineage": lineage,
    }
    cert = save_ridge(reg, out, metadata={k: summary[k] for k in ("steps", "train_config", "data", "noise_levels",
                                                                   "init", "lineage")})
    from denoisers.checkpoint import atomic_write_bytes

    summary["certificate"] = cert.to_dict()
    atomic_write_bytes(Path(out).with_suffix(".json"), (json.dumps(summary, indent=1) + "\n").encode())
    return cert


def main(argv: list[str] | None = None) -> int:
    """``python -m denoisers.ridge.train --kind crr|wcrr --out DIR [...]`` (``pnp train --family crr|wcrr``
    is the same with the command line's conventions)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m denoisers.ridge.train", description="train a CRR / WCRR ridge regulariser")
    ap.add_argument("--kind", choices=("crr", "wcrr"), default="crr")
    ap.add_argument("--out", required=True, help="output folder (state, log, final weights)")
    ap.add_argument("--mode", choices=RIDGE_MODES, default="deq-jfb")
    ap.add_argument("--steps", type=int, default=RidgeTrainConfig.steps)
    ap.add_argument("--batch-size", type=int, default=RidgeTrainConfig.batch_size)
    ap.add_argument("--patch-size", type=int, default=RidgeTrainConfig.patch_size)
    ap.add_argument("--lr", type=float, default=RidgeTrainConfig.lr)
    ap.add_argument("--loss-crop", type=int, default=RidgeTrainConfig.loss_crop,
                    help="leave this many border pixels of each patch out of the loss")
    ap.add_argument("--sigma-range", default=None, metavar="LO:HI",
                    help="training noise levels, in /255 (default %g:%g)" % tuple(v * 255 for v in RidgeTrainConfig.sigma_range))
    ap.add_argument("--sigma-weight-power", type=float, default=RidgeTrainConfig.sigma_weight_power,
                    help="weight each patch's squared error by (25/255 / sigma)^P (0: plain MSE)")
    ap.add_argument("--scalar-lr-factor", type=float, default=RidgeTrainConfig.scalar_lr_factor,
                    help="learning rate of the functions of sigma (lambda, mu, per-filter) as a multiple of --lr")
    ap.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds (state saved)")
    ap.add_argument("--init", default=None, help="start from these ridge weights")
    ap.add_argument("--spline-grid", default=None, metavar="KNOTS:RANGE",
                    help="with --init: resample its splines on this grid first (same function when the spacing "
                         "is kept and the grid only widens; see RidgeRegularizer.with_spline_grid)")
    ap.add_argument("--validate-every", type=int, default=RidgeTrainConfig.validate_every)
    ap.add_argument("--export-state", default=None, metavar="STATE",
                    help="only write the weights of this training state to --out (a .safetensors file)")
    ap.add_argument("--lineage", default=None, help="with --export-state: free text recording the runs it continues")
    ap.add_argument("--boundary", choices=RIDGE_BOUNDARIES, default=None,
                    help="how W meets the image border: valid (windows inside the image), reflect (R(P x), P the "
                         "reflection by half the filter size; crr only) or circular (periodic convolutions, no "
                         "factor in the certificate). New runs default to valid; with "
                         "--export-state it replaces the state's setting")
    ap.add_argument("--channel-conditioning", action="store_true",
                    help="per-filter weights and widths as functions of sigma (RidgeConfig.channel_conditioning); "
                         "with --init they are added at zero, so training starts from the same model")
    ap.add_argument("--wcrr-lambda-max", type=float, default=0.5,
                    help="with --kind wcrr and a crr --init: the crr becomes the wcrr with f- = 0 "
                         "(RidgeRegularizer.as_wcrr), its lambda(sigma) scaled to this supremum (default 0.5)")
    a = ap.parse_args(argv)
    if a.export_state:
        try:
            cert = export_state(a.export_state, a.out, lineage=a.lineage, boundary=a.boundary)
        except ValueError as exc:
            ap.error(str(exc).replace("boundary=", "--boundary "))
        print(f"wrote {a.out}\n{cert.summary()}")
        return 0
    init = a.init
    if a.spline_grid is not None:
        if init is None:
            ap.error("--spline-grid needs --init (the weights whose splines are resampled)")
        try:
            knots_s, range_s = a.spline_grid.split(":")
            knots, range_ = int(knots_s), float(range_s)
        except ValueError:
            ap.error(f"--spline-grid must be KNOTS:RANGE, e.g. 257:16, got {a.spline_grid!r}")
        reg, _ = load_ridge(init)
        Path(a.out).mkdir(parents=True, exist_ok=True)
        init = Path(a.out) / "init-resampled.safetensors"
        if not (Path(a.out) / "state.safetensors").exists():
            save_ridge(reg.with_spline_grid(knots, range_), init,
                       metadata={"resampled_from": str(a.init), "spline_grid": [knots, range_]})
    sigma_range = RidgeTrainConfig.sigma_range
    if a.sigma_range is not None:
        try:
            lo_s, hi_s = a.sigma_range.split(":")
            sigma_range = (float(lo_s) / 255, float(hi_s) / 255)
        except ValueError:
            ap.error(f"--sigma-range must be LO:HI in /255, e.g. 2:30, got {a.sigma_range!r}")
    try:
        cfg = RidgeTrainConfig(mode=a.mode, steps=a.steps, batch_size=a.batch_size, patch_size=a.patch_size, lr=a.lr,
                               loss_crop=a.loss_crop, validate_every=a.validate_every, sigma_range=sigma_range,
                               sigma_weight_power=a.sigma_weight_power, scalar_lr_factor=a.scalar_lr_factor)
    except ValueError as exc:
        ap.error(str(exc).replace("sigma_range", "--sigma-range").replace("sigma_weight_power", "--sigma-weight-power")
                 .replace("scalar_lr_factor", "--scalar-lr-factor"))
    try:
        arch = RidgeConfig(kind=a.kind, boundary=a.boundary or "valid", channel_conditioning=a.channel_conditioning)
    except ValueError as exc:
        ap.error(str(exc).replace("boundary=", "--boundary "))
    if a.boundary is not None and init is not None:
        reg0, _ = load_ridge(init)
        if reg0.config.boundary != a.boundary:
            Path(a.out).mkdir(parents=True, exist_ok=True)
            init = Path(a.out) / "init-boundary.safetensors"
            if not (Path(a.out) / "state.safetensors").exists():
                save_ridge(reg0.with_boundary(a.boundary), init,
                           metadata={"boundary_from": str(a.init), "boundary": a.boundary})
    if a.channel_conditioning and init is not None:
        reg0, _ = load_ridge(init)
        if not reg0.config.channel_conditioning:
            Path(a.out).mkdir(parents=True, exist_ok=True)
            src, init = init, Path(a.out) / "init-conditioning.safetensors"
            if not (Path(a.out) / "state.safetensors").exists():
                save_ridge(reg0.with_channel_conditioning(), init,
                           metadata={"conditioning_from": str(src), "channel_conditioning": True})
    if a.kind == "wcrr" and init is not None:
        reg0, _ = load_ridge(init)
        if reg0.kind == "crr":
            Path(a.out).mkdir(parents=True, exist_ok=True)
            src, init = init, Path(a.out) / "init-wcrr.safetensors"
            if not (Path(a.out) / "state.safetensors").exists():
                try:
                    reg1 = reg0.as_wcrr(a.wcrr_lambda_max)
                except ValueError as exc:
                    ap.error(str(exc).replace("lambda_max", "--wcrr-lambda-max"))
                save_ridge(reg1, init, metadata={"wcrr_from_crr": str(src), "wcrr_lambda_max": a.wcrr_lambda_max})
    path = train_ridge(cfg, a.out, architecture=arch, init=init, time_budget_s=a.time_budget)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
