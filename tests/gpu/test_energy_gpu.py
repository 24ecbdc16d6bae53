"""The energy counter on a real GPU: a short run measured between the counter's steps agrees with
the bracket of a long one. This is the check of `suite.telemetry.step_energy`'s one assumption
(each step adds the energy used since the previous one); without it short energy runs would read
whatever the counter's publishing does."""
import time

import pytest
import torch

from gpu_helpers import ctx  # noqa: F401  (a fixture)
from suite import telemetry

pytestmark = pytest.mark.gpu


def _copy_for(seconds: float, src, dst) -> tuple[float, float, int]:
    """Copies back to back for about `seconds`; (host interval, calls)."""
    torch.cuda.synchronize()
    t0, calls = time.time(), 0
    while time.time() - t0 < seconds:
        for _ in range(8):
            dst.copy_(src)
        calls += 8
        torch.cuda.synchronize()  # never queue far ahead: the interval is the GPU's busy time
    return t0, time.time(), calls


def test_short_runs_between_steps_agree_with_a_long_bracket(ctx):
    if ctx.nvml is None:
        pytest.skip("no NVML handle")
    src, dst = torch.rand(1 << 28, device="cuda"), torch.empty(1 << 28, device="cuda")  # 1 GiB each
    _copy_for(1.0, src, dst)  # to the copy's steady power
    with telemetry.Sampler(ctx.nvml) as sampler:
        a, b, calls = _copy_for(4.0, src, dst)
    if sampler.energy_problem:
        pytest.skip(sampler.energy_problem)
    long = sampler.energy([(a, b)], calls=calls)
    assert "not_measured" not in long, long
    per_call = (b - a) / calls  # host time per call, the same for both figures below
    for k in range(6):  # six half-second runs inside the long one
        lo = a + 0.5 + 0.5 * k
        short = sampler.step_energy((lo, lo + 0.5), per_call, calls=1)
        assert "not_measured" not in short, short
        limit = short["uncertainty"] + long["uncertainty"] + 0.02  # and 2% for power drifting within it
        print(f"run {k}: {short['watts']:.1f} W ±{short['uncertainty']:.1%} against {long['watts']:.1f} W "
              f"±{long['uncertainty']:.1%}")
        assert abs(short["watts"] / long["watts"] - 1) <= limit, (k, short["watts"], long["watts"])


def test_a_run_between_idle_periods_reads_its_own_power_not_the_idle(ctx):
    if ctx.nvml is None:
        pytest.skip("no NVML handle")
    src, dst = torch.rand(1 << 28, device="cuda"), torch.empty(1 << 28, device="cuda")
    _copy_for(1.0, src, dst)
    with telemetry.Sampler(ctx.nvml) as sampler:
        time.sleep(0.5)
        a, b, calls = _copy_for(0.6, src, dst)
        time.sleep(0.5)
        c, d, more = _copy_for(3.0, src, dst)
    short = sampler.step_energy((a, b), (b - a) / calls, calls)
    long = sampler.energy([(c, d)], calls=more)
    assert "not_measured" not in short and "not_measured" not in long, (short, long)
    # The short run is the cooler one and may draw a percent or two less. A counter publishing its
    # steps later than the margin (half a counter period) would mix in the idle before it: 20 ms
    # past the margin is about 4% of this run's power.
    limit = short["uncertainty"] + long["uncertainty"] + 0.04
    print(f"after idle: {short['watts']:.1f} W ±{short['uncertainty']:.1%} against {long['watts']:.1f} W")
    assert abs(short["watts"] / long["watts"] - 1) <= limit, (short["watts"], long["watts"])
