"""Protocol levin10-valid (benchmarks/boundary.py): the degradation blurs before cropping, the
border band, and a tiny end-to-end run that writes records, the table and the picture."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.boundary import border_mask, degrade_valid, main, operator_timing, summary_table
from operators import FFTBlur, gaussian_kernel
from pnp.io import write_image


def test_border_mask_counts() -> None:
    m = border_mask((10, 12), 3)
    assert m.shape == (10, 12) and int(m.sum()) == 10 * 12 - 4 * 6
    assert not m[3:7, 3:9].any() and m[0].all() and m[:, -1].all()
    with pytest.raises(ValueError, match="width must be in"):
        border_mask((10, 12), 5)


def test_degrade_valid_blurs_before_cropping() -> None:
    clean = torch.rand(1, 1, 30, 28, generator=torch.Generator().manual_seed(0))
    k = gaussian_kernel(7, 1.5).float()
    y, ref = degrade_valid(clean, k, 0.0, seed=0)
    assert y.shape == ref.shape == (1, 1, 24, 22)
    # the observation is the circular blur of the full image away from its wrap-around ...
    circ = FFTBlur(k).A(clean)
    torch.testing.assert_close(y, circ[..., 3:27, 3:25], rtol=0, atol=1e-5)
    # ... and not the circular blur of the reference (the borders see the outside scene)
    assert float((y - FFTBlur(k).A(ref)).abs().max()) > 1e-2
    torch.testing.assert_close(ref, clean[..., 3:27, 3:25])


def test_tiny_run_writes_records_table_and_picture(tmp_path, capsys) -> None:
    data = tmp_path / "imgs"
    data.mkdir()
    g = torch.Generator().manual_seed(1)
    for name in ("01", "02"):
        write_image(data / f"{name}.png", torch.rand(1, 1, 40, 40, generator=g))
    out = tmp_path / "out"
    argv = ["--data", str(data), "--images", "01,02", "--kernels", "gaussian:5:1.0",
            "--priors", "tv", "--models", "circular,reflect,valid", "--max-iter", "3",
            "--picture", "01:gaussian:5:1.0", "--corner", "16", "--out", str(out)]
    assert main(argv) == 0
    assert torch.is_grad_enabled()  # the run leaves the global autograd state alone
    recs = [json.loads(l) for l in (out / "levin10-valid.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and {r["model"] for r in recs} == {"circular", "reflect", "valid"}
    assert all(r["iterations"] == 3 and r["border_width"] == 5 for r in recs)
    assert (out / "border.png").stat().st_size > 0 and (out / "summary.json").exists()
    table = summary_table(recs)
    assert table.count("\n") == 4 and "| tv | valid | 2 |" in table
    capsys.readouterr()
    assert main(["--out", str(out), "--table"]) == 0
    assert capsys.readouterr().out.strip() == table
    # resuming skips what is recorded
    assert main(argv) == 0
    assert len((out / "levin10-valid.jsonl").read_text().splitlines()) == 6


def test_operator_timing_table() -> None:
    table = operator_timing(["gaussian:5:1.0"], size=24, repeats=1)
    rows = table.splitlines()[2:]
    assert [r.split("|")[2].strip() for r in rows] == ["circular", "reflect", "replicate", "valid"]
    assert "| 24x24 |" in rows[3] and "| 20x20 |" in rows[0]
    cg = [[int(c.split("/")[0]) for c in r.split("|")[6].split(",")] for r in rows]
    assert cg[0] == [0, 0, 0]  # circular: closed form, no CG
    assert all(min(its) >= 1 for its in cg[1:])
