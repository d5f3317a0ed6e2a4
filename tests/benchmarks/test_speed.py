"""pnp bench speed: scaling fit, time and memory rows, flat memory, the command line."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.speed import default_sizes, fit_exponent, measure_scaling, speed_markdown
from pnp.cli import main


def test_fit_exponent_known_answers():
    sizes = [64, 128, 256]
    assert fit_exponent(sizes, [1e-9 * n * n for n in sizes]) == pytest.approx(1.0)
    assert fit_exponent(sizes, [3e-12 * (n * n) ** 1.5 for n in sizes]) == pytest.approx(1.5)
    assert fit_exponent([64], [1.0]) is None


def test_default_sizes():
    assert default_sizes("cuda")[-1] == 2048 and default_sizes("cuda")[0] == 128
    assert max(default_sizes("cpu")) <= 512


def test_measure_scaling_tiny():
    out = measure_scaling(sizes=(32, 64), denoiser="quadratic", kernel="gaussian:5:1.0", iterations=3,
                          warmup=1, device="cpu", isolate=False)
    assert [r["size"] for r in out["rows"]] == [32, 64]
    for r in out["rows"]:
        assert r["s_per_iter"] > 0 and len(r["s_per_iter_all"]) == 3
        assert len(r["memory_after_iteration"]) == 3
    assert out["exponent_vs_pixels"] is not None
    assert out["memory_flat"] in (True, None)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        measure_scaling(sizes=(16,), kernel="gaussian:25:1.6", iterations=2)


@pytest.mark.cuda
def test_measure_scaling_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    out = measure_scaling(sizes=(64, 128), iterations=3, device="cuda")
    assert all(r["peak_extra_bytes"] is not None for r in out["rows"]) and out["memory_flat"] is True


def test_cli_bench_speed(tmp_path, capsys):
    rc = main(["bench", "speed", "--sizes", "32,48", "--iterations", "2", "--overhead-size", "32",
               "--overhead-iterations", "2", "--repeats", "1", "--denoiser", "quadratic",
               "--kernel", "gaussian:5:1.0", "--device", "cpu", "--in-process", "--out", str(tmp_path / "s")])
    assert rc == 0
    res = json.loads((tmp_path / "s" / "speed.json").read_text())
    assert res["overhead"]["ratio_ours_over_deepinv"] > 0 and len(res["scaling"]["rows"]) == 2
    assert "versions" in res["metadata"]
    text = capsys.readouterr().out
    assert "ratio ours / deepinv" in text and "scaling exponent" in text
    assert speed_markdown(res).startswith("## Loop overhead")
    rc = main(["bench", "speed", "--sizes", "8", "--out", str(tmp_path / "t"), "--device", "cpu",
               "--kernel", "gaussian:25:1.6", "--overhead-size", "32", "--repeats", "1",
               "--overhead-iterations", "2", "--iterations", "2", "--in-process"])
    assert rc == 2


_LEAKY_SCRIPT = """
import json, sys
import torch
from benchmarks.baselines import register_denoiser
from benchmarks.speed import measure_scaling

kept = []

class Leaky(torch.nn.Module):
    def forward(self, x, sigma):
        out = 0.5 * x
        kept.append(out.repeat(1, 1, 2, 2))  # four image buffers per iteration: more than freed pages absorb
        return out

register_denoiser("leaky-test", Leaky)
out = measure_scaling(sizes=(256,), denoiser="leaky-test", kernel="gaussian:5:1.0", iterations=8,
                      warmup=1, device="cpu", isolate=False)
print(json.dumps(out["rows"][0]["flat"]))
"""


# slow (about 15 s: the leaking child must grow past the threshold): `python -m pytest -m slow`
@pytest.mark.slow
def test_memory_growth_is_detected(tmp_path):
    """A denoiser that keeps four image buffers per iteration (a leak) is not flat."""
    import subprocess
    import sys

    # both cases run in fresh processes: inside a long test session the allocator holds freed
    # pages that a leak can reuse without the resident set growing, which hid the leak
    script = tmp_path / "leaky.py"
    script.write_text(_LEAKY_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    leaky_flat = json.loads(proc.stdout.strip().splitlines()[-1])
    if leaky_flat is None:
        pytest.skip("no /proc/self/status on this platform")
    assert leaky_flat is False
    # the flat case runs in a fresh process: the RSS of a long test session can grow for
    # reasons unrelated to the solver (allocator, other tests), which made this flaky in-process
    flat = measure_scaling(sizes=(256,), denoiser="quadratic", kernel="gaussian:5:1.0", iterations=8,
                           warmup=2, device="cpu", isolate=True)
    assert flat["rows"][0]["flat"] is True
