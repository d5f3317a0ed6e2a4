"""Certified robust classification on the 8x8 digits that scikit-learn ships (offline).

Three classifiers of similar size, trained on CPU with fixed seeds and a fixed split:

* ``implicit_linf``: :class:`denoisers.implicit.LinfImplicitNetwork` (``mu_inf(A) <= gamma``),
  trained with a Lipschitz-margin loss in l-inf;
* ``mlp``: an unconstrained ReLU MLP (plain cross-entropy), certified after the fact with the
  product of layer norms (valid but loose);
* ``gradstep_l2``: lifting ``Linear(64, d)``, averaged dense gradient-step blocks
  (:class:`denoisers.layers.dense_gradient_step.DenseGradientStep`, l2 Lipschitz 1), a linear head;
  trained with a Lipschitz-margin loss in l2.

Certification from margins. Let ``m(u) = y_c(u) - max_{j != c} y_j(u)`` (``c`` the true label) and
let ``K_p`` bound ``|Delta (y_c - y_j)|`` per unit of ``||Delta u||_p`` for every pair ``c != j``.
A correctly classified ``u`` is certified at radius ``eps`` when ``m(u) > K_p eps`` (then every
``u'`` with ``||u' - u||_p <= eps`` has ``m(u') >= m(u) - K_p eps > 0``). We use:

* ``|Delta y_c - Delta y_j| <= 2 ||Delta y||_inf`` and ``<= sqrt(2) ||Delta y||_2``
  (Cauchy-Schwarz with ``e_c - e_j``), and ``||Delta u||_2 <= sqrt(64) ||Delta u||_inf``, so with
  ``L_inf`` (l-inf -> l-inf), ``L_2`` (l2 -> l2) and ``L_2inf`` (l2 -> l-inf) Lipschitz bounds of the
  logit map::

      K_inf = min(2 L_inf, sqrt(2) * 8 * L_2),        K_2 = min(sqrt(2) L_2, 2 L_2inf)

  (missing bounds are dropped from the min; the record says which term won).
* For the implicit network the computed logits differ from the exact ones by at most
  ``e = ||C||_inf r / (1 - mu^+)`` (``r`` the final l-inf fixed-point residual), so we require
  ``m_computed(u) - 2 e > K eps``. Evaluation runs in float64 with ``tol = 1e-9``. A forward
  solve that exhausts its budget is still certified soundly (``r`` is its actual residual); the
  per-solve ``ConvergenceWarning`` is silenced in training, certification and attack, and replaced
  by one aggregated warning per phase, with the counts in ``models.implicit_linf.fixed_point``.

Attack. PGD on the margin loss ``max_{j != c} y_j - y_c`` inside the ``eps`` ball intersected with
the pixel box ``[0, 1]``: random start, ``steps`` steps of size ``2.5 eps / steps`` (sign of the
gradient for l-inf, normalised gradient for l2), ``restarts`` restarts; a sample counts as
broken if any iterate of any restart is misclassified. Certified accuracy can never exceed
attacked accuracy (certified points cannot be broken); the benchmark checks it for every record.

Outputs (``OUTDIR``): ``results.json`` (``metadata`` + ``models`` + ``records``, one record per
model, norm and radius with ``model, norm, radius, clean_accuracy, certified_accuracy,
attacked_accuracy`` and the bound used), ``results.csv``, ``results.md`` (a Markdown table) and
``accuracy_vs_radius.png``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import math
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from denoisers.implicit import ConvergenceWarning, FixedPointConfig, LinfImplicitNetwork
from denoisers.layers.dense_gradient_step import DenseGradientStep, chain_certificate

__all__ = [
    "RobustConfig",
    "RobustRecord",
    "load_digits_split",
    "run_robust_benchmark",
    "write_outputs",
    "markdown_table",
    "plot_accuracy",
    "pgd_robust",
    "MODELS",
    "NORMS",
]

MODELS = ("implicit_linf", "mlp", "gradstep_l2")
NORMS = ("linf", "l2")
_SAFETY = 1.0 + 1e-6  # relative inflation of float64 norm computations


@dataclass(frozen=True)
class RobustConfig:
    """Protocol of the robust-classification benchmark.

    epochs: training epochs of every model. seed: model initialisation and batch order.
    split_seed: the train/test split (fixed; 30 % test, stratified).
    quick: smaller models, subset of the test set, weaker attack (for the test suite).
    """

    epochs: int = 40
    seed: int = 0
    split_seed: int = 0
    quick: bool = False
    linf_radii: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1)
    l2_radii: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0)
    batch_size: int = 64
    pgd_steps: int = 20
    pgd_restarts: int = 3
    max_test: int | None = None
    state_features: int = 128
    implicit_gamma: float = 0.5
    implicit_train_eps: float = 0.05
    gradstep_width: int = 128
    gradstep_hidden: int = 64
    gradstep_blocks: int = 2
    gradstep_alpha: float = 0.5
    gradstep_train_eps: float = 0.5
    mlp_hidden: int = 128
    lr: float = 3e-3

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "pgd_steps", "pgd_restarts", "state_features",
                     "gradstep_width", "gradstep_hidden", "gradstep_blocks", "mlp_hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.max_test is not None and (not isinstance(self.max_test, int) or self.max_test < 1):
            raise ValueError(f"max_test must be a positive int or None, got {self.max_test!r}")
        for name in ("linf_radii", "l2_radii"):
            radii = getattr(self, name)
            if len(radii) == 0 or any(not (r >= 0.0 and math.isfinite(r)) for r in radii):
                raise ValueError(f"{name} must be a non-empty tuple of finite radii >= 0, got {radii!r}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    @classmethod
    def quick_config(cls, *, epochs: int = 4, seed: int = 0) -> "RobustConfig":
        return cls(epochs=epochs, seed=seed, quick=True, pgd_steps=5, pgd_restarts=1, max_test=120,
                   state_features=32, gradstep_width=32, gradstep_hidden=32, mlp_hidden=32)


@dataclass(frozen=True)
class RobustRecord:
    model: str
    norm: str
    radius: float
    clean_accuracy: float
    certified_accuracy: float
    attacked_accuracy: float
    bound: float
    bound_method: str
    n_test: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------- data
def load_digits_split(*, split_seed: int = 0, test_size: float = 0.3):
    """``(x_train, y_train, x_test, y_test)``: pixels scaled to ``[0, 1]`` (divided by 16), float32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=split_seed, stratify=y)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte))


# --------------------------------------------------------------------------------------- models
class MLP(nn.Module):
    """64 -> h -> h -> 10 ReLU MLP (unconstrained)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(64, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 10)])

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = u
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x

    def lipschitz(self) -> dict[str, float]:
        """Products of layer norms (ReLU is 1-Lipschitz in every norm, elementwise)."""
        Ws = [layer.weight.detach().double() for layer in self.layers]
        l2 = math.prod(float(torch.linalg.matrix_norm(W, ord=2)) * _SAFETY for W in Ws)
        linf = math.prod(float(W.abs().sum(dim=1).max()) * _SAFETY for W in Ws)
        l2inf = float(Ws[-1].pow(2).sum(dim=1).sqrt().max()) * _SAFETY * math.prod(
            float(torch.linalg.matrix_norm(W, ord=2)) * _SAFETY for W in Ws[:-1])
        return {"linf": linf, "l2": l2, "l2_to_linf": l2inf}


class GradStepClassifier(nn.Module):
    """``head o block_k o ... o block_1 o lift``; l2 Lipschitz ``<= ||lift||_2 * 1 * ||head||_2``."""

    def __init__(self, *, width: int, hidden: int, blocks: int, alpha: float) -> None:
        super().__init__()
        self.lift = nn.Linear(64, width)
        self.blocks = nn.ModuleList([DenseGradientStep(width, hidden, alpha_target=alpha) for _ in range(blocks)])
        self.head = nn.Linear(width, 10)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = self.lift(u)
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)

    def lipschitz_l2_tensor(self) -> torch.Tensor:
        return torch.linalg.matrix_norm(self.lift.weight, ord=2) * torch.linalg.matrix_norm(self.head.weight, ord=2)

    def lipschitz(self) -> dict[str, float]:
        cert = chain_certificate(list(self.blocks))  # Lipschitz 1 (averaged chain)
        lift = float(torch.linalg.matrix_norm(self.lift.weight.detach().double(), ord=2)) * _SAFETY
        head = self.head.weight.detach().double()
        h2 = float(torch.linalg.matrix_norm(head, ord=2)) * _SAFETY
        h2inf = float(head.pow(2).sum(dim=1).sqrt().max()) * _SAFETY
        return {"l2": lift * cert.lipschitz_bound * h2, "l2_to_linf": lift * cert.lipschitz_bound * h2inf,
                "chain_alpha": float(cert.alpha)}  # type: ignore[arg-type]


def _margin_constants(lip: dict[str, float]) -> dict[str, tuple[float, str]]:
    """``K_inf``, ``K_2`` (see the module docstring) and the term that achieved each minimum."""
    kinf: list[tuple[float, str]] = []
    if "linf" in lip:
        kinf.append((2.0 * lip["linf"], "2 L_inf"))
    if "l2" in lip:
        kinf.append((math.sqrt(2.0) * 8.0 * lip["l2"], "sqrt(2) sqrt(64) L_2"))
    k2: list[tuple[float, str]] = []
    if "l2" in lip:
        k2.append((math.sqrt(2.0) * lip["l2"], "sqrt(2) L_2"))
    if "l2_to_linf" in lip:
        k2.append((2.0 * lip["l2_to_linf"], "2 L_2inf"))
    return {"linf": min(kinf), "l2": min(k2)}


# ------------------------------------------------------------- fixed-point convergence accounting
class _SolveTally:
    """Counts the forward solves of an implicit network that stopped without converging.

    The network warns (:class:`ConvergenceWarning`) on every such solve; training and PGD call it
    thousands of times, so those calls run under :func:`_no_convergence_warnings` through a tally,
    and :func:`run_robust_benchmark` issues one aggregated warning per phase instead. The counts
    also go into ``results.json`` (``models.implicit_linf.fixed_point``).
    """

    def __init__(self, net: LinfImplicitNetwork) -> None:
        self.net = net
        self.solves = 0
        self.failed = 0
        self.worst_residual = 0.0

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        out = self.net(u)
        info = self.net.last_forward_info
        self.solves += 1
        if not info.converged:
            self.failed += 1
            self.worst_residual = max(self.worst_residual, info.residual)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"solves": self.solves, "not_converged": self.failed,
                "worst_residual": self.worst_residual if self.failed else None,
                "tol": self.net.solver.tol, "max_iter": self.net.solver.max_iter}

    def message(self, phase: str) -> str | None:
        """One line summarising the non-converged solves of ``phase`` (None when there were none)."""
        if not self.failed:
            return None
        return (f"implicit_linf ({phase}): {self.failed} of {self.solves} forward fixed-point solves stopped "
                f"without converging (max_iter={self.net.solver.max_iter}, worst l-inf residual "
                f"{self.worst_residual:.3e} > tol {self.net.solver.tol:.3e})")


@contextlib.contextmanager
def _no_convergence_warnings() -> Iterator[None]:
    """Silence the per-solve :class:`ConvergenceWarning` (a :class:`_SolveTally` aggregates them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ------------------------------------------------------------------------------------- training
def _lipschitz_margin_logits(logits: torch.Tensor, y: torch.Tensor, k: torch.Tensor, eps: float) -> torch.Tensor:
    """Tsuzuku et al. (2018): add ``K eps`` to every wrong logit before the cross-entropy."""
    return logits + k * eps * (1.0 - F.one_hot(y, logits.shape[1]).to(logits.dtype))


def _implicit_k_inf(net: LinfImplicitNetwork) -> torch.Tensor:
    bd = net.lipschitz_bounds()
    return torch.minimum(2.0 * bd["linf"], math.sqrt(2.0) * 8.0 * bd["l2"])


def _train(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
           xtr: torch.Tensor, ytr: torch.Tensor, cfg: RobustConfig, *, lr: float) -> float:
    g = torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = cfg.epochs * math.ceil(len(xtr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    t0 = time.perf_counter()
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(xtr[idx], ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ evaluation
def _margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return true - other


def _project(delta: torch.Tensor, u: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
        delta = delta * torch.clamp(eps / n, max=1.0)
    return (u + delta).clamp(0.0, 1.0) - u  # pixel box; stays inside the ball (box contains u)


def pgd_robust(model: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor, y: torch.Tensor, *,
               eps: float, norm: str, steps: int, restarts: int, generator: torch.Generator) -> torch.Tensor:
    """Boolean ``[N]``: correct at the clean point and at every PGD iterate of every restart."""
    with torch.no_grad():
        robust = _margins(model(u), y) > 0
    if eps == 0.0:
        return robust
    alpha = 2.5 * eps / steps
    for _ in range(restarts):
        idx = torch.nonzero(robust).flatten()  # broken samples stay broken: attack the others
        if idx.numel() == 0:
            break
        ui, yi = u[idx], y[idx]
        if norm == "linf":
            delta = (torch.rand(ui.shape, generator=generator, dtype=u.dtype) * 2 - 1) * eps
        else:
            d = torch.randn(ui.shape, generator=generator, dtype=u.dtype)
            r = torch.rand(ui.shape[0], 1, generator=generator, dtype=u.dtype)
            delta = d / d.norm(dim=1, keepdim=True) * eps * r
        delta = _project(delta, ui, eps, norm)
        ok = torch.ones(len(idx), dtype=torch.bool)
        for _ in range(steps):
            delta.requires_grad_(True)
            m = _margins(model(ui + delta), yi)
            ok &= (m > 0).detach()
            (grad,) = torch.autograd.grad((-m).sum(), delta)
            with torch.no_grad():
                if norm == "linf":
                    delta = delta + alpha * grad.sign()
                else:
                    delta = delta + alpha * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
                delta = _project(delta, ui, eps, norm)
        with torch.no_grad():
            ok &= _margins(model(ui + delta), yi) > 0
        robust[idx] = ok
    return robust


def _evaluate(name: str, model: Callable[[torch.Tensor], torch.Tensor], margin_fn, consts, xte, yte,
              cfg: RobustConfig) -> list[RobustRecord]:
    records = []
    with torch.no_grad():
        margins, err = margin_fn(xte)
    clean = float((margins > 0).double().mean())
    g = torch.Generator().manual_seed(cfg.seed + 12345)
    for norm, radii in (("linf", cfg.linf_radii), ("l2", cfg.l2_radii)):
        k, how = consts[norm]
        for eps in radii:
            certified = (margins - 2.0 * err) > k * eps
            certified &= margins > 0
            robust = pgd_robust(model, xte, yte, eps=float(eps), norm=norm, steps=cfg.pgd_steps,
                                restarts=cfg.pgd_restarts, generator=g)
            records.append(RobustRecord(
                model=name, norm=norm, radius=float(eps), clean_accuracy=clean,
                certified_accuracy=float(certified.double().mean()),
                attacked_accuracy=float(robust.double().mean()),
                bound=float(k), bound_method=how, n_test=int(len(yte)),
            ))
    return records


def _nparams(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))


def run_robust_benchmark(config: RobustConfig = RobustConfig(), *, log: Callable[[str], None] | None = None
                         ) -> dict[str, Any]:
    """Train the three models, certify and attack them; return the JSON-ready result dict."""
    if not isinstance(config, RobustConfig):
        raise TypeError(f"config must be a RobustConfig, got {type(config).__name__}")
    cfg = config
    say = log or (lambda s: None)
    xtr, ytr, xte, yte = load_digits_split(split_seed=cfg.split_seed)
    if cfg.max_test is not None:
        xte, yte = xte[: cfg.max_test], yte[: cfg.max_test]
    xte64 = xte.double()
    models_meta: dict[str, Any] = {}
    records: list[RobustRecord] = []

    # (a) l-inf implicit network ---------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    imp = LinfImplicitNetwork(64, cfg.state_features, 10, gamma=cfg.implicit_gamma,
                              solver=FixedPointConfig(tol=1e-4, max_iter=300, anderson=5))

    train_tally = _SolveTally(imp)

    def imp_loss(u, y):
        return F.cross_entropy(_lipschitz_margin_logits(train_tally(u), y, _implicit_k_inf(imp),
                                                        cfg.implicit_train_eps), y)

    with _no_convergence_warnings():
        t = _train(imp, imp_loss, xtr, ytr, cfg, lr=cfg.lr)
    say(f"implicit_linf trained in {t:.1f}s")
    imp64 = LinfImplicitNetwork(64, cfg.state_features, 10, gamma=cfg.implicit_gamma,
                                solver=FixedPointConfig(tol=1e-9, max_iter=5000)).double()
    imp64.load_state_dict({k: v.double() for k, v in imp.state_dict().items()})
    cert = imp64.certificate
    c_inf = float(imp64.C.detach().abs().sum(dim=1).max()) * _SAFETY
    iters: list[int] = []
    cert_tally = _SolveTally(imp64)

    def imp_margins(u):
        logits = cert_tally(u)
        info = imp64.last_forward_info
        iters.append(info.iterations)
        # sound even without convergence: the error bound uses the final residual
        err = c_inf * info.residual / (1.0 - max(cert.mu, 0.0))
        return _margins(logits, yte), err

    lip = {"linf": cert.lipschitz_linf, "l2": cert.lipschitz_l2, "l2_to_linf": cert.lipschitz_l2_to_linf}
    consts = _margin_constants(lip)
    attack_net = LinfImplicitNetwork(64, cfg.state_features, 10, gamma=cfg.implicit_gamma,
                                     solver=FixedPointConfig(tol=1e-6, max_iter=2000)).double()
    attack_net.load_state_dict(imp64.state_dict())
    attack_tally = _SolveTally(attack_net)
    with _no_convergence_warnings():
        records += _evaluate("implicit_linf", attack_tally, imp_margins, consts, xte64, yte, cfg)
    tallies = {"training": train_tally, "certification": cert_tally, "attack": attack_tally}
    for phase, tally in tallies.items():
        msg = tally.message(phase)
        if msg is not None:
            say(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    models_meta["implicit_linf"] = {
        "parameters": _nparams(imp), "train_time_s": t, "lipschitz": lip, "certificate": cert.to_dict(),
        "margin_constants": {k: {"K": v[0], "method": v[1]} for k, v in consts.items()},
        "forward_iterations_eval": iters[0] if iters else None,
        "fixed_point": {phase: tally.to_dict() for phase, tally in tallies.items()},
        "train_loss": f"Lipschitz-margin cross-entropy, l-inf, eps_train={cfg.implicit_train_eps}",
    }
    say(f"implicit_linf evaluated: L_inf={cert.lipschitz_linf:.3g} L_2={cert.lipschitz_l2:.3g}")

    # (b) unconstrained MLP ----------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    mlp = MLP(cfg.mlp_hidden)
    t = _train(mlp, lambda u, y: F.cross_entropy(mlp(u), y), xtr, ytr, cfg, lr=cfg.lr / 3)
    mlp64 = MLP(cfg.mlp_hidden).double()
    mlp64.load_state_dict({k: v.double() for k, v in mlp.state_dict().items()})
    lip = mlp64.lipschitz()
    consts = _margin_constants(lip)
    records += _evaluate("mlp", mlp64, lambda u: (_margins(mlp64(u), yte), 0.0), consts, xte64, yte, cfg)
    models_meta["mlp"] = {
        "parameters": _nparams(mlp), "train_time_s": t, "lipschitz": lip,
        "margin_constants": {k: {"K": v[0], "method": v[1]} for k, v in consts.items()},
        "train_loss": "cross-entropy", "lipschitz_method": "product of exact layer norms (float64)",
    }
    say(f"mlp trained in {t:.1f}s")

    # (c) averaged gradient-step classifier ------------------------------------------------------
    torch.manual_seed(cfg.seed)
    gs = GradStepClassifier(width=cfg.gradstep_width, hidden=cfg.gradstep_hidden, blocks=cfg.gradstep_blocks,
                            alpha=cfg.gradstep_alpha)

    def gs_loss(u, y):
        k = math.sqrt(2.0) * gs.lipschitz_l2_tensor()
        return F.cross_entropy(_lipschitz_margin_logits(gs(u), y, k, cfg.gradstep_train_eps), y)

    t = _train(gs, gs_loss, xtr, ytr, cfg, lr=cfg.lr)
    gs64 = GradStepClassifier(width=cfg.gradstep_width, hidden=cfg.gradstep_hidden, blocks=cfg.gradstep_blocks,
                              alpha=cfg.gradstep_alpha).double()
    gs64.load_state_dict({k: v.double() for k, v in gs.state_dict().items()})
    lip = gs64.lipschitz()
    consts = _margin_constants(lip)
    records += _evaluate("gradstep_l2", gs64, lambda u: (_margins(gs64(u), yte), 0.0), consts, xte64, yte, cfg)
    models_meta["gradstep_l2"] = {
        "parameters": _nparams(gs), "train_time_s": t, "lipschitz": lip,
        "margin_constants": {k: {"K": v[0], "method": v[1]} for k, v in consts.items()},
        "train_loss": f"Lipschitz-margin cross-entropy, l2, eps_train={cfg.gradstep_train_eps}",
    }
    say(f"gradstep_l2 trained in {t:.1f}s")

    for r in records:
        if r.certified_accuracy > r.attacked_accuracy:
            raise RuntimeError(f"certified accuracy exceeds attacked accuracy: {r}")

    import sklearn

    metadata = {
        "benchmark": "robust",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(cfg),
        "seed": cfg.seed,
        "split_seed": cfg.split_seed,
        "data": "sklearn.datasets.load_digits, pixels / 16 in [0, 1], 30% stratified test split",
        "n_train": int(len(ytr)),
        "n_test": int(len(yte)),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "sklearn": sklearn.__version__},
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "train_dtype": "float32",
        "eval_dtype": "float64",
        "training_time_s": {k: v["train_time_s"] for k, v in models_meta.items()},
        "certification": ("certified iff margin - 2 e > K eps with K_inf = min(2 L_inf, sqrt(2)*8*L_2), "
                          "K_2 = min(sqrt(2) L_2, 2 L_2inf); e = fixed-point error bound on logits (implicit only)"),
        "attack": (f"PGD on the margin, {cfg.pgd_steps} steps of 2.5 eps/steps, {cfg.pgd_restarts} random restarts,"
                   " box [0,1]; broken if any iterate is misclassified"),
    }
    return {"metadata": metadata, "models": models_meta, "records": [r.to_dict() for r in records]}


# --------------------------------------------------------------------------------------- output
def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| model | norm | radius | clean acc | certified acc | PGD acc | K (margin bound) |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in result["records"]:
        lines.append(f"| {r['model']} | {r['norm']} | {r['radius']:g} | {r['clean_accuracy']:.3f} | "
                     f"{r['certified_accuracy']:.3f} | {r['attacked_accuracy']:.3f} | "
                     f"{r['bound']:.3g} ({r['bound_method']}) |")
    return "\n".join(lines) + "\n"


def plot_accuracy(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = {"implicit_linf": "C0", "mlp": "C1", "gradstep_l2": "C2"}
    for ax, norm in zip(axes, NORMS):
        for model in MODELS:
            rs = [r for r in result["records"] if r["model"] == model and r["norm"] == norm]
            if not rs:
                continue
            xs = [r["radius"] for r in rs]
            ax.plot(xs, [r["certified_accuracy"] for r in rs], "-o", color=colors[model], label=f"{model} certified")
            ax.plot(xs, [r["attacked_accuracy"] for r in rs], "--x", color=colors[model], label=f"{model} PGD")
        ax.set_xlabel(f"{'l-inf' if norm == 'linf' else 'l2'} radius (pixels in [0, 1])")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(f"digits 8x8, {norm} perturbations")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(result: dict[str, Any], outdir: str | Path) -> dict[str, Path]:
    """Write results.json, results.csv, results.md and accuracy_vs_radius.png into ``outdir``."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out must be a directory, got existing file {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md",
             "png": out / "accuracy_vs_radius.png"}
    paths["json"].write_text(json.dumps(result, indent=2))
    fields = list(RobustRecord.__dataclass_fields__)
    with paths["csv"].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in result["records"]:
            w.writerow(r)
    paths["md"].write_text(markdown_table(result))
    plot_accuracy(result, paths["png"])
    return paths
