"""How the GEMM family's kernels are tuned and recorded, and the split-K scratch they share.

The tuners (`kernels.gemm`, `kernels.sgemm`, `kernels.skinny`) time each candidate by device
time and prune candidate sets per call with `pruner`; every launch keeps what it ran with
(`record`), which `chosen_config` hands to the records.
"""
from __future__ import annotations

import math

import torch
import triton

from kernels.tuning import chosen, device_time_ms, record_choice


def autotune_bench(kernel_call, quantiles):
    """Short timing per candidate (the sweep times the winner properly). A candidate this GPU or
    Triton build fails to compile ranks last instead of aborting the run; if all fail, the final
    launch raises the real error."""
    try:
        return device_time_ms(kernel_call, quantiles)  # device time, not launch time (kernels.tuning)
    except Exception:  # noqa: BLE001 - a compiler rejection of one candidate
        return [float("inf")] * len(quantiles)


def fits(config, M, N) -> bool:
    # A tile much larger than the problem only computes padding.
    return config.kwargs["BM"] <= max(64, M) and config.kwargs["BN"] <= max(64, 2 * N)


def pruner(k_slice_bytes: int | None):
    """Early pruning: keep the candidates made for this operand size (a fixed K-slice width in
    bytes; None: the set serves one size) that fit the problem, else the smallest."""
    def prune(configs, named_args, **kwargs):
        mine = configs
        if k_slice_bytes is not None:
            esize = named_args["a_ptr"].element_size()
            mine = [c for c in configs if c.kwargs["BK"] * esize == k_slice_bytes]
            if esize == 4 and not kwargs.get("B_KMAJOR", True):
                # Triton 3.6 cannot warp-specialize a tf32 MMA whose B must be transposed on the way.
                mine = [c for c in mine if not c.kwargs.get("WARP_SPECIALIZE")]
        fitting = [c for c in mine if fits(c, named_args["M"], named_args["N"])]
        return fitting or mine[-1:]
    return prune


def chosen_config(op: str, M: int, N: int, K: int, dtype: torch.dtype, precision: str | None = None) -> dict | None:
    """What the last launch of `op` ("matmul", "matmul_fp8", "linear") on this shape and input
    dtype ran, as a JSON-ready dict: kernel, tile sizes, warps, stages, grid, whether the
    configuration was tuned in this process or taken from the tuning store, and, when it was
    tuned here, each candidate's time in ms. `precision` ("ieee"/"tf32") matters only for float32
    inputs."""
    return chosen("gemm", record_key(op, M, N, K, dtype, precision))


def record_key(op, M, N, K, dtype, precision):
    return (op, M, N, K, str(dtype), precision if dtype == torch.float32 else None)


def record(key, kernel_name, run, grid, **extra):
    """Keep what a launch ran: `run` is kernels.tuning.launch_autotuned's answer (or a fixed
    configuration's stand-in)."""
    if not run.get("fresh", True):
        return  # recorded when this problem's configuration was decided
    config = run["config"]
    entry = {"kernel": kernel_name, **config.kwargs, "num_warps": config.num_warps,
             "num_stages": config.num_stages, "grid": list(grid), "tuning": run["source"],
             "tuned_at": {"M": key[1], "N": key[2], "K": key[3], "dtype": key[4]}, **extra}
    if getattr(config, "maxnreg", None):
        entry["maxnreg"] = config.maxnreg
    if run.get("timings"):
        # None marks a candidate that did not compile here (JSON has no infinity).
        entry["autotune_ms"] = {config_label(c): (float(t[0]) if math.isfinite(t[0]) else None)
                                for c, t in run["timings"].items()}
    record_choice("gemm", key, entry)


def fixed(config: triton.Config) -> dict:
    return {"config": config, "source": "fixed", "timings": None}


def config_label(c: triton.Config) -> str:
    k = c.kwargs
    label = f"{k['BM']}x{k['BN']}x{k['BK']} w{c.num_warps} s{c.num_stages}"
    if k.get("WARP_SPECIALIZE"):
        label += " ws"
    if k.get("EPILOGUE_SPLIT", 1) > 1:
        label += f" epi/{k['EPILOGUE_SPLIT']}"
    if k.get("TAIL"):
        label += " tail"
    if c.maxnreg:
        label += f" r{c.maxnreg}"
    if "USE_TMA" in k:
        label += (" tma+x" if k.get("X_TMA") else " tma") if k["USE_TMA"] else " cp.async"
    return label


_WORKSPACE: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
_OUTGROWN: list[torch.Tensor] = []  # replaced workspaces, kept: captured CUDA graphs may still use them


def split_workspace(device: torch.device, partials: int, bands: int) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 partial sums and arrival counters for split-K (the skinny kernel's bands, the
    persistent kernel's tail tiles), grown on demand and kept: the counters start at zero and
    the last split of each band or tile re-arms its own, so there is no memset per call. One
    stream at a time: `linear` and `matmul` calls running concurrently on several streams would
    share the counters."""
    p, c = _WORKSPACE.get(device, (None, None))
    if p is None or p.numel() < partials:
        _OUTGROWN.extend([p] if p is not None else [])
        p = torch.empty(max(partials, 1), device=device, dtype=torch.float32)
    if c is None or c.numel() < bands:
        _OUTGROWN.extend([c] if c is not None else [])
        c = torch.zeros(max(bands, 1), device=device, dtype=torch.int32)
    _WORKSPACE[device] = (p, c)
    return p, c
