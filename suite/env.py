"""The conditions a run is taken under: GPU identity and limits, software versions, host."""
from __future__ import annotations

import os
import platform
import socket
import sys

import suite


def _versions() -> dict:
    import numpy
    import torch
    import triton

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
            "cudnn": cudnn, "numpy": numpy.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "suite_version": suite.__version__, "git_commit": _git_commit(),
            "source_digest": source_digest()}


def _git_commit() -> str | None:
    """The suite's git commit ("-dirty" with uncommitted changes), where it runs from a checkout."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=os.path.dirname(os.path.abspath(suite.__file__)),
                              capture_output=True, text=True, timeout=5)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


# What the measurements depend on: the kernels, the harness and the analysis.
_SOURCE_DIRS = ("kernels", "suite", "analysis")


def source_digest(root: str | None = None) -> str:
    """sha256 (first 16 hex digits) of the suite's Python sources and spec data.

    A git commit alone can mislead: a working tree copied onto another machine
    over an older checkout reports that checkout's commit ("-dirty"). The
    digest names the code itself; the same digest at a commit means the same
    code (`python -m suite env` prints it for a checkout).
    """
    import hashlib

    root = root or os.path.dirname(os.path.dirname(os.path.abspath(suite.__file__)))
    h = hashlib.sha256()
    for top in _SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith((".py", ".json")):
                    path = os.path.join(dirpath, name)
                    h.update(os.path.relpath(path, root).encode() + b"\0")
                    with open(path, "rb") as f:
                        h.update(f.read() + b"\0")
    return h.hexdigest()[:16]


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The host CPU's model name (launch and host overheads depend on it as much as on the GPU):
    Linux's /proc/cpuinfo "model name", else what the platform reports, else None."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _distributed() -> dict:
    return {"rank": int(os.environ.get("RANK", 0)), "world_size": int(os.environ.get("WORLD_SIZE", 1)),
            "local_rank": int(os.environ.get("LOCAL_RANK", 0))}


def gpu_info(index: int) -> dict:
    """torch's view of device `index`, completed by NVML (clocks, power limits, driver)."""
    import torch

    from suite.telemetry import nvml_handle, pynvml

    p = torch.cuda.get_device_properties(index)
    uuid = str(p.uuid)
    info = {"index": index, "name": p.name, "uuid": uuid if uuid.startswith("GPU-") else "GPU-" + uuid,
            "cc": [p.major, p.minor], "sm_count": p.multi_processor_count,
            "l2_bytes": getattr(p, "L2_cache_size", None), "mem_bytes": p.total_memory,
            "max_sm_clock_mhz": None, "max_mem_clock_mhz": None, "power_limit_w": None,
            "default_power_limit_w": None, "driver": None}
    h = nvml_handle(index)
    if h is not None:
        for key, read in (
            ("max_sm_clock_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
            ("max_mem_clock_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM)),
            ("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
            ("default_power_limit_w", lambda: pynvml.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000.0),
            ("driver", lambda: _str(pynvml.nvmlSystemGetDriverVersion())),
        ):
            try:
                info[key] = read()
            except Exception:
                pass  # a reading NVML refuses stays None: unknown, not guessed
    info.update(clock_settings(h, pynvml, info.get("power_limit_w"), info.get("default_power_limit_w")))
    return info


def clock_settings(h, nvml, power_limit_w, default_power_limit_w) -> dict:
    """Whether the GPU runs under a user's clock or power setting, as NVML reports it (read only: the
    suite never sets clocks or limits). None where NVML cannot tell.

    applications_clocks_set: the application clocks differ from their defaults.
    clocks_locked: NVML has no getter for locked clocks. True: its clock-event reason for a clock
      setting (raised by application clocks and locked clocks alike) is active while the application
      clocks are at their defaults, so a lock holds the clocks. False: no setting holds them now (a
      lock at clocks the GPU would not exceed anyway does not show). None: application clocks are
      set (the two cannot be told apart) or the reason cannot be read.
    power_limit_below_default: the enforced power limit is below the default limit.
    """
    out = {"applications_clocks_mhz": None, "default_applications_clocks_mhz": None,
           "applications_clocks_set": None, "clocks_locked": None, "power_limit_below_default": None}
    if power_limit_w is not None and default_power_limit_w is not None:
        out["power_limit_below_default"] = power_limit_w < default_power_limit_w
    if h is None or nvml is None:
        return out
    try:
        domains = (nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM)
        app = [nvml.nvmlDeviceGetApplicationsClock(h, c) for c in domains]
        default = [nvml.nvmlDeviceGetDefaultApplicationsClock(h, c) for c in domains]
        out["applications_clocks_mhz"], out["default_applications_clocks_mhz"] = app, default
        out["applications_clocks_set"] = app != default
    except Exception:
        pass  # not supported on this GPU: unknown
    try:
        fn = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        setting = getattr(nvml, "nvmlClocksEventReasonApplicationsClocksSetting", None) or \
            nvml.nvmlClocksThrottleReasonApplicationsClocksSetting
        active = bool(int(fn(h)) & setting)
    except Exception:
        return out
    if not active:
        out["clocks_locked"] = False
    elif out["applications_clocks_set"] is False:
        out["clocks_locked"] = True
    return out


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def collect(device_index: int | None, interpret: bool = False, command: str | None = None) -> dict:
    """The `env` block every record carries."""
    env = {"host": socket.gethostname(), "cpu": cpu_model(), "interpret": interpret, **_distributed(),
           **_versions(), "command": command if command is not None else " ".join(sys.argv)}
    if interpret or device_index is None:
        env["gpu"] = {"index": None, "name": "cpu (Triton interpreter)", "uuid": None, "cc": None,
                      "sm_count": None, "l2_bytes": None, "mem_bytes": None}
        env["driver"] = None
    else:
        env["gpu"] = gpu_info(device_index)
        env["driver"] = env["gpu"].pop("driver")
    return env
