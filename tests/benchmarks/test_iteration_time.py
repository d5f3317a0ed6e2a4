"""benchmarks.iteration_time at tiny size: one row per pair, in order, with positive times."""

from benchmarks.iteration_time import main, measure


def test_measure_runs_every_pair_in_turn():
    rows = measure([("tv", "fbs"), ("crr", "variational")], size=32, iterations=2, repeats=2, log=lambda s: None)
    assert [(r["denoiser"], r["solver"]) for r in rows] == [("tv", "fbs"), ("crr", "variational")]
    assert all(len(r["all"]) == 2 and r["seconds_per_iteration"] > 0 for r in rows)


def test_bad_pairs_exit_2(capsys):
    assert main(["--pairs", "tv"]) == 2
    assert "DENOISER:SOLVER" in capsys.readouterr().err
