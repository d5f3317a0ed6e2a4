"""Save and load certified denoisers (safetensors + JSON metadata; no pickle)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from denoisers.certificate import Certificate
from denoisers.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from denoisers.models.averaged import AveragedConfig, AveragedResNet

__all__ = ["save_denoiser", "load_denoiser", "MODEL_KIND"]

MODEL_KIND = "averaged-resnet"


def save_denoiser(net: AveragedResNet, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> None:
    """Save a (preferably frozen) network with its architecture and certificate."""
    meta = dict(net.metadata)
    meta.update(metadata or {})
    meta["kind"] = MODEL_KIND
    meta["architecture"] = net.config.to_dict()
    meta["frozen"] = net.frozen
    meta["certificate"] = net.certificate.to_dict()
    state = dict(net.state_dict())
    if net.frozen:
        # the power-iteration vectors only serve training; a frozen network does not need them
        state = {k: v for k, v in state.items() if not k.endswith("power_u")}
    save_checkpoint(path, state, meta)


def load_denoiser(path: str | os.PathLike, *, map_location: str | torch.device | None = None) -> AveragedResNet:
    """Load a network saved by :func:`save_denoiser`; checks that the stored certificate matches
    the one recomputed from the loaded weights."""
    tensors, meta = load_checkpoint(path, kind=MODEL_KIND)
    try:
        cfg = AveragedConfig.from_dict(meta["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad architecture metadata ({exc})") from None
    net = AveragedResNet(cfg)
    w0 = tensors.get("blocks.0.weight")
    if w0 is not None and w0.is_floating_point():
        net.to(w0.dtype)  # keep the stored precision (the certificate is computed from these weights)
    try:
        missing, unexpected = net.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the architecture ({str(exc).splitlines()[0]})") from None
    bad_missing = [k for k in missing if not k.endswith("power_u")]
    if unexpected or bad_missing:
        raise CheckpointError(
            f"{path}: weights do not match the architecture (missing {bad_missing[:3]}, unexpected {unexpected[:3]})"
        )
    if missing and not bool(torch.isfinite(tensors.get("blocks.0.h_frozen", torch.tensor(float("nan"))))):
        raise CheckpointError(f"{path}: a network saved without power-iteration vectors must be frozen")
    for name, t in tensors.items():
        if t.is_floating_point() and name.endswith(("weight", "bias", "bias_sigma")) and not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or Inf")
    net.metadata = {k: v for k, v in meta.items() if k not in ("format", "version", "kind", "architecture")}
    net.eval()
    if map_location is not None:
        net.to(map_location)
    stored = meta.get("certificate")
    if stored is not None and net.frozen:
        cert = net.certificate
        old = Certificate.from_dict(stored)
        if old.alpha is not None and (cert.alpha is None or abs(cert.alpha - old.alpha) > 1e-6):
            raise CheckpointError(
                f"{path}: stored certificate (alpha={old.alpha}) does not match the weights (alpha={cert.alpha})"
            )
    return net
