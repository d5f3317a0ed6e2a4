"""pnp: Plug-and-Play solvers with convergence guarantees read from denoiser certificates.

Quick use::

    import pnp
    result = pnp.deblur(y, "gaussian:25:1.6", noise_level=0.01, denoiser="tv", solver="fbs")
    result.x, result.converged, result.guarantee.summary()

Full control: :class:`PnPFBS`, :class:`PnPHQS`, :class:`PnPADMM` in :mod:`pnp.solvers`.
"""

# Names are imported on first use (PEP 562), so that ``python -m pnp --help`` and the command
# line's parser do not import torch; ``from pnp import deblur`` and ``pnp.deblur`` work as before.
_LAZY = {
    "available_denoisers": "pnp.api",
    "deblur": "pnp.api",
    "default_parameters": "pnp.api",
    "get_denoiser": "pnp.api",
    "make_blur": "pnp.api",
    "ConvergenceWarning": "pnp.exceptions",
    "GuaranteeWarning": "pnp.exceptions",
    "PnPWarning": "pnp.exceptions",
    "Guarantee": "pnp.guarantees",
    "admm_guarantee": "pnp.guarantees",
    "fbs_guarantee": "pnp.guarantees",
    "hqs_guarantee": "pnp.guarantees",
    "read_image": "pnp.io",
    "write_image": "pnp.io",
    "psnr": "pnp.metrics",
    "History": "pnp.solvers",
    "PnPADMM": "pnp.solvers",
    "PnPFBS": "pnp.solvers",
    "PnPHQS": "pnp.solvers",
    "PnPSolver": "pnp.solvers",
    "SolverParams": "pnp.solvers",
    "SolverResult": "pnp.solvers",
    "operator_norm": "pnp.solvers",
}


_SUBMODULES = ("api", "cli", "exceptions", "guarantees", "io", "metrics", "resolve", "solvers", "validate")


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:  # ``pnp.guarantees.X`` without importing pnp.guarantees first
        return importlib.import_module(f"pnp.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pnp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ConvergenceWarning",
    "Guarantee",
    "GuaranteeWarning",
    "History",
    "PnPADMM",
    "PnPFBS",
    "PnPHQS",
    "PnPSolver",
    "PnPWarning",
    "SolverParams",
    "SolverResult",
    "admm_guarantee",
    "available_denoisers",
    "deblur",
    "default_parameters",
    "fbs_guarantee",
    "get_denoiser",
    "hqs_guarantee",
    "make_blur",
    "operator_norm",
    "psnr",
    "read_image",
    "write_image",
]
