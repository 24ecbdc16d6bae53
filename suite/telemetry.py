"""What the GPU was doing while it was measured: NVML sampled in a background thread.

Clocks, power, temperature and clock-event ("throttle") reasons are sampled
every few milliseconds over a whole case; each implementation's record gets the
samples that fall inside its own timed intervals. Throttle reason names come
from pynvml's constants, not from a table of ours.
"""
from __future__ import annotations

import threading
import time

import numpy as np

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but reports must not need it
    pynvml = None


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
    bits = _reason_bits()
    return sorted(bits[b] for b in bits if mask & b)


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


class Sampler:
    """Background NVML sampler. Use as a context manager around a case."""

    def __init__(self, handle, period_s: float = 0.005):
        self.handle = handle
        self.period_s = period_s
        self.rows: list[tuple[float, float, float, float, float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self):
        h = self.handle
        return (time.time(),
                pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
                pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
                pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
                _clock_event_mask(h))

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.rows.append(self._read())
            except Exception:
                return  # NVML stopped answering: keep what was read
            self._stop.wait(self.period_s)

    def __enter__(self):
        if self.handle is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()

    def summary(self, intervals: list[tuple[float, float]]) -> dict | None:
        """Readings inside the given host-time intervals (an implementation's timed chunks)."""
        rows = [r for r in self.rows if any(a <= r[0] <= b for a, b in intervals)]
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


def _clock_event_mask(h) -> int:
    fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(fn(h))
