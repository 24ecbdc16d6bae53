"""The sweep: for each (workload, case, dtype), build inputs, verify every
implementation against the float64 reference, time the verified ones together,
and append one record per implementation.

Failures stay local: a case that runs out of memory, fails to compile or fails
verification is recorded with its reason and the sweep goes on. Records are
appended and flushed one by one, so an interrupted sweep keeps everything it
measured and `--resume` skips it.
"""
from __future__ import annotations

import datetime as _dt
import gc
import itertools
import math
import os
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from analysis.records import Record, gpu_key
from suite import timing, verify
from suite.results import RecordWriter, recorded_keys
from suite.dtypes import DTYPES, unsupported_reason
from suite.registry import Skip, Workload, case_id
from suite.telemetry import Sampler

MAX_INPUT_SETS = 64


@dataclass(frozen=True)
class Task:
    workload: Workload
    params: dict
    dtype: str

    @property
    def case(self) -> str:
        return case_id(self.params)


def plan(workloads: Iterable[Workload], mode: str, dtypes: Iterable[str] | None = None,
         sizes: Iterable[str] | None = None) -> list[Task]:
    """Every (workload, case, dtype) of the sweep, in order. `sizes` filters by case label or id."""
    dtypes = set(dtypes) if dtypes else None
    sizes = set(sizes) if sizes else None
    tasks = []
    for w in workloads:
        for params in w.cases[mode]:
            if sizes and w.case_label(params) not in sizes and case_id(params) not in sizes:
                continue
            for d in w.dtypes:
                if dtypes is None or d in dtypes:
                    tasks.append(Task(w, dict(params), d))
    return tasks


@dataclass
class Context:
    device: str  # "cuda:N" or "cpu"
    env: dict
    interpret: bool
    policy: timing.TimingPolicy
    run_id: str
    seed: int = 0
    nvml: object = None  # NVML handle of the device, None where NVML is unavailable

    @property
    def capability(self):
        return None if self.interpret else tuple(self.env["gpu"]["cc"])

    @property
    def l2_bytes(self) -> int:
        return self.env["gpu"].get("l2_bytes") or 0

    @property
    def gpu_key(self) -> str:
        return gpu_key(self.env)


def settle(seconds: float, device: str) -> None:
    """Run large bf16 matrix products for `seconds` so clocks and power reach
    the steady state the sweep will run in (a cold GPU boosts higher for a while)."""
    if seconds <= 0:
        return
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(8):
            a @ a
        torch.cuda.synchronize()
    del a


def describe_error(e: BaseException) -> str:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return "out of memory: " + str(e).split(". ")[0]
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}"[:400]


def _free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _rotating(fns: list[Callable[[], object]]) -> Callable[[], object]:
    if len(fns) == 1:
        return fns[0]
    it = itertools.cycle(fns)
    return lambda: next(it)()


def _generator(ctx: Context, task: Task) -> torch.Generator:
    g = torch.Generator(device=ctx.device)
    g.manual_seed(zlib.crc32(f"{ctx.seed}|{task.workload.name}|{task.case}|{task.dtype}".encode()))
    return g


def _input_sets(task: Task, ctx: Context) -> list[dict]:
    """One input set, or enough to rotate past `rotate_past_l2` times the L2
    (bounded by MAX_INPUT_SETS and by half the free device memory)."""
    w = task.workload
    gen = _generator(ctx, task)
    first = w.make_inputs(task.params, task.dtype, ctx.device, gen)
    n = 1
    if w.rotate_past_l2 and not ctx.interpret and ctx.l2_bytes:
        footprint = max(1, w.bytes(task.params, task.dtype))
        n = min(MAX_INPUT_SETS, math.ceil(w.rotate_past_l2 * ctx.l2_bytes / footprint))
        free, _ = torch.cuda.mem_get_info(torch.device(ctx.device))
        n = max(1, min(n, int(0.5 * free // footprint)))
    return [first] + [w.make_inputs(task.params, task.dtype, ctx.device, gen) for _ in range(n - 1)]


def _output_nbytes(out) -> int:
    return out.numel() * out.element_size() if isinstance(out, torch.Tensor) else 0


def run_task(task: Task, ctx: Context, write: Callable[[Record], None], done: set[tuple] = frozenset()) -> None:
    """Verify and time every implementation of one (workload, case, dtype); write their records."""
    w, params, dtype = task.workload, task.params, task.dtype
    impls = [i for i in w.impls_for(dtype) if (w.name, task.case, dtype, i.name, ctx.gpu_key) not in done]
    if not impls:
        return
    base = dict(workload=w.name, family=w.family, view=w.view_name, roof=w.roof, dtype=dtype, params=params,
                case=task.case,
                label=w.case_label(params), flops=int(w.flops(params, dtype)), bytes=int(w.bytes(params, dtype)),
                env=ctx.env, run_id=ctx.run_id, suite_version=ctx.env.get("suite_version", ""))

    def emit(impl, status, reason="", **fields):
        moved = w.moved_bytes(params, dtype, impl.name) if w.moved_bytes else None
        write(Record(**base, impl=impl.name, vendor=impl.vendor, role=impl.role, backend=impl.backend,
                     launches=impl.launches_for(params, dtype), status=status, reason=reason, moved_bytes=moved,
                     timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(), **fields))

    reason = unsupported_reason(dtype, ctx.capability) or (w.skip(params, dtype, ctx.device) if w.skip else None)
    if reason:
        for impl in impls:
            emit(impl, "skipped", reason)
        return

    try:
        sets = _input_sets(task, ctx)
    except Exception as e:
        for impl in impls:
            emit(impl, "failed", "building inputs: " + describe_error(e))
        _free_memory(ctx.device)
        return

    tolerance = w.tolerance.get(dtype, DTYPES[dtype].tolerance)
    ref = None
    out_nbytes = 0
    verified: dict[str, tuple] = {}
    for impl in impls:
        try:
            fns = [impl.prepare(s) for s in sets]
            verify.poison(sets[0])
            # An implementation that allocates its output could be handed the
            # block that held the previous implementation's (correct) output.
            verify.poison_allocator(out_nbytes, ctx.device)
            out = fns[0]()
            if ctx.device.startswith("cuda"):
                torch.cuda.synchronize()
            if ref is None:
                ref = w.reference(sets[0], params, dtype)
            err = verify.rel_error(w.check_view(out, params) if w.check_view else out, ref)
            out_nbytes = out_nbytes or _output_nbytes(out)
            del out
            config = impl.config(sets[0]) if impl.config else None
            check = {"rel_err": err, "tolerance": tolerance}
            if not err <= tolerance:
                emit(impl, "failed", f"verification failed: rel_err {err:.3g} > tolerance {tolerance:.3g}",
                     verify=check, config=config)
                continue
            verified[impl.name] = (impl, _rotating(fns), check, config)
        except Skip as e:
            emit(impl, "skipped", str(e))
        except Exception as e:
            emit(impl, "failed", describe_error(e))
            _free_memory(ctx.device)
    del ref

    if verified:
        for name, result in _time(verified, ctx, len(sets)).items():
            impl, _, check, config = verified[name]
            if isinstance(result, BaseException):
                emit(impl, "failed", "timing: " + describe_error(result), verify=check, config=config)
            else:
                t, telemetry = result
                # input_sets > 1: the data rotated past L2, so the figure is a DRAM one.
                emit(impl, "ok", time_s=timing.summarize(t.samples), timing={**t.describe(), "input_sets": len(sets)},
                     verify=check, config=config, telemetry=telemetry)
    del sets, verified
    _free_memory(ctx.device)


def _time(verified: dict[str, tuple], ctx: Context, n_sets: int) -> dict[str, object]:
    """Time the verified implementations together (alternating); if that fails,
    each alone, so a failure is pinned on the implementation that caused it."""
    fns = {name: v[1] for name, v in verified.items()}
    if ctx.interpret:
        return {n: (t, None) for n, t in timing.time_on_cpu(fns).items()}
    try:
        return _time_group(fns, ctx, n_sets)
    except Exception:
        _free_memory(ctx.device)
    results: dict[str, object] = {}
    for name, fn in fns.items():
        try:
            results.update(_time_group({name: fn}, ctx, n_sets))
        except Exception as e:
            results[name] = e
            _free_memory(ctx.device)
    return results


def _time_group(fns, ctx: Context, n_sets: int) -> dict[str, tuple]:
    with Sampler(ctx.nvml) as sampler:
        timings = timing.time_on_gpu(fns, ctx.policy, inner_multiple=n_sets)
    return {n: (t, sampler.summary(t.intervals)) for n, t in timings.items()}


def run_sweep(tasks: list[Task], ctx: Context, out_path: Path, resume: bool, progress: bool = True) -> RecordWriter:
    """Run `tasks`, appending records to `out_path`. KeyboardInterrupt propagates
    after the records written so far are safely on disk."""
    from tqdm import tqdm

    done = recorded_keys(out_path) if resume else set()
    writer = RecordWriter(out_path)
    try:
        bar = tqdm(tasks, desc="sweep", unit="case", file=sys.stderr, disable=not progress, dynamic_ncols=True)
        for task in bar:
            bar.set_postfix_str(f"{task.workload.name} {task.workload.case_label(task.params)} {task.dtype}",
                                refresh=False)
            run_task(task, ctx, writer, done)
    finally:
        writer.close()
    return writer
