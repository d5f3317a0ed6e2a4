"""Checkpoints: safetensors tensors + JSON metadata, written atomically, loaded without pickle.

A checkpoint is one ``.safetensors`` file whose header metadata holds a JSON document under the
key ``"pnp_toolkit"``: ``{"format": FORMAT, "version": 1, "kind": ..., ...}``. Loading never
unpickles anything (safetensors holds raw tensors only), and a file that is not ours, truncated or
corrupt gets a :class:`CheckpointError` naming the path.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_write_bytes", "FORMAT"]

FORMAT = "pnp-toolkit-checkpoint"
_KEY = "pnp_toolkit"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or not one of ours."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    The file gets the mode of any new file (``0o666`` less the umask, usually ``0o644``), not the
    ``0o600`` of the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        except (OSError, AttributeError):  # pragma: no cover - a file system or OS without modes
            pass
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Save ``tensors`` (CPU copies, contiguous) and JSON ``metadata`` atomically."""
    from safetensors.torch import save

    meta = {"format": FORMAT, "version": 1, **metadata}
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    blob = save(clean, metadata={_KEY: json.dumps(meta)})
    atomic_write_bytes(path, blob)


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``(tensors, metadata)``; raises :class:`CheckpointError` for anything not ours."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a directory: {path}")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError, Exception) as exc:  # noqa: BLE001
        raise CheckpointError(f"{path} is not a valid safetensors checkpoint ({exc.__class__.__name__}: {exc})") from None
    raw = (header.get("__metadata__") or {}).get(_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a pnp-toolkit checkpoint (no metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: foreign checkpoint format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path}: expected a {kind!r} checkpoint, found {meta.get('kind')!r}")
    return tensors, meta
