import torch

from benchmarks.throughput import dncnn_matching, measure_throughput
from denoisers.models import AveragedConfig, AveragedResNet


def test_throughput_tiny_runs_and_matches_parameter_count():
    net = AveragedResNet(AveragedConfig(channels=4, hidden=4, depth=2))
    net.eval()
    net.freeze()
    res = measure_throughput(net, sizes=[16], repeats=1)
    row = res["rows"][0]
    assert row["averaged_mpix_per_s"] > 0 and row["dncnn_mpix_per_s"] > 0
    assert res["certificate_seconds"] > 0
    n = sum(p.numel() for p in net.parameters())
    assert abs(res["dncnn_params"] - n) <= 0.5 * n


def test_dncnn_matching_picks_closest_depth():
    m = dncnn_matching(111_000, nf=32)
    n = sum(p.numel() for p in m.parameters())
    assert abs(n - 111_000) < 9_300  # one 32x32x3x3 layer
    assert isinstance(m(torch.rand(1, 1, 16, 16), 0.1), torch.Tensor)
