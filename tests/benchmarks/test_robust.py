"""Robust-classification benchmark: a --quick end-to-end run and the certification rules."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from benchmarks.robust import (
    MODELS,
    NORMS,
    RobustConfig,
    _margin_constants,
    _margins,
    _no_convergence_warnings,
    _SolveTally,
    load_digits_split,
    pgd_robust,
)
from denoisers.implicit import ConvergenceWarning, FixedPointConfig, LinfImplicitNetwork
from pnp.cli import main

REQUIRED = {"model", "norm", "radius", "clean_accuracy", "certified_accuracy", "attacked_accuracy"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("robust")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        rc = main(["bench", "robust", "--out", str(out), "--quick", "--epochs", "3", "--seed", "1"])
    assert rc == 0
    for w in caught:  # hand the other warnings back to pytest
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    return out, json.loads((out / "results.json").read_text()), conv


def test_quick_run_writes_documented_outputs(quick_run):
    out, res, _ = quick_run
    for name in ("results.json", "results.csv", "results.md", "accuracy_vs_radius.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    meta = res["metadata"]
    assert meta["seed"] == 1 and "torch" in meta["versions"] and set(meta["training_time_s"]) == set(MODELS)
    cfg = RobustConfig.quick_config()
    expected = len(MODELS) * (len(cfg.linf_radii) + len(cfg.l2_radii))
    assert len(res["records"]) == expected
    seen = set()
    for r in res["records"]:
        assert REQUIRED <= set(r)
        assert r["model"] in MODELS and r["norm"] in NORMS
        seen.add((r["model"], r["norm"], r["radius"]))
        for k in ("clean_accuracy", "certified_accuracy", "attacked_accuracy"):
            assert 0.0 <= r[k] <= 1.0
    assert len(seen) == expected
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert REQUIRED <= set(header)


def test_certified_never_exceeds_attacked_and_both_decrease(quick_run):
    _, res, _ = quick_run
    for r in res["records"]:
        assert r["certified_accuracy"] <= r["attacked_accuracy"] + 1e-12, r
        assert r["attacked_accuracy"] <= r["clean_accuracy"] + 1e-12, r
        if r["radius"] == 0.0:
            assert r["attacked_accuracy"] == r["clean_accuracy"]
    for model in MODELS:
        for norm in NORMS:
            rs = sorted((r for r in res["records"] if r["model"] == model and r["norm"] == norm),
                        key=lambda r: r["radius"])
            cert = [r["certified_accuracy"] for r in rs]
            assert all(a >= b for a, b in zip(cert, cert[1:]))


def test_implicit_certificate_recorded(quick_run):
    _, res, _ = quick_run
    cert = res["models"]["implicit_linf"]["certificate"]
    assert cert["mu"] <= cert["gamma"] + 1e-12 and cert["lipschitz_linf"] > 0


def test_convergence_warnings_are_aggregated_per_phase(quick_run):
    _, res, conv = quick_run
    fp = res["models"]["implicit_linf"]["fixed_point"]
    assert set(fp) == {"training", "certification", "attack"}
    assert all(v["solves"] > 0 and 0 <= v["not_converged"] <= v["solves"] for v in fp.values())
    failing = [phase for phase, v in fp.items() if v["not_converged"] > 0]
    assert len(conv) == len(failing)  # at most one warning per phase, never one per solve
    for w, phase in zip(conv, failing):
        assert str(w.message).startswith(f"implicit_linf ({phase}): ")


def test_solve_tally_counts_and_silences_non_converged_solves():
    torch.manual_seed(0)
    net = LinfImplicitNetwork(4, 6, 3, solver=FixedPointConfig(tol=1e-15, max_iter=1)).double()
    tally = _SolveTally(net)
    u = torch.rand(2, 4, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _no_convergence_warnings():
            for _ in range(50):
                tally(u)
        net(u)  # outside the context: warns again
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert tally.solves == tally.failed == 50 and tally.worst_residual > 1e-15
    msg = tally.message("training")
    assert msg.startswith("implicit_linf (training): 50 of 50") and "max_iter=1" in msg and "tol 1.000e-15" in msg
    assert tally.to_dict()["not_converged"] == 50
    assert _SolveTally(net).message("attack") is None


def test_margin_constants_take_the_smallest_valid_bound():
    c = _margin_constants({"linf": 1.0, "l2": 10.0, "l2_to_linf": 1.0})
    assert c["linf"] == (2.0, "2 L_inf") and c["l2"] == (2.0, "2 L_2inf")
    c = _margin_constants({"linf": 100.0, "l2": 1.0})
    assert c["linf"][0] == pytest.approx(math.sqrt(2) * 8) and c["l2"][0] == pytest.approx(math.sqrt(2))


def test_pgd_breaks_a_linear_classifier_exactly_at_its_margin():
    """For y = W u with two classes the l-inf attack radius needed is margin / ||w_0 - w_1||_1."""
    W = torch.tensor([[1.0, -1.0, 0.5], [-1.0, 1.0, -0.5]], dtype=torch.float64)
    model = lambda u: u @ W.T  # noqa: E731
    u = torch.full((1, 3), 0.5, dtype=torch.float64) + torch.tensor([[0.1, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0])
    margin = float(_margins(model(u), y))  # 2 * 0.1 = 0.2; ||w0 - w1||_1 = 5 -> radius 0.04
    g = torch.Generator().manual_seed(0)
    assert bool(pgd_robust(model, u, y, eps=0.9 * margin / 5, norm="linf", steps=20, restarts=2, generator=g))
    assert not bool(pgd_robust(model, u, y, eps=1.1 * margin / 5, norm="linf", steps=20, restarts=2, generator=g))


def test_digits_split_is_fixed_and_scaled():
    a = load_digits_split(split_seed=0)
    b = load_digits_split(split_seed=0)
    assert all(torch.equal(x, z) for x, z in zip(a, b))
    assert float(a[0].min()) >= 0.0 and float(a[0].max()) <= 1.0 and a[0].shape[1] == 64


def test_cli_errors_exit_2(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["bench", "robust", "--out", str(f), "--quick"]) == 2
    assert "directory" in capsys.readouterr().err
    # argparse errors: one line on stderr and exit code 2 (main returns it, no SystemExit)
    assert main(["bench", "robust", "--out", str(tmp_path), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--epochs" in err and "positive integer" in err and len(err.strip().splitlines()) == 1


def test_config_validation():
    with pytest.raises(ValueError, match="epochs"):
        RobustConfig(epochs=0)
    with pytest.raises(ValueError, match="l2_radii"):
        RobustConfig(l2_radii=(-1.0,))
