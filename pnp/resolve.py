"""What the user named as a denoiser -> the denoiser ``D(x, sigma)``: one resolver for every entry
point (``pnp deblur|denoise|bench|train --init|certify``, :func:`pnp.deblur`, the benchmark harness).

A name is tried, in this order, as

1. a **closed-form baseline** (``wiener``, ``tikhonov``): refused here, since they are deblurring
   baselines that ``pnp bench deblur`` runs by itself, not denoisers;
2. a **registered name** (case-insensitive): the built-ins ``tv``, ``quadratic``, ``bm3d`` and
   whatever :func:`register_denoiser` added;
3. ``py:MODULE:CALLABLE``: ``CALLABLE()`` from an importable module (e.g. an unconstrained
   network, which then runs without a guarantee);
4. a **zoo name** (:func:`denoisers.available`: the family ``rk-averaged`` and its members);
5. a **checkpoint path**: a ``.safetensors`` file written by ``pnp train`` (or
   :func:`denoisers.save_denoiser`), loaded without unpickling; its certificate is recomputed from
   the weights and a mismatch is refused.

Every failure is one typed exception whose message names the argument (``argument``: the flag of
the caller, e.g. ``"--denoiser"``) and the value: :class:`UnknownDenoiserError` (a
``ValueError``) for a name that is none of the above, ``FileNotFoundError`` /
``IsADirectoryError`` for a path that is missing or a folder, and
:class:`denoisers.CheckpointError` (a ``ValueError``) for a file that is not a loadable
checkpoint (corrupt, pickle, foreign, wrong shapes, tampered certificate).

Adding a name
-------------
A loader is a function without arguments that returns a fresh denoiser ``D(x, sigma)`` (an
``nn.Module`` or any callable; a ``certificate`` attribute makes the solvers claim a guarantee).

* shipped with the toolkit: add ``"name": loader`` to :data:`BUILTIN_LOADERS` below (import
  heavy modules inside the loader, so that ``pnp --help`` stays fast), and list the name in
  README.md;
* from user code or a plugin: ``pnp.resolve.register_denoiser("name", loader)`` at import time of
  a module (benchmark workers are spawned processes: they must import that module too, or use
  ``py:MODULE:CALLABLE``).

Every entry point then accepts the name, with the same errors, and ``tests/pnp/test_bad_inputs.py``
covers it through the CLI rows. Two things outside this module key on names: the benchmark records
store :func:`benchmarks.baselines.denoiser_fingerprint` (``None`` for registered names: their code
is their identity; a name backed by weight files that can change should return their digest
there), and :func:`pnp.api.default_parameters` picks ``sigma``/``gamma`` by the denoiser's class
(classical rule for ``TVDenoiser``/``QuadraticProxDenoiser``, the learned rule for anything else).

>>> from pnp.resolve import resolve_denoiser
>>> resolve_denoiser("quadratic").__class__.__name__
'QuadraticProxDenoiser'
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "BUILTIN_LOADERS",
    "CLOSED_FORM",
    "UnknownDenoiserError",
    "known_denoisers",
    "register_denoiser",
    "resolve_denoiser",
]

Loader = Callable[[], Any]

#: Deblurring baselines with a closed-form solution (``pnp bench deblur`` only); not denoisers.
CLOSED_FORM = ("wiener", "tikhonov")


class UnknownDenoiserError(ValueError):
    """A denoiser name that is no registered name, zoo name, ``py:`` factory or file path."""


def _tv() -> Any:
    from denoisers.classical import TVDenoiser

    return TVDenoiser()


def _quadratic() -> Any:
    from denoisers.classical import QuadraticProxDenoiser

    return QuadraticProxDenoiser()


def _bm3d() -> Any:
    from denoisers.bm3d import BM3DDenoiser

    return BM3DDenoiser()


#: The toolkit's own names (lower case) and their loaders; extend here (module docstring).
BUILTIN_LOADERS: dict[str, Loader] = {
    "tv": _tv,
    "quadratic": _quadratic,
    "bm3d": _bm3d,
}

_REGISTERED: dict[str, Loader] = {}


def register_denoiser(name: str, loader: Loader) -> None:
    """Make ``name`` (case-insensitive) resolve to ``loader()``; a later call replaces it.

    :raises ValueError: an empty name, a name with ``:`` or a path separator, or a closed-form
        baseline's name.
    :raises TypeError: ``loader`` is not callable.
    """
    if not isinstance(name, str) or not name.strip() or ":" in name or "/" in name or os.sep in name:
        raise ValueError(f"name must be a non-empty string without ':' or '/', got {name!r}")
    if name.strip().lower() in CLOSED_FORM:
        raise ValueError(f"name {name!r} is reserved for a closed-form baseline")
    if not callable(loader):
        raise TypeError(f"loader must be callable, got {type(loader).__name__}")
    _REGISTERED[name.strip().lower()] = loader


def _loaders() -> dict[str, Loader]:
    return {**BUILTIN_LOADERS, **_REGISTERED}


def _zoo_names() -> list[str]:
    import denoisers

    return [str(n) for n in denoisers.available()]


def known_denoisers() -> list[str]:
    """Every name :func:`resolve_denoiser` accepts without a path or ``py:`` prefix."""
    names = list(_loaders())
    names += [n for n in _zoo_names() if n not in names]
    return names


def _unknown(argument: str, key: str) -> UnknownDenoiserError:
    return UnknownDenoiserError(
        f"{argument} {key!r}: unknown denoiser; known denoisers: {', '.join(known_denoisers())}; or a checkpoint "
        "file (.safetensors, written by pnp train) or py:MODULE:CALLABLE"
    )


def _from_factory(spec: str, argument: str) -> Any:
    parts = spec.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise ValueError(f"{argument} {spec!r} must look like 'py:MODULE:CALLABLE'")
    try:
        module = importlib.import_module(parts[1])
    except ImportError as exc:
        raise ValueError(f"{argument} {spec!r}: cannot import module {parts[1]!r} ({exc})") from None
    factory = getattr(module, parts[2], None)
    if not callable(factory):
        raise ValueError(f"{argument} {spec!r}: {parts[1]}.{parts[2]} is not a callable")
    return factory()


def _looks_like_path(key: str) -> bool:
    return key.lower().endswith((".safetensors", ".pt", ".pth", ".ckpt", ".bin")) or "/" in key or os.sep in key


def _from_checkpoint(path: Path, key: str, argument: str, verify: bool = False) -> Any:
    import denoisers
    from denoisers.checkpoint import CheckpointError

    if path.is_dir():
        raise IsADirectoryError(f"{argument} {key!r} is a directory, not a checkpoint file")
    try:
        return denoisers.load(str(path), verify=verify)
    except (FileNotFoundError, PermissionError) as exc:
        raise type(exc)(f"{argument} {key!r}: {exc}") from None
    except Exception as exc:  # corrupt, foreign, wrong shapes, tampered: one typed error
        why = str(exc)
        for prefix in (str(path), key):  # the loaders start their messages with the path
            if why.startswith(prefix):
                why = why[len(prefix):].lstrip(":, ")
                break
        raise CheckpointError(
            f"{argument} {key!r} is not a loadable checkpoint ({why}); give a .safetensors file "
            "written by pnp train, or a network of another format as py:MODULE:CALLABLE"
        ) from None


def resolve_denoiser(name: Any, *, device: Any = None, argument: str = "denoiser", verify: bool = False) -> Any:
    """The denoiser ``D(x, sigma)`` that ``name`` stands for (module docstring), in eval mode and
    on ``device`` when given. Stateful denoisers (TV warm-starts its inner solver) are built fresh
    on every call.

    ``argument`` names the caller's argument in error messages (``"--denoiser"`` on the command
    line). ``verify=True`` recomputes the certificate of shipped weights too (``pnp certify``;
    checkpoints given by path are always recomputed). Errors: module docstring.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a name or a path (str), got {type(name).__name__}")
    key = name.strip()
    if not key:
        raise UnknownDenoiserError(f"{argument} must not be empty; known: {', '.join(known_denoisers())}")
    low = key.lower()
    loaders = _loaders()
    if low in CLOSED_FORM:
        raise ValueError(
            f"{argument} {key!r} is a closed-form deblurring baseline, not a denoiser "
            "(only pnp bench deblur runs it)"
        )
    if low in loaders:
        den = loaders[low]()
    elif low.startswith("py:"):
        den = _from_factory(key, argument)
    elif key in _zoo_names():
        import denoisers

        den = denoisers.load(key, verify=verify)
    else:
        path = Path(key).expanduser()
        if path.exists():
            den = _from_checkpoint(path, key, argument, verify)
        elif _looks_like_path(key):
            raise FileNotFoundError(f"{argument} {key!r}: no such checkpoint file")
        else:
            raise _unknown(argument, key)
    if not callable(den):
        raise TypeError(f"{argument} {key!r} resolved to a non-callable {type(den).__name__}")
    import torch

    if isinstance(den, torch.nn.Module):
        den.eval()
        if device is not None:
            den.to(device)
    return den
