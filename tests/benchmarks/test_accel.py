"""``pnp bench accel``: records of plain and accelerated runs side by side, the summary, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.accel import accel_markdown, run_accel, summarise
from benchmarks.protocols import load_protocol


@pytest.fixture
def tiny_data(tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    base = rng.random((8, 8))
    img = np.kron(base, np.ones((4, 4)))  # 32x32, piecewise constant
    iio.imwrite(d / "a.png", np.round(img * 255).astype(np.uint8))
    return d


def test_run_accel_records_and_summary(tiny_data, tmp_path):
    p = load_protocol("levin10-cal2")
    out = tmp_path / "out"
    recs = run_accel(p, denoisers=("quadratic",), solvers=("fbs", "hqs"), noise=7.65 / 255,
                     kernels=(8,), data=str(tiny_data), max_iter=300, out=out)
    assert len(recs) == 2 and (out / "records.jsonl").read_text().count("\n") == 2
    assert [r["order"][0] for r in recs] == ["none", "anderson"]  # the order alternates
    for r in recs:
        assert r["plain"]["converged"] and r["accel"]["converged"]
        assert r["accel"]["iterations"] < r["plain"]["iterations"]
        assert abs(r["accel"]["psnr"] - r["plain"]["psnr"]) < 0.01  # same limit (to tol 1e-5)
        assert r["accel"]["anderson_accepted"] <= r["accel"]["anderson_tried"]
    rows = summarise(recs)
    assert {(r["denoiser"], r["solver"]) for r in rows} == {("quadratic", "fbs"), ("quadratic", "hqs")}
    row = rows[0]
    rec = recs[0]
    assert row["median_iterations_plain"] == rec["plain"]["iterations"]
    assert row["wall_ratio"] == pytest.approx(rec["plain"]["wall_s"] / rec["accel"]["wall_s"])
    assert row["diverged_plain"] == row["diverged_accel"] == 0
    assert "| quadratic | fbs | 1 |" in accel_markdown(rows)


def test_cli_bench_accel(tiny_data, tmp_path, capsys):
    from pnp.cli import main

    out = tmp_path / "o"
    rc = main(["bench", "accel", "--data", str(tiny_data), "--images", "1", "--kernels", "9",
               "--denoiser", "quadratic", "--max-iter", "50", "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "accel.json").read_text())
    assert len(res["records"]) == 1 and res["summary"][0]["cases"] == 1
    assert (out / "accel.md").read_text().startswith("# Acceleration")
    # a second run into the same folder is refused; bad selections are one-line errors
    assert main(["bench", "accel", "--data", str(tiny_data), "--images", "1", "--out", str(out)]) == 2
    assert main(["bench", "accel", "--images", "0", "--out", str(tmp_path / "p")]) == 2
    assert main(["bench", "accel", "--solver", "pgd", "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--images" in err and "--solver" in err
