"""The FBS-overhead benchmark runs at tiny size and returns a consistent record."""

from __future__ import annotations

import pytest

from benchmarks.overhead import measure_overhead


@pytest.mark.parametrize("denoiser", ["quadratic", "tv"])
def test_overhead_tiny(denoiser):
    out = measure_overhead(size=32, denoiser=denoiser, kernel="gaussian:5:1.0", iterations=3,
                           repeats=2)
    for key in ("ours_s_per_iter", "deepinv_s_per_iter", "bare_s_per_iter",
                "ratio_ours_over_deepinv"):
        assert out[key] > 0
    assert len(out["ours_all"]) == 2 and out["size"] == 32
    if denoiser == "quadratic":  # deterministic denoiser: same iterates as deepinv's PGD
        assert out["max_rel_diff_ours_vs_deepinv"] < 1e-5


def test_overhead_bad_args():
    with pytest.raises(ValueError, match="size"):
        measure_overhead(size=4)
