"""What a deblurring benchmark runs: the selection (:class:`BenchConfig`) and its tasks.

* :class:`BenchConfig`: a protocol (:mod:`benchmarks.protocols`) plus the subset of kernels, noise
  levels and images, the solvers (:data:`SOLVER_NAMES`), the denoisers and the execution settings
  (workers, device, saved images, shard); :func:`config_from_args` builds one from plain values
  (the command line's path);
* :class:`Task`: one run, ``(image, kernel, noise, solver, denoiser)``; :func:`plan_tasks` lists the
  tasks of a config in a deterministic order (closed-form baselines get one ``closed-form`` task per
  case whatever solvers were asked for);
* :func:`record_key`: the identity of a record, ``image|kernel|noise*255|solver|denoiser`` (how a
  rerun finds what is already done);
* :func:`rule_solver`: which solver's entry of the protocol's parameter rule applies to a task.

Running a task is :mod:`benchmarks.execute`; storing its record, :mod:`benchmarks.records`; the
whole command, :mod:`benchmarks.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.baselines import CLOSED_FORM, describe
from benchmarks.degrade import list_images
from benchmarks.protocols import Protocol, load_protocol

__all__ = ["BenchConfig", "SOLVER_NAMES", "Task", "config_from_args", "plan_tasks", "record_key", "rule_solver"]

SOLVER_NAMES = ("fbs", "hqs", "admm", "deepinv-pgd", "variational")


@dataclass(frozen=True)
class Task:
    """One benchmark run."""

    image: str
    image_path: str
    image_index: int
    kernel: str
    kernel_index: int
    noise: float
    solver: str
    denoiser: str

    @property
    def label(self) -> str:
        return describe(self.denoiser)

    def key(self) -> str:
        return record_key(self.image, self.kernel, self.noise, self.solver, self.label)


def record_key(image: str, kernel: str, noise: float, solver: str, denoiser: str) -> str:
    """The identity of a record: ``image|kernel|noise*255|solver|denoiser``."""
    return f"{image}|{kernel}|{round(float(noise) * 255, 6):g}|{solver}|{denoiser}"


@dataclass(frozen=True)
class BenchConfig:
    """What to run: a protocol plus the selection (subset of kernels/noise/images, solvers,
    denoisers) and execution settings. ``max_iter`` overrides every iteration budget."""

    protocol: Protocol
    denoisers: tuple[str, ...]
    solvers: tuple[str, ...] = ("fbs",)
    data: str | None = None
    noise_levels: tuple[float, ...] | None = None
    kernels: tuple[int, ...] | None = None
    max_images: int | None = None
    max_iter: int | None = None
    workers: int = 1
    device: str | None = None
    save_images: str = "first"
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.denoisers:
            raise ValueError("give at least one denoiser")
        for s in self.solvers:
            if s not in SOLVER_NAMES:
                raise ValueError(f"unknown solver {s!r}; choose from {', '.join(SOLVER_NAMES)}")
        if not self.solvers and any(d.lower() not in CLOSED_FORM for d in self.denoisers):
            raise ValueError("give at least one solver")
        if self.kernels is not None:
            for i in self.kernels:
                if not 0 <= i < len(self.protocol.kernels):
                    raise ValueError(
                        f"kernel index {i} out of range: protocol {self.protocol.name!r} has "
                        f"{len(self.protocol.kernels)} kernels (0..{len(self.protocol.kernels) - 1})"
                    )
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images!r}")
        if self.max_iter is not None and self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers!r}")
        if self.save_images not in ("none", "first", "all"):
            raise ValueError(f"save_images must be none, first or all, got {self.save_images!r}")
        if self.shard is not None:
            k, n = self.shard
            if not (n >= 1 and 0 <= k < n):
                raise ValueError(f"shard must be K/N with 0 <= K < N, got {k}/{n}")

    def effective_protocol(self) -> Protocol:
        """The protocol with the ``max_iter`` override applied (what records are computed with)."""
        if self.max_iter is None:
            return self.protocol
        return self.protocol.replace(max_iter=int(self.max_iter), max_iter_overrides=())

    def resolved_device(self) -> str:
        if self.device in (None, "auto"):
            return "cuda" if torch.cuda.is_available() else "cpu"
        return str(self.device)


def plan_tasks(config: BenchConfig) -> list[Task]:
    """All tasks of ``config`` in a deterministic order (image, kernel, noise, denoiser, solver)."""
    p = config.protocol
    images = list_images(config.data if config.data is not None else p.images)
    if config.max_images is not None:
        images = images[: config.max_images]
    kidx = list(config.kernels) if config.kernels is not None else list(range(len(p.kernels)))
    noises = list(config.noise_levels) if config.noise_levels is not None else list(p.noise_levels)
    # a level given as 0.03 is the protocol's 7.65/255: use the protocol's exact value
    noises = [p.noise_levels[i] if (i := p.noise_index(nu)) is not None else nu for nu in noises]
    tasks = []
    for ii, path in enumerate(images):
        if config.shard is not None and ii % config.shard[1] != config.shard[0]:
            continue
        for ki in kidx:
            for nu in noises:
                for den in config.denoisers:
                    solvers = ("closed-form",) if den.lower() in CLOSED_FORM else config.solvers
                    for s in solvers:
                        tasks.append(Task(path.name, str(path), ii, p.kernels[ki], ki, float(nu), s, den))
    return tasks


def rule_solver(solver: str) -> str:
    """The solver whose rule entry applies: deepinv's PGD is the same iteration as our FBS and
    takes the FBS parameters (the cross-check)."""
    return "fbs" if solver == "deepinv-pgd" else solver


def config_from_args(
    *,
    protocol: str,
    denoisers: list[str],
    solvers: list[str],
    data: str | None = None,
    noise: list[float] | None = None,
    kernels: list[int] | None = None,
    max_images: int | None = None,
    max_iter: int | None = None,
    workers: int = 1,
    device: str | None = None,
    save_images: str = "first",
    shard: tuple[int, int] | None = None,
) -> BenchConfig:
    """A :class:`BenchConfig` from plain values (the command line's path)."""
    return BenchConfig(
        protocol=load_protocol(protocol), denoisers=tuple(denoisers), solvers=tuple(solvers),
        data=data, noise_levels=None if noise is None else tuple(noise),
        kernels=None if kernels is None else tuple(kernels), max_images=max_images,
        max_iter=max_iter, workers=workers, device=device, save_images=save_images, shard=shard,
    )
