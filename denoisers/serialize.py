"""Save and load certified denoisers (safetensors + JSON metadata; no pickle).

Each certified network family is registered under a *kind* (the checkpoint's ``"kind"``
metadata) with its config class (``to_dict`` / ``from_dict``) and model class (built from the
config; ``frozen``, ``certificate``, ``metadata``):

* ``"averaged-resnet"``: :class:`AveragedConfig` -> :class:`AveragedResNet`;
* ``"lipschitz-ff"``: :class:`LipschitzFFConfig` -> :class:`LipschitzFFNet`.

:func:`build_denoiser` makes the network of a config (what training uses), and
:func:`load_denoiser` re-checks the stored certificate against the one recomputed from the
loaded weights, whatever the family.
"""

from __future__ import annotations

import hashlib

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from denoisers.certificate import Certificate
from denoisers.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from denoisers.models.averaged import AveragedConfig, AveragedResNet
from denoisers.models.lipschitz_ff import LipschitzFFConfig, LipschitzFFNet

__all__ = ["save_denoiser", "load_denoiser", "file_sha256", "build_denoiser", "ModelKind", "MODEL_KIND", "MODEL_KINDS"]

#: kind of the original family (kept for callers that name it)
MODEL_KIND = "averaged-resnet"


@dataclass(frozen=True)
class ModelKind:
    """A serialisable network family: checkpoint kind, config class, model class."""

    kind: str
    config: type
    model: type


MODEL_KINDS: dict[str, ModelKind] = {
    k.kind: k
    for k in (
        ModelKind(MODEL_KIND, AveragedConfig, AveragedResNet),
        ModelKind(LipschitzFFConfig.family, LipschitzFFConfig, LipschitzFFNet),
    )
}


def _kind_of_model(net: nn.Module) -> ModelKind:
    for k in MODEL_KINDS.values():
        if type(net) is k.model:
            return k
    raise TypeError(
        f"cannot save a {type(net).__name__}: expected one of {[k.model.__name__ for k in MODEL_KINDS.values()]}"
    )


def build_denoiser(config: Any) -> nn.Module:
    """The (untrained) network of an architecture config of a registered family."""
    for k in MODEL_KINDS.values():
        if type(config) is k.config:
            return k.model(config)
    raise TypeError(
        f"architecture must be one of {[k.config.__name__ for k in MODEL_KINDS.values()]}, got {type(config).__name__}"
    )


def save_denoiser(net: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> None:
    """Save a (preferably frozen) network with its kind, architecture and certificate."""
    kind = _kind_of_model(net)
    meta = dict(net.metadata)
    meta.update(metadata or {})
    meta["kind"] = kind.kind
    meta["architecture"] = net.config.to_dict()
    meta["frozen"] = net.frozen
    meta["certificate"] = net.certificate.to_dict()
    state = dict(net.state_dict())
    if net.frozen:
        # the power-iteration vectors only serve training; a frozen network does not need them
        state = {k: v for k, v in state.items() if not k.endswith("power_u")}
    save_checkpoint(path, state, meta)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_denoiser(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device | None = None,
    trusted_sha256: str | None = None,
) -> nn.Module:
    """Load a network saved by :func:`save_denoiser` (any registered family); checks that the
    stored certificate matches the one recomputed from the loaded weights.

    ``trusted_sha256``: the digest of a file whose certificate was recomputed from its weights
    when the digest was recorded (the zoo's ``MANIFEST.json``). When the file's digest equals it,
    the stored certificate is installed without recomputation (any other byte pattern, and every
    file given without a digest, is recomputed and compared)."""
    trusted = trusted_sha256 is not None and file_sha256(path) == trusted_sha256
    tensors, meta = load_checkpoint(path)
    kind = MODEL_KINDS.get(meta.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise CheckpointError(f"{path}: expected one of {sorted(MODEL_KINDS)} checkpoints, found {meta.get('kind')!r}")
    try:
        cfg = kind.config.from_dict(meta["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad architecture metadata ({exc})") from None
    net = kind.model(cfg)
    w0 = next((t for k, t in sorted(tensors.items())
               if (k.endswith("weight") or ".weight_factors." in k) and t.is_floating_point()), None)
    if w0 is not None:
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
    if missing and not net.frozen:
        raise CheckpointError(f"{path}: a network saved without power-iteration vectors must be frozen")
    for name, t in net.named_parameters():
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or Inf")
    net.metadata = {k: v for k, v in meta.items() if k not in ("format", "version", "kind", "architecture")}
    net.eval()
    if map_location is not None:
        net.to(map_location)
    stored = meta.get("certificate")
    if stored is not None and net.frozen and trusted and hasattr(net, "_param_version"):
        try:
            net._cert_cache = (net._param_version(), Certificate.from_dict(stored))
        except ValueError as exc:
            raise CheckpointError(f"{path}: bad certificate metadata ({exc})") from None
    elif stored is not None and net.frozen:
        cert = net.certificate
        old = Certificate.from_dict(stored)
        if old.alpha is not None and (cert.alpha is None or abs(cert.alpha - old.alpha) > 1e-6):
            now = "no averagedness (alpha undefined)" if cert.alpha is None else f"alpha = {cert.alpha:.6g}"
            raise CheckpointError(
                f"{path}: the stored certificate (alpha = {old.alpha:.6g}) does not match the weights "
                f"({now}); the file was modified after it was certified"
            )
    return net
