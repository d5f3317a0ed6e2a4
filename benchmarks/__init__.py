"""benchmarks: protocols (deblurring, denoising, speed), runners, reports and plots.

Deblurring: :mod:`benchmarks.protocols` (``levin10``, ``gauss25`` as TOML), :mod:`benchmarks.degrade`
(the literature's degradation), :mod:`benchmarks.runner` (the command: resumable, sharded) over
:mod:`benchmarks.plan` (config -> tasks), :mod:`benchmarks.execute` (one task -> one record) and
:mod:`benchmarks.records` (the records store), :mod:`benchmarks.report`, :mod:`benchmarks.baselines`,
:mod:`benchmarks.calibrate`.
Speed: :mod:`benchmarks.speed`, :mod:`benchmarks.overhead`. Robustness: :mod:`benchmarks.robust`.
"""

from benchmarks.calibrate import calibrate
from benchmarks.degrade import degrade
from benchmarks.protocols import ParameterRule, Protocol, RuleEntry, available_protocols, load_protocol
from benchmarks.runner import BenchConfig, run_benchmark, run_denoise_benchmark
from benchmarks.speed import measure_speed

__all__ = [
    "BenchConfig",
    "ParameterRule",
    "Protocol",
    "RuleEntry",
    "available_protocols",
    "calibrate",
    "degrade",
    "load_protocol",
    "measure_speed",
    "run_benchmark",
    "run_denoise_benchmark",
]
