"""Training certified averaged denoisers.

Loop: random patches (:class:`PatchSampler`), MSE loss, Adam with cosine decay; the spectral
constraint holds at every forward pass through the adaptive step ``h = 2 alpha / (L ||W||^2_est)``
(warm-started power iteration). Validation PSNR on a folder (``set12`` when present) at intervals.
Checkpoints are written atomically every ``checkpoint_every`` steps; ``resume=True`` continues
exactly (sampling is stateless in the step index; model, optimiser and power-iteration vectors
are restored). At the end the network is frozen (steps re-derived from certified upper bounds),
certified, validated again and saved with its certificate and a training-curve plot.

Spline activations (``activation="spline"``): the loss is ``MSE + tv2_weight * TV2`` with ``TV2``
the sum of :meth:`denoisers.layers.spline.LinearSpline.tv2` over every spline of the network
(:func:`denoisers.layers.spline.tv2_penalty`; networks without splines train on the MSE alone,
exactly as before), and the spline coefficients are projected after each optimiser step
(:func:`denoisers.layers.spline.project_splines_`: projected gradient descent on
``{slopes in [0, 1]}``; the forward pass projects anyway, so the certificate never depends on it).
The learned functions are plotted next to the weights (``*.activations.png``) and summarised
(effective knots per channel) in the JSON summary.

Distributed: under ``torchrun --nproc_per_node=N`` the same call uses DistributedDataParallel
(gloo on CPU, nccl on CUDA); the global batch is split over ranks.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from denoisers.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint, save_checkpoint
from denoisers.layers.spline import plot_activations, project_splines_, spline_modules, spline_report, tv2_penalty
from denoisers.models.averaged import AveragedConfig, AveragedResNet
from denoisers.models.lipschitz_ff import LipschitzFFConfig, LipschitzFFNet
from denoisers.serialize import build_denoiser, save_denoiser
from denoisers.train.data import PatchSampler, default_training_images, load_image_folder, shared_data_dir

__all__ = ["TrainConfig", "TrainResult", "train", "validate", "validation_images"]

STATE_KIND = "training-state"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (serialised into checkpoints).

    ``tv2_weight`` (>= 0) weighs the TV(2) penalty of spline activations against the per-pixel
    MSE: the penalty is the total slope change of every spline channel (a ReLU-shaped channel
    counts 1, an affine one 0), so one unit of slope change in one channel costs as much as an
    increase of the mean squared error by ``tv2_weight`` (1e-4 = 10% of the MSE of a ~30 dB
    denoiser). It removes knots that the data do not need. Ignored (no effect) without splines.

    ``teacher`` (distillation): a saved denoiser (any family, e.g. an unconstrained twin, an
    estimate of the MMSE denoiser) whose output on the noisy patch replaces the clean patch as the
    regression target. Validation still measures against the clean images.
    """

    sigma: float = 25 / 255
    sigma_range: tuple[float, float] | None = None
    steps: int = 2000
    batch_size: int = 16
    patch_size: int = 48
    lr: float = 1e-3
    lr_final_fraction: float = 0.02
    seed: int = 0
    validate_every: int = 500
    checkpoint_every: int = 200
    val_sigma: float | None = None
    val_max_images: int | None = None
    tv2_weight: float = 1e-4
    teacher: str | None = None

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be > 0, got {self.sigma!r}")
        if self.sigma_range is not None:
            lo, hi = self.sigma_range
            if not (0 <= lo < hi):
                raise ValueError(f"sigma_range must satisfy 0 <= lo < hi, got {self.sigma_range!r}")
        for name in ("steps", "batch_size", "patch_size", "validate_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if isinstance(self.tv2_weight, bool) or not isinstance(self.tv2_weight, (int, float)) or not (
            math.isfinite(self.tv2_weight) and self.tv2_weight >= 0
        ):
            raise ValueError(f"tv2_weight must be a finite number >= 0, got {self.tv2_weight!r}")
        if self.teacher is not None and not (isinstance(self.teacher, str) and Path(self.teacher).is_file()):
            raise ValueError(f"teacher must be the path of a saved denoiser, got {self.teacher!r}")

    def training_range(self) -> tuple[float, float]:
        return tuple(self.sigma_range) if self.sigma_range is not None else (self.sigma, self.sigma)  # type: ignore[return-value]


@dataclass(frozen=True)
class TrainResult:
    path: str
    steps: int
    val_psnr: float | None
    certificate: dict[str, Any]
    history: dict[str, list] = field(default_factory=dict)


def validation_images(max_images: int | None = None) -> tuple[list[torch.Tensor], str] | tuple[None, None]:
    d = shared_data_dir()
    if d is None or not (d / "set12").is_dir():
        return None, None
    imgs = load_image_folder(d / "set12")
    if max_images is not None:
        imgs = imgs[:max_images]
    return imgs, str(d / "set12")


@torch.no_grad()
def validate(denoiser: Callable, images: list[torch.Tensor], sigma: float, *, seed: int = 0) -> float:
    """Mean PSNR (data range 1, output clipped to [0, 1]) on ``images`` with noise from
    ``numpy.random.default_rng(seed)`` drawn per image (fresh generator for each image)."""
    psnrs = []
    for im in images:
        rng = np.random.default_rng(seed)
        x = im[None].to(torch.float32)
        noise = torch.from_numpy(rng.normal(0.0, sigma, size=tuple(x.shape)).astype(np.float32))
        y = x + noise
        out = denoiser(y, sigma).clamp(0, 1)
        mse = float(F.mse_loss(out, x))
        psnrs.append(10 * math.log10(1.0 / max(mse, 1e-20)))
    return float(np.mean(psnrs))


def _dist_info() -> tuple[int, int, bool]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world, world > 1


def _lr_at(cfg: TrainConfig, step: int) -> float:
    warm = min(100, cfg.steps // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    f = cfg.lr_final_fraction
    return cfg.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _state_tensors(net: AveragedResNet | LipschitzFFNet, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v for k, v in net.state_dict().items()}
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for k, v in st.items():
            out[f"optim.{idx}.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    return out


def _restore(net: AveragedResNet | LipschitzFFNet, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    net.load_state_dict(model_sd, strict=True)
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def _plot_curve(history: dict[str, list], path: Path, final: tuple[int, float] | None = None) -> None:
    """Training curve; ``final`` = ``(step, PSNR)`` of the frozen network, drawn apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    if history.get("loss_step"):
        # in the units of the right panel: 10 log10(1 / MSE) on [0, 1] images is a PSNR
        mse = np.clip(np.asarray(history["loss"], dtype=np.float64), 1e-30, None)
        ax[0].plot(history["loss_step"], 10 * np.log10(1 / mse), ".-", lw=0.8, ms=3)
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("10 log10(1 / MSE) (dB)")
    ax[0].set_title("training patches (running mean of the MSE)", fontsize=9)
    if history.get("val_step"):
        ax[1].plot(history["val_step"], history["val_psnr"], "o-", label="during training")
    if final is not None and final[1] is not None:
        ax[1].plot([final[0]], [final[1]], "*", ms=12, label="after freezing (certified)")
        ax[1].legend(fontsize=8)
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("validation PSNR (dB)")
    ax[1].yaxis.set_tick_params(labelleft=True)
    ax[1].set_title("validation images", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    out: str | os.PathLike,
    *,
    config: TrainConfig = TrainConfig(),
    architecture: AveragedConfig | LipschitzFFConfig = AveragedConfig(),
    data: list[str] | None = None,
    init: AveragedResNet | LipschitzFFNet | None = None,
    init_name: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
    state_path: str | os.PathLike | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a certified averaged denoiser and save it to ``out`` (``.safetensors``).

    ``architecture`` picks the family: an :class:`AveragedConfig` trains an
    :class:`AveragedResNet`, a :class:`LipschitzFFConfig` a :class:`LipschitzFFNet`
    (:func:`denoisers.serialize.build_denoiser`); the loop is the same for both.

    ``state_path`` (default ``out + '.state.safetensors'``) holds the resumable training state.
    ``stop_after`` stops (after checkpointing) once that many steps are done in total: for tests
    of resumption. Returns a :class:`TrainResult`.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"out must end with .safetensors, got {out}")
    if out.exists() and not resume and stop_after is None:
        raise FileExistsError(f"output {out} exists; choose another path or resume")
    state_path = Path(state_path) if state_path else out.with_name(out.name + ".state.safetensors")
    rank, world, distributed = _dist_info()
    if config.batch_size % world:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the world size {world}")

    # data
    if data:
        images: list[torch.Tensor] = []
        for d in data:
            images.extend(load_image_folder(d, grayscale=architecture.image_channels == 1))
        data_desc = ",".join(str(d) for d in data)
    else:
        images, data_desc = default_training_images()
    sampler = PatchSampler(
        images,
        patch_size=config.patch_size,
        batch_size=config.batch_size // world,
        sigma_range=config.training_range(),
        seed=config.seed,
    )
    val_imgs, val_desc = validation_images(config.val_max_images)
    val_sigma = config.val_sigma if config.val_sigma is not None else config.sigma

    torch.manual_seed(config.seed)
    net = build_denoiser(architecture)
    if init is not None:
        if init.config != architecture:
            raise ValueError("init network's architecture differs from the requested architecture")
        net.load_state_dict(init.state_dict())
        net.unfreeze()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else torch.device("cpu")
    net.to(device)
    teacher = None
    if config.teacher is not None:
        from denoisers.serialize import load_denoiser

        teacher = load_denoiser(config.teacher, map_location=device).to(device).eval()
        teacher.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    start = 0
    history: dict[str, list] = {"loss_step": [], "loss": [], "val_step": [], "val_psnr": []}
    if resume and state_path.exists():
        tensors, meta = load_checkpoint(state_path, kind=STATE_KIND)
        if not _same_train_config(meta.get("train_config"), config) or not _same_architecture(
            meta.get("architecture"), architecture
        ):
            raise CheckpointError(f"{state_path}: saved run has a different configuration; refuse to resume")
        _restore(net, opt, tensors)
        start = int(meta["step"])
        history = meta.get("history", history)
    elif resume and rank == 0:
        print(f"no training state at {state_path}; starting from step 0", file=sys.stderr)

    model: torch.nn.Module = net
    if distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    show = (sys.stderr.isatty() if progress is None else progress) and rank == 0
    from tqdm.auto import tqdm

    bar = tqdm(total=config.steps, initial=start, disable=not show, dynamic_ncols=True, desc="train")
    running = None
    t0 = time.time()
    end = config.steps if stop_after is None else min(config.steps, stop_after)

    def save_state(step: int) -> None:
        if rank != 0:
            return
        meta = {
            "kind": STATE_KIND,
            "step": step,
            "train_config": _cfg_json(config),
            "architecture": architecture.to_dict(),
            "history": history,
            "data": data_desc,
            "init": init_name,
        }
        save_checkpoint(state_path, _state_tensors(net, opt), meta)

    has_splines = bool(spline_modules(net))
    use_tv2 = has_splines and config.tv2_weight > 0
    net.train()
    for step in range(start, end):
        for g in opt.param_groups:
            g["lr"] = _lr_at(config, step)
        clean, noisy, sigma = sampler.sample(step, rank)
        clean, noisy, sigma = clean.to(device), noisy.to(device), sigma.to(device)
        if teacher is not None:
            with torch.no_grad():
                clean = teacher(noisy, sigma).to(noisy.dtype)
        outp = model(noisy, sigma)
        loss = mse = F.mse_loss(outp, clean)
        tv2 = None
        if use_tv2:
            tv2 = tv2_penalty(net)
            loss = mse + config.tv2_weight * tv2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if has_splines:
            project_splines_(net)
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise FloatingPointError(f"training loss became {lv} at step {step}; lower --lr")
        mv = float(mse.detach()) if tv2 is not None else lv
        running = mv if running is None else 0.98 * running + 0.02 * mv
        done = step + 1
        if done % 20 == 0 or done == end:
            history["loss_step"].append(done)
            history["loss"].append(running)
            if tv2 is not None:
                history.setdefault("tv2", []).append(float(tv2.detach()))
        if val_imgs is not None and rank == 0 and (done % config.validate_every == 0):
            net.eval()
            psnr = validate(net, val_imgs, val_sigma)
            net.train()
            history["val_step"].append(done)
            history["val_psnr"].append(psnr)
            bar.set_postfix(loss=f"{running:.2e}", psnr=f"{psnr:.2f}")
            print(f"step {done}: val PSNR {psnr:.3f} dB at sigma={val_sigma * 255:.2f}/255 "
                  f"({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
        elif show and done % 10 == 0:
            bar.set_postfix(loss=f"{running:.2e}")
        bar.update(1)
        if done % config.checkpoint_every == 0 or done == end:
            save_state(done)
    bar.close()
    if end < config.steps:
        return TrainResult(path=str(state_path), steps=end, val_psnr=None, certificate={}, history=history)

    # freeze, certify, validate, save
    net.eval()
    cert = net.freeze()
    final_psnr = validate(net, val_imgs, val_sigma) if (val_imgs is not None and rank == 0) else None
    if rank == 0:
        meta = {
            "sigma": config.sigma,
            "sigma_range": list(config.training_range()),
            "noise_levels": list(config.training_range()),
            "data": data_desc,
            "steps": config.steps,
            "seed": config.seed,
            "train_config": _cfg_json(config),
            "validation": {"set": val_desc, "sigma": val_sigma, "psnr": final_psnr, "noise": "numpy default_rng(0) per image",
                           "psnr_when": "after freeze() (steps from the certified norm bounds); history.val_psnr "
                                        "holds the values logged during training, before freezing"},
            "history": history,
            "init": init_name,
            "world_size": world,
            "training_seconds": time.time() - t0,
        }
        save_denoiser(net, out, metadata=meta)
        _plot_curve(history, out.with_suffix(".curve.png"), final=(config.steps, final_psnr))
        extra: dict[str, Any] = {}
        if has_splines:
            plot_activations(net, out.with_suffix(".activations.png"))
            extra["splines"] = spline_report(net)
        atomic_write_bytes(out.with_suffix(".json"), json.dumps({k: v for k, v in meta.items() if k != "history"} | {"certificate": cert.to_dict(), "architecture": architecture.to_dict()} | extra, indent=2).encode())
    if distributed:
        import torch.distributed as dist

        dist.barrier()
    return TrainResult(path=str(out), steps=config.steps, val_psnr=final_psnr, certificate=cert.to_dict(), history=history)


def _same_train_config(saved: Any, config: TrainConfig) -> bool:
    """Saved run config == ``config``; keys missing from an older state file (fields added since,
    e.g. ``tv2_weight``) take their defaults, so older runs still resume."""
    if not isinstance(saved, dict):
        return False
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    full = {k: v for k, v in defaults.items() if k not in saved} | saved
    if full.get("sigma_range") is not None:
        full["sigma_range"] = list(full["sigma_range"])
    return full == _cfg_json(config)


def _same_architecture(saved: Any, architecture: Any) -> bool:
    """Saved architecture == ``architecture``, read through the config's ``from_dict`` (which fills
    fields added since, e.g. the spline settings, with their defaults)."""
    if not isinstance(saved, dict):
        return False
    try:
        return type(architecture).from_dict(saved) == architecture
    except (TypeError, ValueError):
        return False


def _cfg_json(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    if d["sigma_range"] is not None:
        d["sigma_range"] = list(d["sigma_range"])
    return d
