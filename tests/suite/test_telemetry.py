"""NVML readings without a GPU: throttle reasons in words, the energy counter's bracket and its
resolution, a sampler over a fake NVML, and the clock and power settings a record carries."""
import threading
import time

import numpy as np
import pytest

from suite import env, telemetry
from suite.telemetry import MAX_ENERGY_UNCERTAINTY, Sampler, counter_energy, decode_reasons

pynvml = pytest.importorskip("pynvml")


# ---------------------------------------------------------------- throttle reasons

def test_reasons_are_pynvml_words():
    assert decode_reasons(0) == []
    assert decode_reasons(pynvml.nvmlClocksEventReasonSwPowerCap) == ["sw_power_cap"]
    both = pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonHwThermalSlowdown
    assert decode_reasons(both) == ["hw_thermal_slowdown", "sw_power_cap"]
    # The deprecated alias of bit 0x2 and the older "Throttle" names give no second word.
    assert decode_reasons(0x2) == ["applications_clocks_setting"]


def test_a_bit_pynvml_cannot_name_is_kept_not_dropped():
    assert decode_reasons(0x4 | 1 << 40) == ["sw_power_cap", "unknown_0x10000000000"]


def test_without_pynvml_reasons_stay_visible(monkeypatch):
    monkeypatch.setattr(telemetry, "pynvml", None)
    assert decode_reasons(0x4) == ["unknown_0x4"]


# ---------------------------------------------------------------- the energy counter's bracket

def counter(watts, t0=1000.0, t1=1010.0, step_s=0.1, period_s=0.005, phase=0.037, lag_s=0.0):
    """Readings every period_s from t0 to t1 of a counter that steps every step_s (the first step
    `phase` after t0) and publishes at each step the millijoules used since t0 up to `lag_s` before
    the step, at `watts` (a number, or a function of time)."""
    power = np.vectorize(watts if callable(watts) else (lambda t: watts))
    dt = 0.0005
    edges = np.arange(t0, t1 + 1.0, dt)
    used = np.concatenate([[0.0], np.cumsum(power(edges[:-1] + dt / 2) * dt * 1e3)])  # mJ at each edge
    steps = np.arange(t0 + phase, t1 + 1.0, step_s)
    published = np.interp(steps - lag_s, edges, used)
    out = []
    for t in np.arange(t0, t1, period_s):
        k = np.searchsorted(steps, t, side="right")  # steps made by time t
        out.append((float(t), int(published[k - 1]) if k else 0))
    return out


def test_steady_power_over_a_long_window_is_measured():
    e = counter_energy(counter(500.0), [(1002.0, 1007.0)], calls=1000)
    assert "not_measured" not in e, e
    # Under steady power the bracket's two edges err in opposite directions: its middle is close.
    assert e["watts"] == pytest.approx(500.0, rel=0.005)
    assert e["joules_per_call"] == pytest.approx(500.0 * 5.0 / 1000, rel=0.005)
    assert e["uncertainty"] <= MAX_ENERGY_UNCERTAINTY
    # The resolution is measured from the readings, and the shortest window follows from it.
    assert e["counter_resolution_s"] == pytest.approx(0.1, abs=0.006)
    assert e["reading_period_s"] == pytest.approx(0.005, rel=0.01)
    assert e["min_window_s"] == pytest.approx((0.1 + 2 * 0.005) / MAX_ENERGY_UNCERTAINTY, rel=0.07)
    assert e["method"] == "nvml total energy counter" and e["calls"] == 1000 and e["window_s"] == pytest.approx(5.0)


def test_a_window_short_for_the_counter_says_not_measured_and_why():
    e = counter_energy(counter(500.0), [(1002.0, 1002.4)], calls=10)
    assert set(e) >= {"not_measured", "counter_resolution_s", "min_window_s"} and "joules_per_call" not in e
    assert "too short for the counter's 100.0 ms steps" in e["not_measured"]
    assert "at least 2.2" in e["not_measured"]
    # The same readings over a window above min_window_s measure (the limit is the resolution's, not a guess).
    assert "not_measured" not in counter_energy(counter(500.0), [(1002.0, 1002.0 + e["min_window_s"] * 1.2)], 10)


def test_a_long_window_with_missed_readings_says_so_not_that_it_is_too_short():
    readings = [(t, e) for t, e in counter(500.0) if not (1004.3 < t < 1005.0 or 1001.0 < t < 1001.8)]
    e = counter_energy(readings, [(1001.7, 1004.4)], calls=10)  # 2.7 s, above the 2.2 s the steps ask for
    assert "not_measured" in e and e["window_s"] > e["min_window_s"]
    assert "readings came late or were missed" in e["not_measured"] and "at least" not in e["not_measured"]
    short = counter_energy(counter(500.0), [(1002.0, 1002.5)], calls=10)
    assert "a single window of at least" in short["not_measured"]


def test_the_bracket_holds_the_true_energy_when_power_changes():
    # A 2 s burst at 700 W inside a 400 W run: the midpoint stays within its stated uncertainty.
    def power(t):
        return 700.0 if 1004.0 <= t < 1006.0 else 400.0
    e = counter_energy(counter(power, step_s=0.02), [(1003.0, 1007.0)], calls=4)
    true = (2 * 700 + 2 * 400) / 4
    assert "not_measured" not in e, e
    assert abs(e["watts"] / true - 1) <= e["uncertainty"]


def test_interleaved_intervals_count_only_their_own_energy():
    # Two implementations alternate in 1 s chunks; A draws 600 W, B 200 W.
    def power(t):
        return 600.0 if int(t) % 2 == 0 else 200.0
    readings = counter(power, step_s=0.01, period_s=0.002)
    a = [(1002.0, 1003.0), (1004.0, 1005.0), (1006.0, 1007.0)]
    e = counter_energy(readings, a, calls=3)
    assert "not_measured" not in e, e
    assert e["watts"] == pytest.approx(600.0, rel=e["uncertainty"]) and e["uncertainty"] < 0.05


# ---------------------------------------------------------------- between the counter's steps

def idle_run_idle(run=(1003.0, 1003.5), watts=650.0, idle=80.0):
    """Power of a GPU idle at `idle` W but for one energy run at `watts` W."""
    return lambda t: watts if run[0] <= t < run[1] else idle


@pytest.mark.parametrize("phase", [0.002, 0.037, 0.061, 0.099])
@pytest.mark.parametrize("lag_s", [0.0, 0.03, 0.049])
def test_a_short_run_is_measured_between_the_counters_steps(lag_s, phase):
    # 0.5 s at 650 W between idle: too short for the bracket (2.4 s), enough for its own steps, also
    # from a counter that publishes its steps late by up to half a period (not more: the margin),
    # wherever its steps fall in the run.
    readings = counter(idle_run_idle(), lag_s=lag_s, phase=phase)
    assert "not_measured" in counter_energy(readings, [(1003.0, 1003.5)], calls=500)
    e = telemetry.step_energy(readings, (1003.0, 1003.5), seconds_per_call=1e-3, calls=500)
    assert "not_measured" not in e, e
    assert e["method"] == telemetry.STEP_METHOD and e["uncertainty"] <= 0.05 and e["calls"] == 500
    assert e["margin_s"] == pytest.approx(0.05, abs=0.003) and e["min_run_s"] <= 0.5
    assert abs(e["watts"] / 650.0 - 1) <= e["uncertainty"]  # the idle around it is not counted
    assert e["joules_per_call"] == pytest.approx(e["watts"] * 1e-3)


@pytest.mark.parametrize("lag_s, phase", [(0.15, 0.037), (0.09, 0.057)])
def test_between_steps_a_counter_later_than_its_margin_would_read_idle_power(lag_s, phase):
    # The one assumption: a step adds the energy since the previous one, up to a delay below half a
    # counter period. A counter later than that, its first used step just past the margin, shows
    # what the check guards against: the idle before the run is counted.
    readings = counter(idle_run_idle(), lag_s=lag_s, phase=phase)
    e = telemetry.step_energy(readings, (1003.0, 1003.5), seconds_per_call=1e-3, calls=500)
    assert "not_measured" in e or abs(e["watts"] / 650.0 - 1) > e["uncertainty"]


@pytest.mark.parametrize("run, needle", [
    ((1003.0, 1003.2), "two are needed"),
    ((1003.0, 1003.0), "no timed interval"),
])
def test_a_run_with_too_few_steps_is_not_measured(run, needle):
    e = telemetry.step_energy(counter(650.0), run, seconds_per_call=1e-3, calls=10)
    assert needle in e["not_measured"] and "joules_per_call" not in e


def test_coarse_readings_widen_the_steps_bracket_past_the_limit():
    readings = counter(650.0, period_s=0.04)  # a step is placed only within 40 ms
    e = telemetry.step_energy(readings, (1003.0, 1003.45), seconds_per_call=1e-3, calls=10)
    assert "not_measured" in e and "a longer run narrows it" in e["not_measured"]


@pytest.mark.parametrize("readings, intervals, calls, needle", [
    ([(1.0, None), (2.0, None)], [(1.2, 1.8)], 1, "fewer than two readings"),
    ([(1.0 + i, 5) for i in range(10)], [(2.0, 8.0)], 1, "stepped 0 time(s)"),
    ([(1.0 + i, 100 - i) for i in range(10)], [(2.0, 8.0)], 1, "went backwards"),
    (counter(300.0), [(1000.0, 1011.0)], 1, "do not bracket the window"),
    (counter(300.0), [(999.0, 1005.0)], 1, "do not bracket the window"),
    (counter(300.0), [], 1, "no timed interval"),
    (counter(300.0), [(1002.0, 1007.0)], 0, "no calls"),
])
def test_what_the_counter_cannot_say_is_not_measured(readings, intervals, calls, needle):
    e = counter_energy(readings, intervals, calls)
    assert needle in e["not_measured"] and "joules_per_call" not in e


# ---------------------------------------------------------------- the sampler, on a fake NVML

class FakeNVML:
    """What the sampler asks NVML, answered from the clock: 450 W, the counter stepping every 10 ms."""
    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0
    nvmlClocksEventReasonSwPowerCap = pynvml.nvmlClocksEventReasonSwPowerCap

    class NVMLError(Exception):
        pass

    def __init__(self, energy=True, watts=450.0):
        self.energy, self.watts, self.t0 = energy, watts, time.time()

    def nvmlDeviceGetClockInfo(self, h, which):
        return 1755 if which == self.NVML_CLOCK_SM else 3201

    def nvmlDeviceGetPowerUsage(self, h):
        return int(self.watts * 1000)

    def nvmlDeviceGetTemperature(self, h, which):
        return 51

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self.nvmlClocksEventReasonSwPowerCap

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy:
            raise self.NVMLError("Not Supported")
        elapsed = time.time() - self.t0
        return int(self.watts * 1e3 * (elapsed // 0.01) * 0.01)


def test_sampler_reads_energy_and_brackets_the_last_interval(monkeypatch):
    monkeypatch.setattr(telemetry, "pynvml", FakeNVML())
    with Sampler(handle="gpu0", period_s=0.001) as s:
        t0 = time.time()
        time.sleep(1.0)  # four times the shortest window the 10 ms steps allow, for a loaded machine's gaps
        t1 = time.time()
    # Leaving the block waited for a counter step seen wholly after t1: the window is closed on both sides.
    assert any(a[0] >= t1 and b[6] != a[6] for a, b in zip(s.rows, s.rows[1:]))
    summary = s.summary([(t0, t1)])
    assert summary["power_w"]["p50"] == 450.0 and summary["throttle"] == ["sw_power_cap"]
    e = s.energy([(t0, t1)], calls=8)
    assert "not_measured" not in e, e
    assert e["watts"] == pytest.approx(450.0, rel=0.1)
    assert e["joules_per_call"] == pytest.approx(450.0 * (t1 - t0) / 8, rel=0.1)


def test_leaving_on_an_error_does_not_wait_for_the_counter(monkeypatch):
    nvml = FakeNVML()
    nvml.nvmlDeviceGetTotalEnergyConsumption = lambda h: 1234  # a counter that never steps
    monkeypatch.setattr(telemetry, "pynvml", nvml)
    monkeypatch.setattr(telemetry, "ENERGY_TAIL_S", 1.0)
    t0 = time.time()
    with Sampler(handle="gpu0", period_s=0.001):
        pass
    assert time.time() - t0 >= 1.0  # a normal exit waits for a step, up to ENERGY_TAIL_S
    t0 = time.time()
    with pytest.raises(KeyboardInterrupt):
        with Sampler(handle="gpu0", period_s=0.001):
            raise KeyboardInterrupt
    assert time.time() - t0 < 0.5


def test_no_wait_for_the_counter_when_no_window_is_long_enough_to_measure(monkeypatch):
    nvml = FakeNVML()  # a counter stepping every 10 ms: windows of 0.4 s and more can be measured
    monkeypatch.setattr(telemetry, "pynvml", nvml)
    waited = []
    monkeypatch.setattr(Sampler, "_await_counter_step", lambda self, after, timeout: waited.append(after))
    for longest, wait in ((0.05, False), (5.0, True)):
        with Sampler(handle="gpu0", period_s=0.001) as s:
            time.sleep(0.15)  # enough steps to read the counter's resolution
            s.windows_timed(longest)
        assert bool(waited) == wait, (longest, waited)
        waited.clear()
    # Before the counter's resolution is known, the block waits as it always did.
    with Sampler(handle="gpu0", period_s=0.001) as s:
        s.windows_timed(0.001)
    assert waited
    assert telemetry.min_window_s([(0.0, None), (1.0, None)]) is None
    assert telemetry.min_window_s(counter(500.0)) == pytest.approx((0.1 + 2 * 0.005) / MAX_ENERGY_UNCERTAINTY,
                                                                   rel=0.07)


def test_unsupported_counter_is_stated_and_the_other_readings_still_come(monkeypatch):
    monkeypatch.setattr(telemetry, "pynvml", FakeNVML(energy=False))
    with Sampler(handle="gpu0", period_s=0.001) as s:
        t0 = time.time()
        time.sleep(0.05)
        t1 = time.time()
    assert s.summary([(t0, t1)])["sm_clock_mhz"]["p50"] == 1755
    e = s.energy([(t0, t1)], calls=1)
    assert e == {"not_measured": "the energy counter is not readable on this GPU (Not Supported)"}
    assert all(r[6] is None for r in s.rows)


def test_without_nvml_energy_is_not_measured():
    with Sampler(None) as s:
        pass
    assert s.summary([(0.0, 1e12)]) is None
    assert "no NVML" in s.energy([(0.0, 1.0)], calls=1)["not_measured"]
    assert threading.active_count() >= 1  # no thread was left behind by the block


def test_summary_picks_the_rows_of_each_interval():
    s = Sampler(None)
    s.rows = [(float(t), 1000 + t, 3201, 400.0 + t, 50, 0x4 if t == 7 else 0, None) for t in range(10)]
    out = s.summary([(2.0, 3.0), (7.0, 7.0)])
    assert out["samples"] == 3 and out["sm_clock_mhz"]["max"] == 1007 and out["throttle"] == ["sw_power_cap"]
    assert s.summary([(10.5, 11.0)]) is None


# ---------------------------------------------------------------- clock and power settings

class FakeSettings:
    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2
    nvmlClocksEventReasonApplicationsClocksSetting = 0x2

    def __init__(self, app=(1980, 3201), default=(1980, 3201), mask=0, fail=False):
        self.app, self.default, self.mask, self.fail = app, default, mask, fail

    def _maybe_fail(self):
        if self.fail:
            raise RuntimeError("Not Supported")

    def nvmlDeviceGetApplicationsClock(self, h, c):
        self._maybe_fail()
        return self.app[c - 1]

    def nvmlDeviceGetDefaultApplicationsClock(self, h, c):
        self._maybe_fail()
        return self.default[c - 1]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        self._maybe_fail()
        return self.mask


@pytest.mark.parametrize("nvml, limits, expect", [
    (FakeSettings(), (700.0, 700.0), dict(applications_clocks_set=False, clocks_locked=False,
                                          power_limit_below_default=False)),
    (FakeSettings(mask=0x2), (700.0, 700.0), dict(applications_clocks_set=False, clocks_locked=True)),
    (FakeSettings(app=(1410, 3201), mask=0x2), (700.0, 700.0), dict(applications_clocks_set=True, clocks_locked=None)),
    (FakeSettings(), (500.0, 700.0), dict(power_limit_below_default=True)),
    (FakeSettings(fail=True), (None, 700.0), dict(applications_clocks_set=None, clocks_locked=None,
                                                 power_limit_below_default=None)),
])
def test_clock_and_power_settings_are_read_never_guessed(nvml, limits, expect):
    got = env.clock_settings("gpu0", nvml, *limits)
    assert {k: got[k] for k in expect} == expect


def test_settings_without_nvml_are_unknown():
    got = env.clock_settings(None, None, 700.0, 700.0)
    assert got["clocks_locked"] is None and got["applications_clocks_set"] is None
    assert got["power_limit_below_default"] is False


# ---------------------------------------------------------------- which measurement a record gets

class _Readings:
    """A sampler stand-in that holds fixed counter readings."""
    energy_problem = None

    def __init__(self, readings, throttle_at=None):
        # (t, SM MHz, mem MHz, W, C, clock-event mask, mJ): the power cap's bit from `throttle_at` on.
        self.rows = [(t, 1980, 3201, 600.0, 50, 0x4 if throttle_at is not None and t >= throttle_at else 0, e)
                     for t, e in readings]
        self._times = []

    energy, step_energy, _counter_readings = Sampler.energy, Sampler.step_energy, Sampler._counter_readings
    summary, _inside = Sampler.summary, Sampler._inside


def _timing(run=None, intervals=((1003.0, 1003.5),)):
    from suite import timing
    window = None if run is None else {"interval": run, "calls": 500, "seconds_per_call": 1e-3}
    return timing.Timing([1e-3] * 4, "cuda-graph", 1, 8, list(intervals), True, energy_window=window)


def test_an_energy_run_too_short_for_the_bracket_is_measured_between_steps():
    from suite import runner
    e = runner._energy(_Readings(counter(idle_run_idle())), _timing(run=(1003.0, 1003.5)))
    assert e["method"] == telemetry.STEP_METHOD and e["over"] == "energy run"
    assert "too short" in e["bracket"] and abs(e["watts"] / 650.0 - 1) <= e["uncertainty"]


def test_an_energy_run_carries_its_own_readings():
    from suite import runner
    readings = counter(idle_run_idle())
    e = runner._energy(_Readings(readings, throttle_at=1003.3), _timing(run=(1003.0, 1003.5)))
    t = e["telemetry"]
    assert t["samples"] == sum(1003.0 <= r[0] <= 1003.5 for r in readings) and t["throttle"] == ["sw_power_cap"]
    assert "telemetry" not in runner._energy(_Readings(readings), _timing())  # the rounds have their own
    quiet = runner._energy(_Readings(readings, throttle_at=1003.6), _timing(run=(1003.0, 1003.5)))
    assert quiet["telemetry"]["throttle"] == []  # the cap's bit after the run is not the run's


def test_timed_rounds_are_never_measured_between_steps():
    # Rounds alternate implementations: a span between two steps would hold the others' power.
    from suite import runner
    e = runner._energy(_Readings(counter(idle_run_idle())), _timing())
    assert "not_measured" in e and e["over"] == "timed rounds" and "between_steps" not in e


def test_a_long_energy_run_keeps_the_bracket():
    from suite import runner
    readings = counter(idle_run_idle(run=(1002.0, 1007.0)))
    e = runner._energy(_Readings(readings), _timing(run=(1002.0, 1007.0), intervals=[(1002.0, 1007.0)]))
    assert e["method"] == telemetry.ENERGY_METHOD and "bracket" not in e


def test_a_run_neither_measurement_resolves_says_both_reasons():
    from suite import runner
    e = runner._energy(_Readings(counter(idle_run_idle())), _timing(run=(1003.0, 1003.2)))
    assert "too short" in e["not_measured"] and "two are needed" in e["between_steps"]
