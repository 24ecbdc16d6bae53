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
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from analysis.records import Record, gpu_key
from suite import timing, verify
from suite.results import RecordWriter, recorded_keys
from suite.dtypes import unsupported_reason
from suite.registry import Impl, Skip, Workload, case_id
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
            for d in w.dtypes_for(mode):
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


def configure_tuning(ctx: Context, retune: bool = False, directory: str | Path | None = None) -> str | None:
    """Keep the kernels' tuning choices across runs, in the user's cache directory (or `directory`),
    per GPU model, SM count, driver, CUDA, torch and triton; with `retune`, tune anew. Returns the
    store's file, or None where nothing is tuned (the interpreter)."""
    from kernels import tuning

    if ctx.interpret:
        tuning.configure(None, {})
        return None
    if directory is None:
        import platformdirs

        directory = Path(platformdirs.user_cache_dir("gpu-roofline-suite")) / "tuning"
    gpu = ctx.env["gpu"]
    identity = {"gpu": gpu.get("name"), "sm_count": gpu.get("sm_count"), "cc": gpu.get("cc"),
                "driver": ctx.env.get("driver"), "cuda": ctx.env.get("cuda"), "torch": ctx.env.get("torch"),
                "triton": ctx.env.get("triton")}
    tuning.configure(directory, identity, retune)
    return tuning.store_path()


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


def _sync(ctx: Context) -> None:
    if ctx.device.startswith("cuda"):
        torch.cuda.synchronize()


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


@dataclass
class Verified:
    """An implementation whose output passed verification, ready to be timed."""
    impl: Impl
    fn: Callable[[], object]  # one call; rotates over the input sets
    check: dict  # the record's `verify` field
    config: dict | None  # the kernel configuration it ran with
    setup_s: float  # preparing it and its first calls (tuning and compiles)
    verify_s: float  # the verified call and the comparison


@dataclass
class Prepared:
    """One (workload, case, dtype): its input sets, the implementations that passed verification,
    and those that did not (with the status, reason and fields of their record)."""
    task: Task
    sets: list
    verified: dict  # impl name -> Verified
    rejected: list  # (impl, status, reason, fields)

    def release(self) -> None:
        self.sets, self.verified = [], {}


def make_record(task: Task, ctx: Context, impl: Impl, status: str, reason: str = "", **fields) -> Record:
    """The record of one implementation of `task`: the declaration's facts, the run's conditions
    and `fields` (time_s, timing, verify, config, telemetry, energy, wall, ...)."""
    w, params, dtype = task.workload, task.params, task.dtype
    moved = w.moved_bytes(params, dtype, impl.name) if w.moved_bytes else None
    return Record(workload=w.name, family=w.family, view=w.view_name, roof=w.roof, dtype=dtype, params=params,
                  case=task.case, label=w.case_label(params), flops=int(w.flops(params, dtype)),
                  bytes=int(w.bytes(params, dtype)), env=ctx.env, run_id=ctx.run_id,
                  suite_version=ctx.env.get("suite_version", ""), impl=impl.name, vendor=impl.vendor,
                  role=impl.role, backend=impl.backend, launches=impl.launches_for(params, dtype), status=status,
                  reason=reason, moved_bytes=moved, timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(),
                  **fields)


def skip_reason(task: Task, capability, device: str) -> str | None:
    """Why `task` cannot run on this device at all (its dtype, or the workload's own rule), or None."""
    w = task.workload
    return unsupported_reason(task.dtype, capability) or (w.skip(task.params, task.dtype, device) if w.skip else None)


def prepare_case(task: Task, ctx: Context, impls: list[Impl] | None = None) -> Prepared:
    """Build the inputs of `task` and verify each implementation (all of the workload's for the
    dtype, or `impls`); never raises for a case's own failure, which lands in `rejected`."""
    w, params, dtype = task.workload, task.params, task.dtype
    impls = list(w.impls_for(dtype) if impls is None else impls)
    prepared = Prepared(task, [], {}, [])
    reason = skip_reason(task, ctx.capability, ctx.device)
    if reason:
        prepared.rejected = [(impl, "skipped", reason, {}) for impl in impls]
        return prepared
    try:
        sets = _input_sets(task, ctx)
    except Exception as e:
        prepared.rejected = [(impl, "failed", "building inputs: " + describe_error(e), {}) for impl in impls]
        _free_memory(ctx.device)
        return prepared
    prepared.sets = sets

    ref = None
    out_nbytes = 0
    for impl in impls:
        try:
            t0 = time.perf_counter()
            fns = [impl.prepare(s) for s in sets]
            # The first call tunes and compiles: an autotuner runs every candidate into the output,
            # so it proves nothing about the configuration chosen. The verified call comes after,
            # on freshly poisoned outputs.
            first = fns[0]()
            _sync(ctx)
            out_nbytes = out_nbytes or _output_nbytes(first)
            del first
            verify.poison(sets[0])
            # An implementation that allocates its output could be handed the block that held an
            # earlier (correct) output: the free blocks are poisoned too.
            verify.poison_allocator(out_nbytes, ctx.device)
            t1 = time.perf_counter()
            out = fns[0]()
            _sync(ctx)
            if ref is None:
                ref = verify.as_expected(w.reference(sets[0], params, dtype))
            check = verify.check_output(w, out, ref, params, dtype)
            del out
            config = impl.config(sets[0]) if impl.config else None
            why = verify.problem(check)
            if why:
                prepared.rejected.append((impl, "failed", f"verification failed: {why}",
                                          {"verify": check, "config": config}))
                continue
            prepared.verified[impl.name] = Verified(impl, _rotating(fns), check, config, t1 - t0,
                                                    time.perf_counter() - t1)
        except Skip as e:
            prepared.rejected.append((impl, "skipped", str(e), {}))
        except Exception as e:
            prepared.rejected.append((impl, "failed", describe_error(e), {}))
            _free_memory(ctx.device)
    del ref
    return prepared


def _to_measure(task: Task, ctx: Context, done: set[tuple]) -> list[Impl]:
    """The implementations of `task` not among the `done` keys (a results file's)."""
    w = task.workload
    return [i for i in w.impls_for(task.dtype) if (w.name, task.case, task.dtype, i.name, ctx.gpu_key) not in done]


def unfinished(tasks: list[Task], ctx: Context, out_path: Path) -> list[Task]:
    """The tasks a --resume of the sweep writing `out_path` still has to measure."""
    done = recorded_keys(out_path)
    return [t for t in tasks if _to_measure(t, ctx, done)]


def run_task(task: Task, ctx: Context, write: Callable[[Record], None], done: set[tuple] = frozenset()) -> None:
    """Verify and time every implementation of one (workload, case, dtype); write their records."""
    impls = _to_measure(task, ctx, done)
    if not impls:
        return
    started = time.perf_counter()
    prepared = prepare_case(task, ctx, impls)
    records = [make_record(task, ctx, impl, status, reason, **fields)
               for impl, status, reason, fields in prepared.rejected]
    if prepared.verified:
        t0 = time.perf_counter()
        results = _time({name: v.fn for name, v in prepared.verified.items()}, ctx, len(prepared.sets))
        timing_s = time.perf_counter() - t0
        for name, result in results.items():
            v = prepared.verified[name]
            wall = {"setup_s": v.setup_s, "verify_s": v.verify_s, "timing_s": timing_s}
            if isinstance(result, BaseException):
                records.append(make_record(task, ctx, v.impl, "failed", "timing: " + describe_error(result),
                                           verify=v.check, config=v.config, wall=wall))
            else:
                t, telemetry, energy = result
                # input_sets > 1: the data rotated past L2, so the figure is a DRAM one.
                record = make_record(task, ctx, v.impl, "ok", time_s=timing.summarize(t.samples, t.round_p50),
                                     timing={**t.describe(), "input_sets": len(prepared.sets)},
                                     verify=v.check, config=v.config, telemetry=telemetry, energy=energy, wall=wall)
                if t.launches is not None:  # counted in its captured graph: what the call really launches
                    record.launches = round(t.launches)
                records.append(record)
    n_sets = len(prepared.sets)
    prepared.release()
    _free_memory(ctx.device)
    case_s = time.perf_counter() - started
    for r in records:
        r.wall = {**(r.wall or {}), "case_s": case_s}
        if n_sets and r.timing is not None:
            r.timing.setdefault("input_sets", n_sets)
        write(r)


def _time(fns: dict[str, Callable[[], object]], ctx: Context, n_sets: int) -> dict[str, object]:
    """Time the verified implementations together (alternating); if that fails,
    each alone, so a failure is pinned on the implementation that caused it."""
    if ctx.interpret:
        return {n: (t, None, None) for n, t in timing.time_on_cpu(fns).items()}
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
        sampler.windows_timed(max((b - a for t in timings.values() for a, b in _energy_windows(t)[0]),
                                  default=0.0))
    return {n: (t, sampler.summary(t.intervals), _energy(sampler, t)) for n, t in timings.items()}


def _energy_windows(t: timing.Timing) -> tuple[list[tuple[float, float]], int]:
    """The windows a record's energy is measured over, and the calls in them: the energy run where
    the sweep made one (--energy), else the alternating rounds' intervals."""
    if t.energy_window is not None:
        return [tuple(t.energy_window["interval"])], t.energy_window["calls"]
    return t.intervals, len(t.samples) * t.inner


def _energy(sampler: Sampler, t: timing.Timing) -> dict:
    """The record's energy: bracketed by the counter's readings around its window; where that
    bracket is too wide and the window is an energy run, measured between the counter's steps
    inside the run (`suite.telemetry.step_energy`), the bracket's reason kept beside it. An energy
    run's own NVML readings go with it: at the power cap they say what the run's clocks were."""
    windows, calls = _energy_windows(t)
    e = sampler.energy(windows, calls=calls)
    run = t.energy_window
    if run is not None and "not_measured" in e:
        steps = sampler.step_energy(tuple(run["interval"]), run["seconds_per_call"], run["calls"])
        e = {**steps, "bracket": e["not_measured"]} if "not_measured" not in steps else \
            {**e, "between_steps": steps["not_measured"]}
    if run is not None:  # the clocks, power readings and throttle reasons of the run itself
        e = {**e, "telemetry": sampler.summary([tuple(run["interval"])])}
    return {**e, "over": "energy run" if run is not None else "timed rounds"}


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
