"""What the GPU was doing while it was measured: NVML sampled in a background thread.

Clocks, power, temperature, clock-event ("throttle") reasons and the total
energy counter are sampled every few milliseconds over a whole case; each
implementation's record gets the samples that fall inside its own timed
intervals. Throttle reason names come from pynvml's constants, not from a table
of ours.

Energy comes from NVML's total-energy counter (millijoules since the driver
loaded), never from power readings: the counter changes in steps, and the
energy of an interval is bracketed by the readings around it (see
`counter_energy`). Where the counter is missing or the window too short for its
steps, the record says "not measured" and why.
"""
from __future__ import annotations

import bisect
import math
import threading
import time

import numpy as np

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but reports must not need it
    pynvml = None

# The largest relative half-width of an energy bracket that is still reported as a measurement.
MAX_ENERGY_UNCERTAINTY = 0.05
# After a case, the sampler waits at most this long for the energy counter to step once more,
# so that the readings bracket the case's last interval.
ENERGY_TAIL_S = 1.0
# Fewest counter steps from which its update period (its resolution) is measured.
MIN_COUNTER_STEPS = 3
ENERGY_METHOD = "nvml total energy counter"
STEP_METHOD = "nvml total energy counter, between its steps"
# Between the counter's steps, the part of a counter period at a run's start whose steps are not
# used: a step may report energy up to this long before it was published.
STEP_MARGIN = 0.5


def _reason_bits() -> dict[int, str]:
    """pynvml's clock-event reason constants, by bit, named without their prefix."""
    bits: dict[int, str] = {}
    if pynvml is None:
        return bits
    for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):  # new name, then the older
        for attr in dir(pynvml):
            if not attr.startswith(prefix):
                continue
            value = getattr(pynvml, attr)
            short = attr[len(prefix):]
            if short in ("None", "All", "Unknown") or not isinstance(value, int) or value & (value - 1):
                continue  # single-bit reasons only
            bits.setdefault(value, _snake(short))
    return bits


def _snake(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(c.lower())
    return "".join(out)


def decode_reasons(mask: int) -> list[str]:
    """The clock-event reasons set in `mask`, in words; a bit pynvml has no name for is kept as
    its hex value rather than dropped."""
    bits = _reason_bits()
    named = sorted(bits[b] for b in bits if mask & b)
    rest = mask & ~sum(bits)
    unknown = [f"unknown_{1 << i:#x}" for i in range(rest.bit_length()) if rest >> i & 1]
    return named + unknown


def nvml_handle(torch_index: int):
    """The NVML handle of torch's device `torch_index` (matched by UUID, so
    CUDA_VISIBLE_DEVICES renumbering cannot pair the wrong GPU)."""
    if pynvml is None:
        return None
    try:
        pynvml.nvmlInit()
        import torch

        uuid = str(torch.cuda.get_device_properties(torch_index).uuid)
        for candidate in (uuid, "GPU-" + uuid):
            try:
                return pynvml.nvmlDeviceGetHandleByUUID(candidate)
            except pynvml.NVMLError:
                continue
        return pynvml.nvmlDeviceGetHandleByIndex(torch_index)
    except Exception:
        return None


def _not_measured(why: str, **known) -> dict:
    return {"not_measured": why, **known}


def _points(readings) -> list[tuple[float, int]]:
    """The (t, mJ) readings that read the counter (a failed read is a gap, never a guess)."""
    return [(float(t), int(e)) for t, e in readings if e is not None]


def _counter(pts):
    """(times, energies, indices of the readings that saw a step, (resolution s, reading period s))
    of time-ordered (t, mJ) readings, or with a reason in place of the last where the readings
    cannot give the counter's resolution."""
    t = np.asarray([p[0] for p in pts])
    e = np.asarray([p[1] for p in pts], dtype=np.int64)
    if np.any(np.diff(e) < 0):
        return t, e, None, "the energy counter went backwards (driver reloaded?)"
    steps = np.flatnonzero(np.diff(e)) + 1  # reading i saw a step made after reading i-1
    if len(steps) < MIN_COUNTER_STEPS:
        return t, e, steps, (f"the energy counter stepped {len(steps)} time(s) in {t[-1] - t[0]:.3f} s of "
                             f"readings: too few to measure its resolution")
    return t, e, steps, (float(np.median(np.diff(t[steps]))), float(np.median(np.diff(t))))


def min_window_s(readings) -> float | None:
    """The shortest single window the counter's resolution allows within MAX_ENERGY_UNCERTAINTY,
    from time-ordered (t, mJ or None) readings; None while the readings cannot tell."""
    pts = _points(readings)
    if len(pts) < 2:
        return None
    _, _, _, found = _counter(pts)
    return None if isinstance(found, str) else (found[0] + 2 * found[1]) / MAX_ENERGY_UNCERTAINTY


def counter_energy(readings, intervals, calls: int) -> dict:
    """Energy of `calls` calls made inside the host-time `intervals` [(t0, t1) unix seconds],
    from time-ordered readings [(t, millijoules)] of NVML's total-energy counter.

    The counter steps at its own update period. For each interval the readings give a bracket:
    the energy between the last reading before t0 and the first step seen wholly after t1 is at
    least the interval's; the energy between the first step seen wholly after t0 and the last
    reading before t1 is at most it. The figure is the middle of the summed brackets, stated with
    their relative half-width; above MAX_ENERGY_UNCERTAINTY it is not a measurement.

    Returns either
        {"joules_per_call", "watts" (mean over the intervals), "joules" (all calls), "calls",
         "window_s" (summed interval lengths), "uncertainty" (relative half-width of the bracket),
         "counter_resolution_s" (median time between the counter's steps, as read),
         "reading_period_s" (median time between readings),
         "min_window_s" (the shortest single window the resolution allows within MAX_ENERGY_UNCERTAINTY:
                         each end of a window adds about one step and two reading periods to the
                         bracket, so (resolution + 2 x reading period) / MAX_ENERGY_UNCERTAINTY),
         "max_uncertainty" (MAX_ENERGY_UNCERTAINTY), "method": "nvml total energy counter"}
    or {"not_measured": why, and whichever of the figures above are known}.
    """
    pts = _points(readings)
    window = float(sum(t1 - t0 for t0, t1 in intervals))
    if not intervals or window <= 0:
        return _not_measured("no timed interval")
    if calls <= 0:
        return _not_measured("no calls in the window", window_s=window)
    if len(pts) < 2:
        return _not_measured("fewer than two readings of the energy counter", window_s=window)
    t, e, steps, found = _counter(pts)
    if isinstance(found, str):
        return _not_measured(found, window_s=window,
                             **({"reading_period_s": float(np.median(np.diff(t)))} if len(t) > 1 else {}))
    resolution, period = found
    known = {"window_s": window, "counter_resolution_s": resolution, "reading_period_s": period,
             "min_window_s": (resolution + 2 * period) / MAX_ENERGY_UNCERTAINTY,
             "max_uncertainty": MAX_ENERGY_UNCERTAINTY}
    low = high = 0
    seen_before = t[steps - 1]  # a step seen at reading i was made after reading i-1
    for t0, t1 in intervals:
        before = np.flatnonzero(t <= t0)
        after = steps[seen_before >= t1]
        if not len(before) or not len(after):
            return _not_measured("the counter's readings do not bracket the window (sampling started after it "
                                 "or stopped before the counter stepped past it)", **known)
        high += int(e[after[0]] - e[before[-1]])
        inner, last = steps[seen_before >= t0], np.flatnonzero(t <= t1)
        if len(inner) and last[-1] >= inner[0]:
            low += int(e[last[-1]] - e[inner[0]])
    if high <= 0:
        return _not_measured("the energy counter did not advance over the window", **known)
    uncertainty = (high - low) / (high + low)
    if uncertainty > MAX_ENERGY_UNCERTAINTY:
        longest = max(t1 - t0 for t0, t1 in intervals)
        need = (f"a single window of at least {known['min_window_s']:.2f} s is needed"
                if longest < known["min_window_s"] else
                f"the window is longer than the {known['min_window_s']:.2f} s the counter's steps alone ask for, "
                f"so readings came late or were missed around its ends; a longer window narrows the bracket")
        return _not_measured(f"the window ({window:.3f} s in {len(intervals)} interval(s)) is too short for the "
                             f"counter's {resolution * 1e3:.1f} ms steps: the energy lies between {low / 1e3:.4g} "
                             f"and {high / 1e3:.4g} J (±{uncertainty:.0%}, more than "
                             f"{MAX_ENERGY_UNCERTAINTY:.0%}); {need}", **known)
    joules = (high + low) / 2 / 1e3
    return {"joules_per_call": joules / calls, "watts": joules / window, "joules": joules, "calls": int(calls),
            "uncertainty": uncertainty, **known, "method": ENERGY_METHOD}


def step_energy(readings, interval: tuple[float, float], seconds_per_call: float, calls: int) -> dict:
    """Energy per call of a call run back to back through the host-time `interval` (one energy
    run), from the counter's own steps inside it: the energy the counter added between the first
    and the last step it made well inside the run, over the time between those two steps, is the
    run's mean power; times the device time per call it is the energy per call.

    This rests on one assumption the bracket of `counter_energy` does not need: each step adds the
    energy used since the previous step, up to a publishing delay shorter than half a counter
    period (`STEP_MARGIN`), which is why a step within that margin of the run's start is not used
    (`tests/gpu/test_energy_gpu.py` holds the assumption to a long bracket on the GPU). In exchange
    a window needs only a few steps: each end's uncertainty is one reading period, not one counter
    period. A step is known only to lie between the reading before it and the one that saw it; the
    power is bracketed by the longest and shortest times the two steps can be apart, the figure is
    the bracket's middle, and above MAX_ENERGY_UNCERTAINTY it is not a measurement.
    """
    pts = _points(readings)
    t0, t1 = interval
    if t1 <= t0 or seconds_per_call <= 0:
        return _not_measured("no timed interval")
    if len(pts) < 2:
        return _not_measured("fewer than two readings of the energy counter", window_s=t1 - t0)
    t, e, steps, found = _counter(pts)
    if isinstance(found, str):
        return _not_measured(found, window_s=t1 - t0)
    resolution, period = found
    margin = STEP_MARGIN * resolution
    # The shortest run that always holds two steps far enough apart for the limit: the steps'
    # span must reach period / limit (each end is placed within one reading period).
    steps_needed = math.ceil(period / MAX_ENERGY_UNCERTAINTY / resolution) + 1
    known = {"window_s": t1 - t0, "counter_resolution_s": resolution, "reading_period_s": period,
             "margin_s": margin, "min_run_s": margin + period + steps_needed * resolution,
             "max_uncertainty": MAX_ENERGY_UNCERTAINTY}
    inside = [int(i) for i in steps if t[i - 1] >= t0 + margin and t[i] <= t1]
    if len(inside) < 2:
        return _not_measured(f"the run ({t1 - t0:.3f} s) holds {len(inside)} of the counter's steps past its first "
                             f"{margin * 1e3:.0f} ms; two are needed, and a run of at least "
                             f"{known['min_run_s']:.2f} s is always measured", **known)
    a, b = inside[0], inside[-1]
    joules = float(e[b] - e[a]) / 1e3
    shortest, longest = float(t[b - 1] - t[a]), float(t[b] - t[a - 1])
    if joules <= 0 or shortest <= 0:
        return _not_measured("the energy counter did not advance between its steps in the run", **known)
    low, high = joules / longest, joules / shortest
    uncertainty = (high - low) / (high + low)
    if uncertainty > MAX_ENERGY_UNCERTAINTY:
        return _not_measured(f"the counter's steps in the run lie {shortest:.3f}-{longest:.3f} s apart: the power lies "
                             f"between {low:.4g} and {high:.4g} W (±{uncertainty:.0%}, more than "
                             f"{MAX_ENERGY_UNCERTAINTY:.0%}); a longer run narrows it", **known)
    watts = (low + high) / 2
    return {"joules_per_call": watts * seconds_per_call, "watts": watts, "joules": joules,
            "span_s": (shortest + longest) / 2, "calls": int(calls),
            "uncertainty": uncertainty, **known, "method": STEP_METHOD}


class Sampler:
    """Background NVML sampler. Use as a context manager around a case."""

    def __init__(self, handle, period_s: float = 0.005):
        self.handle = handle
        self.period_s = period_s
        # (t, sm MHz, mem MHz, W, C, clock-event mask, energy mJ or None)
        self.rows: list[tuple] = []
        # Why energy cannot be read here (None: the counter answers).
        self.energy_problem: str | None = None if handle is not None else \
            "no NVML (nvidia-ml-py missing or no NVML handle for this GPU)"
        self._times: list[float] = []  # the rows' times, for finding an interval's rows
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tail = True  # wait for the counter's step after the block (see windows_timed)

    def _read(self):
        h = self.handle
        t = time.time()
        # The counter is read first, closest to t (a read takes microseconds, far below the period);
        # a failed read leaves a gap in the readings, never a guess.
        energy = None
        if self.energy_problem is None:
            try:
                energy = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(h))
            except Exception:
                pass
        return (t,
                pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
                pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
                pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
                _clock_event_mask(h),
                energy)

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.rows.append(self._read())
            except Exception:
                return  # NVML stopped answering: keep what was read
            self._stop.wait(self.period_s)

    def __enter__(self):
        if self.handle is not None:
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            except Exception as e:  # NVMLError_NotSupported on GPUs without the counter
                self.energy_problem = f"the energy counter is not readable on this GPU ({e})"
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def windows_timed(self, longest_s: float) -> None:
        """Say how long the longest single timed window of this block was: where the counter's
        resolution (read so far) already rules out measuring a window that short, leaving the block
        does not wait for the counter's next step."""
        need = min_window_s(self._counter_readings())
        self._tail = need is None or longest_s >= need

    def __exit__(self, exc_type, *exc):
        if self._thread and self.energy_problem is None and exc_type is None and self._tail:
            self._await_counter_step(time.time(), ENERGY_TAIL_S)
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _await_counter_step(self, after: float, timeout: float) -> None:
        """Keep sampling until the energy counter steps once with both readings after `after`,
        so that the last timed interval is bracketed; at most `timeout` seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline and self._thread.is_alive():
            rows = self.rows[-2:]
            if len(rows) == 2 and rows[0][0] >= after and rows[1][6] != rows[0][6]:
                return
            time.sleep(self.period_s / 2)

    def summary(self, intervals: list[tuple[float, float]]) -> dict | None:
        """Readings inside the given host-time intervals (an implementation's timed chunks)."""
        rows = self._inside(intervals)
        if not rows:
            return None
        a = np.asarray([r[1:5] for r in rows], dtype=np.float64)
        mask = 0
        for r in rows:
            mask |= r[5]

        def stats(col):
            return {"min": float(a[:, col].min()), "p50": float(np.median(a[:, col])), "max": float(a[:, col].max())}

        return {"samples": len(rows), "sm_clock_mhz": stats(0), "mem_clock_mhz": stats(1),
                "power_w": stats(2), "temp_c": stats(3), "throttle": decode_reasons(mask)}

    def _counter_readings(self) -> list[tuple]:
        """(t, energy mJ or None) of every reading so far."""
        return [(r[0], r[6]) for r in self.rows]

    def _inside(self, intervals) -> list[tuple]:
        """The rows read inside any of the intervals, in time order (rows are appended in time order)."""
        if len(self._times) != len(self.rows):
            self._times = [r[0] for r in self.rows]
        picked: set[int] = set()
        for a, b in intervals:
            picked.update(range(bisect.bisect_left(self._times, a), bisect.bisect_right(self._times, b)))
        return [self.rows[i] for i in sorted(picked)]

    def energy(self, intervals: list[tuple[float, float]], calls: int) -> dict:
        """Joules per call and mean watts of `calls` calls made inside the host-time `intervals`,
        from the energy counter (the dict of `counter_energy`), or {"not_measured": why}. Call it
        after the `with` block: leaving it waits for the counter step that closes the window."""
        if self.energy_problem is not None:
            return _not_measured(self.energy_problem)
        return counter_energy(self._counter_readings(), intervals, calls)

    def step_energy(self, interval: tuple[float, float], seconds_per_call: float, calls: int) -> dict:
        """The energy per call of one energy run measured between the counter's steps
        (`step_energy`), or {"not_measured": why}."""
        if self.energy_problem is not None:
            return _not_measured(self.energy_problem)
        return step_energy(self._counter_readings(), interval, seconds_per_call, calls)


def _clock_event_mask(h) -> int:
    fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(fn(h))
