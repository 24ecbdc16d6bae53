"""`python -m suite sustain`: one verified case run back to back for minutes, burst against steady state.

The case is prepared and verified by the sweep's own machinery (runner.prepare_case),
then its closure is launched back to back in chunks of about `chunk_s` seconds, CUDA
events around each chunk, while NVML is sampled in the background
(suite.telemetry.Sampler: clocks, power, temperature, throttle reasons, the energy
counter). The calls of a chunk start at one and grow (at most MAX_GROWTH times per
chunk) to the number that fills `chunk_s`, so the first, cold milliseconds are seen
too, and follow the clocks as they change.

One record is written, like a sweep's (runner.make_record), with view "sustain":
`time_s` holds each chunk's time per call, `telemetry` and `energy` cover the whole
run, and `sustain` holds the time series and its burst/steady summary:

    sustain {"workload_view": the workload's own view, "unit": "flop_per_s" | "bytes_per_s" |
             "tokens_per_s", "work_per_call": FLOPs, bytes or tokens of one call,
             "seconds": asked, "chunk_s", "burst_s", "method": "cuda-events", "interrupted": bool,
             "series": {"t_s": chunk starts since the run's start, "host_s": host seconds of each
                        chunk, "calls", "device_s": device seconds of the chunk's calls,
                        "sm_clock_mhz", "mem_clock_mhz", "power_w", "temp_c": the chunk's NVML
                        medians (null: no reading), "throttle": reasons seen (null: no reading)},
             "energy": {"burst": ..., "steady": ...} (suite.telemetry.counter_energy's dicts),
             "summary": analysis.sustain.summarize of the above}

Throughput is in the workload's natural unit: FLOP/s where a call does FLOPs, bytes/s
where it only moves data, tokens/s (batch / time per call) for a decode step.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from analysis import roofline as rl
from analysis import sustain as analysis_sustain
from analysis.tables import format_sections
from analysis.views import sustain as sustain_view
from suite import env as env_mod
from suite import runner, timing
from suite.errors import EXIT_INTERRUPTED, UsageError, check_device
from suite.registry import case_id
from suite.results import default_out, identity, new_run_id, open_writer, prepare_output
from suite.telemetry import Sampler, nvml_handle
from suite.workloads import all_workloads

DEFAULT_SECONDS = 180.0
DEFAULT_CHUNK_S = 0.2
DEFAULT_BURST_S = 2.0
CHUNK_RANGE_S = (0.02, 1.0)
MAX_GROWTH = 4
MAX_CALLS = 10_000_000
METHOD = "cuda-events"


@dataclass
class Chunk:
    t0: float  # host time (unix seconds) before the first call
    t1: float  # host time after the chunk's end event completed
    calls: int
    device_s: float  # between the CUDA events around the calls


def event_timer(fn: Callable[[], object], calls: int) -> float:
    """Device seconds of `calls` back-to-back calls of `fn`, between two CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def run_chunks(fn: Callable[[], object], seconds: float, chunk_s: float,
               timer: Callable[[Callable[[], object], int], float] = event_timer,
               clock: Callable[[], float] = time.time) -> tuple[list[Chunk], bool]:
    """Chunks of back-to-back calls until `seconds` have passed; (chunks, interrupted). Ctrl-C ends
    the run early and keeps the chunks completed so far."""
    chunks: list[Chunk] = []
    calls = 1
    start = clock()
    try:
        while not chunks or chunks[-1].t1 - start < seconds:
            t0 = clock()
            device = timer(fn, calls)
            t1 = clock()
            if not device > 0:
                raise RuntimeError(f"the timer reported {device!r} s for {calls} call(s)")
            chunks.append(Chunk(t0, t1, calls, device))
            calls = max(1, min(MAX_GROWTH * calls, MAX_CALLS, round(chunk_s * calls / device)))
    except KeyboardInterrupt:
        return chunks, True
    return chunks, False


def throughput_unit(workload, params: dict, dtype: str) -> tuple[str, float]:
    """(unit, work of one call): tokens for a decode step, else FLOPs where there are any, else bytes."""
    if workload.view_name == "decode" and "batch" in params:
        return "tokens_per_s", float(params["batch"])
    flops = workload.flops(params, dtype)
    if flops > 0:
        return "flop_per_s", float(flops)
    return "bytes_per_s", float(workload.bytes(params, dtype))


def _series(chunks: list[Chunk], sampler) -> dict:
    start = chunks[0].t0
    series = {k: [] for k in analysis_sustain.SERIES}
    for c in chunks:
        tel = sampler.summary([(c.t0, c.t1)])
        series["t_s"].append(c.t0 - start)
        series["host_s"].append(c.t1 - c.t0)
        series["calls"].append(c.calls)
        series["device_s"].append(c.device_s)
        for k in analysis_sustain.READINGS:
            series[k].append(tel[k]["p50"] if tel else None)
        series["throttle"].append(tel["throttle"] if tel else None)
    return series


def _window_energy(sampler, chunks: list[Chunk], idx: list[int]) -> dict:
    """The energy counter over a run of consecutive chunks, as one window (the chunks are back to back)."""
    if not idx:
        return {"not_measured": "no chunk in this window"}
    return sampler.energy([(chunks[idx[0]].t0, chunks[idx[-1]].t1)], calls=sum(chunks[i].calls for i in idx))


def sustain_case(task, ctx, impl, *, seconds: float, chunk_s: float = DEFAULT_CHUNK_S,
                 burst_s: float = DEFAULT_BURST_S, timer=event_timer, clock=time.time, sampler_cls=None):
    """Prepare and verify one implementation of `task`, run it back to back for `seconds`, and return
    its one record (view "sustain"): a failed or skipped record when it did not pass verification.
    KeyboardInterrupt propagates only when not one chunk was completed."""
    sampler_cls = sampler_cls or Sampler
    started = time.perf_counter()
    prep = runner.prepare_case(task, ctx, [impl])
    try:
        if impl.name not in prep.verified:
            _, status, reason, fields = prep.rejected[0]
            record = runner.make_record(task, ctx, impl, status, reason, **fields)
            record.view = "sustain"
            return record
        v = prep.verified[impl.name]
        loop_t0 = time.perf_counter()
        try:
            with sampler_cls(ctx.nvml) as sampler:
                chunks, interrupted = run_chunks(v.fn, seconds, chunk_s, timer, clock)
        except Exception as e:  # a launch that fails mid-run (out of memory, a device error) is this case's
            record = runner.make_record(task, ctx, impl, "failed", "sustain loop: " + runner.describe_error(e),
                                        verify=v.check, config=v.config)
            record.view = "sustain"
            return record
        loop_s = time.perf_counter() - loop_t0
        if not chunks:
            raise KeyboardInterrupt
        unit, work = throughput_unit(task.workload, task.params, task.dtype)
        sustain = {"workload_view": task.workload.view_name, "unit": unit, "work_per_call": work,
                   "seconds": seconds, "chunk_s": chunk_s, "burst_s": burst_s, "method": METHOD,
                   "interrupted": interrupted, "series": _series(chunks, sampler)}
        burst_idx, steady_idx = analysis_sustain.windows(sustain)
        sustain["energy"] = {"burst": _window_energy(sampler, chunks, burst_idx),
                             "steady": _window_energy(sampler, chunks, steady_idx)}
        sustain["summary"] = analysis_sustain.summarize(sustain)
        whole = [(chunks[0].t0, chunks[-1].t1)]
        calls = [c.calls for c in chunks]
        record = runner.make_record(
            task, ctx, impl, "ok",
            time_s=timing.summarize([c.device_s / c.calls for c in chunks]),
            timing={"method": METHOD, "method_reason": "sustain: the closure launched back to back, CUDA events "
                                                       "around each chunk of calls",
                    "inner": int(statistics.median(calls)), "rounds": 1, "window": list(whole[0]),
                    "meaningful": not ctx.interpret, "input_sets": len(prep.sets)},
            verify=v.check, config=v.config, telemetry=sampler.summary(whole),
            energy=sampler.energy(whole, calls=sum(calls)),
            wall={"setup_s": v.setup_s, "verify_s": v.verify_s, "timing_s": loop_s,
                  "case_s": time.perf_counter() - started},
            sustain=sustain)
        record.view = "sustain"
        return record
    finally:
        prep.release()


# ---------------------------------------------------------------- the command

def _choose(what: str, value, choices: list[str], of: str = ""):
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}{of}; choose from: {', '.join(choices)}")
    return value


def resolve(args, workloads: dict):
    """(workload, params, dtype, impl) named by the command's arguments; UsageError otherwise."""
    if not args.workload:
        raise UsageError(f"sustain needs --workload NAME; choose from: {', '.join(workloads)}")
    w = workloads[_choose("workload", args.workload, list(workloads))]
    dtype = args.dtype or ("bf16" if "bf16" in w.dtypes else w.dtypes[0])
    _choose("dtype", dtype, list(w.dtypes), f" for {w.name}")
    cases = list(w.cases["full"])
    if args.case is None:
        quick = w.cases["quick"]
        params = max(quick, key=lambda p: (w.flops(p, dtype), w.bytes(p, dtype)))
    else:
        labels = {w.case_label(p): p for p in cases}
        ids = {case_id(p): p for p in cases}
        if args.case not in labels and args.case not in ids:
            _choose("case", args.case, list(labels), f" for {w.name}")
        params = labels.get(args.case) or ids[args.case]
    impls = w.impls_for(dtype)
    names = [i.name for i in impls]
    if not impls:
        raise UsageError(f"{w.name} has no implementation for {dtype}")
    impl = impls[names.index(_choose("implementation", args.impl or names[0], names, f" of {w.name} for {dtype}"))]
    return w, dict(params), dtype, impl


def check_numbers(args) -> None:
    if not 0 < args.seconds < math.inf:
        raise UsageError(f"--seconds must be a positive number of seconds, got {args.seconds:g}")
    low, high = CHUNK_RANGE_S
    if not low <= args.chunk <= high:
        raise UsageError(f"--chunk must be between {low:g} and {high:g} seconds, got {args.chunk:g}")
    if not 0 < args.burst <= args.seconds / 2:
        raise UsageError(f"--burst must be positive and at most half of --seconds ({args.seconds / 2:g} s), so that "
                         f"burst and steady state do not overlap; got {args.burst:g}")
    if args.plot is not None and Path(args.plot).suffix.lower() not in analysis_sustain.PLOT_SUFFIXES:
        raise UsageError(f"plot file {args.plot!r} must end in {' or '.join(analysis_sustain.PLOT_SUFFIXES)}")


def main(args) -> int:
    """The command: check the arguments, run the case on the GPU, write and show its record."""
    w, params, dtype, impl = resolve(args, all_workloads())
    check_numbers(args)
    if not torch.cuda.is_available():
        raise UsageError("no CUDA GPU is visible (torch.cuda.is_available() is False): sustain measures a GPU under "
                         "load and has no interpreter mode; run it on a machine with an NVIDIA GPU")
    check_device(args.device, torch.cuda.device_count())

    torch.cuda.set_device(args.device)
    env = env_mod.collect(args.device, command="python -m suite " + " ".join(args.argv))
    env["settle_s"] = 0.0  # a sustain run starts from whatever state the GPU is in: its burst is the point
    ctx = runner.Context(device=f"cuda:{args.device}", env=env, interpret=False, policy=timing.TimingPolicy(),
                         run_id=new_run_id(), seed=args.seed, nvml=nvml_handle(args.device))
    out = Path(args.out or default_out(env["gpu"]["name"], "sustain"))
    task = runner.Task(w, params, dtype)
    existed = out.exists()
    # Checked before the run, so that an --out that cannot be written, or already holds records
    # without --append, is said before minutes of work.
    prepare_output(out, resume=False, append=getattr(args, "append", False), machine={identity(env)})
    writer = open_writer(out)
    print(f"sustain: {w.name} {w.case_label(params)} {dtype} {impl.name} for {args.seconds:g} s on "
          f"{env['gpu']['name']} -> {out}", file=sys.stderr)
    try:
        record = sustain_case(task, ctx, impl, seconds=args.seconds, chunk_s=args.chunk, burst_s=args.burst)
        writer(record)
    except KeyboardInterrupt:
        print("\nsustain: interrupted before the first chunk completed: nothing recorded", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        writer.close()
        if not existed and writer.count == 0:
            out.unlink(missing_ok=True)
    if record.status != "ok":
        print(f"sustain: {record.status}: {record.reason} (recorded in {out})", file=sys.stderr)
        return 1
    if not args.no_report:
        print(format_sections(sustain_view.sections(rl.analyze([record]), [record]), "plain"))
    if args.plot:
        print(f"sustain: plot written to {analysis_sustain.plot([record], args.plot)}", file=sys.stderr)
    if record.sustain.get("interrupted"):
        print(f"sustain: interrupted; the record of the {record.sustain['summary']['run_s']:.1f} s run is in {out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
