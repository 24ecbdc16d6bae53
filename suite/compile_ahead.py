"""Compiling ahead: before a sweep times anything, worker processes compile the Triton kernels its
cases need into Triton's on-disk cache, several cases at once; the sweep then loads them instead of
compiling one case after another. A cold sweep's time is mostly compiles, and one process compiles
one tuner's candidates at a time.

A worker builds one input set of a case and calls each of its Triton implementations once, with the
kernels' tuners in compile-only mode (`kernels.tuning.compile_only`): every candidate compiles and
runs once, none is timed, nothing is chosen for the sweep or stored. The sweep itself then tunes,
verifies and times in its own process exactly as without this step; only the compiler's output is
already on disk. Nothing is timed while workers run: they have all exited before the first case. A
case a worker could not prepare (out of memory beside the others, a compile error) is compiled by
the sweep as before, which records any failure itself.

Each case compiled ahead is noted in the tuning store, under Triton's cache directory and the
kernels' source digest, so a later sweep on the same machine skips it: a warm sweep starts no
workers.
"""
from __future__ import annotations

import concurrent.futures as cf
import gc
import hashlib
import multiprocessing
import os
import sys
import time
from pathlib import Path

from suite.runner import Task

MAX_WORKERS = 8
# Compiling ahead gives up (and leaves the rest to the sweep) after this long plus this per case and
# worker: no case compiles for that long, so only a worker that hangs meets the limit.
LIMIT_S, LIMIT_PER_CASE_S = 120.0, 20.0
# Cases whose failures (one line per implementation) the summary keeps, for the records: the sweep
# meets each failure again and records it with its case, but a worker's can differ (a compile-only
# process, beside others on the same GPU).
MAX_FAILURES_KEPT = 10


def default_workers() -> int:
    """Half the CPUs this process may run on, at most MAX_WORKERS; 0 (off) below four CPUs, where
    workers would compete with each other for too few cores to gain anything."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(MAX_WORKERS, cpus // 2) if cpus >= 4 else 0


def task_key(task: Task) -> str:
    return f"{task.workload.name}|{task.case}|{task.dtype}"


def _kernels_digest() -> str:
    import kernels

    h = hashlib.sha256()
    for path in sorted(Path(kernels.__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _triton_cache_dir() -> str:
    import triton

    knobs = getattr(triton, "knobs", None)
    directory = getattr(getattr(knobs, "cache", None), "dir", None) or os.environ.get("TRITON_CACHE_DIR")
    return str(directory or Path.home() / ".triton" / "cache")


def _entry() -> str:
    """The store entry of the cases compiled into this Triton cache by these kernels' sources."""
    return f"compiled-ahead|{_kernels_digest()}|{_triton_cache_dir()}"


def pending(tasks: list[Task]) -> list[Task]:
    """The tasks not yet compiled ahead into this Triton cache with these kernels (all of them
    without a tuning store)."""
    from kernels import tuning

    done = set((tuning.kept(_entry()) or {}).get("cases", []))
    return [t for t in tasks if task_key(t) not in done]


def _note_compiled(keys: list[str]) -> None:
    from kernels import tuning

    if keys:
        entry = _entry()
        known = set((tuning.kept(entry) or {}).get("cases", []))
        tuning.keep(entry, {"cases": sorted(known | set(keys))})


# ---------------------------------------------------------------- in a worker

def compile_task(workload, params: dict, dtype: str, device: str) -> list[str]:
    """Run each Triton implementation of one case once on fresh inputs, so its kernels compile
    (in a process in compile-only mode, without tuning). Returns what failed, one line each; never
    raises for the case's own failure."""
    import torch

    from suite.registry import Skip
    from suite.runner import describe_error, skip_reason

    on_gpu = device.startswith("cuda")
    capability = torch.cuda.get_device_capability(device) if on_gpu else None
    if skip_reason(Task(workload, params, dtype), capability, device):
        return []  # the sweep skips it too
    failed, inputs = [], None
    try:
        generator = torch.Generator(device=device)
        generator.manual_seed(0)
        inputs = workload.make_inputs(params, dtype, device, generator)
        for impl in workload.impls_for(dtype):
            if impl.vendor:
                continue  # nothing of Triton's to compile
            try:
                impl.prepare(inputs)()
                if on_gpu:
                    torch.cuda.synchronize(device)
            except Skip:
                pass  # a recorded skip in the sweep, not a failure
            except Exception as e:  # noqa: BLE001 -- the sweep meets (and records) it again
                failed.append(f"{impl.name}: {describe_error(e)}")
    except Exception as e:  # noqa: BLE001 -- building the inputs (a Skip included)
        failed.append(f"inputs: {describe_error(e)}")
    finally:
        del inputs
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
    return failed


def _start_worker(device: str) -> None:
    from kernels import tuning

    tuning.compile_only()
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(device)


def _job(name: str, params: dict, dtype: str, device: str) -> tuple[list[str], float]:
    """One case in a worker: what failed, and the seconds it took."""
    from suite.workloads import all_workloads

    started = time.perf_counter()
    workloads = all_workloads()
    if name not in workloads:
        return [f"unknown workload {name!r}"], 0.0
    return compile_task(workloads[name], params, dtype, device), time.perf_counter() - started


# ---------------------------------------------------------------- in the sweep

def run(tasks: list[Task], device: str, workers: int, progress: bool = True, job=_job,
        limit_s: float | None = None) -> dict | None:
    """Compile the Triton kernels of `tasks` in `workers` processes; returns what was done, for the
    sweep's records (None with no workers). Returns after every worker has exited, by `limit_s` at
    the latest (default LIMIT_S + LIMIT_PER_CASE_S per case and worker). KeyboardInterrupt stops the
    workers and propagates."""
    if workers <= 0:
        return None
    todo = pending(tasks)
    summary = {"workers": 0, "cases": len(todo), "known": len(tasks) - len(todo), "attempted": 0, "failed": 0,
               "failures": [], "seconds": 0.0, "stopped": None}
    if not todo:
        return summary
    from tqdm import tqdm

    started = time.perf_counter()
    summary["workers"] = workers = min(workers, len(todo))
    limit_s = LIMIT_S + LIMIT_PER_CASE_S * len(todo) / workers if limit_s is None else limit_s
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_start_worker, initargs=(device,))
    attempted = []  # noted even where a case failed: the sweep compiles (and records) it itself
    longest = []
    try:
        futures = {pool.submit(job, t.workload.name, dict(t.params), t.dtype, device): t for t in todo}
        bar = tqdm(cf.as_completed(futures, timeout=limit_s), total=len(futures), desc="compiling ahead",
                   unit="case", file=sys.stderr, disable=not progress, dynamic_ncols=True)
        try:
            for future in bar:
                try:
                    problems, seconds = future.result()
                except cf.process.BrokenProcessPool as e:
                    summary["stopped"] = f"a worker died ({e}); the sweep compiles the rest itself"
                    break
                attempted.append(task_key(futures[future]))
                summary["failed"] += bool(problems)
                if problems and len(summary["failures"]) < MAX_FAILURES_KEPT:
                    summary["failures"].append([attempted[-1], problems])
                longest.append((round(seconds, 3), attempted[-1]))
        except cf.TimeoutError:
            summary["stopped"] = f"not done after {limit_s:.0f} s; the sweep compiles the rest itself"
    except BaseException:
        _stop(pool)
        raise
    finally:
        _note_compiled(attempted)
    if summary["stopped"]:
        _stop(pool)
    else:
        pool.shutdown(wait=True)
    summary["attempted"] = len(attempted)
    summary["longest"] = [[key, sec] for sec, key in sorted(longest, reverse=True)[:5]]  # the cases to look at
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Stop the workers now, whatever they are doing."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
