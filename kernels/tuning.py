"""Tuning: how candidates are timed, where the choices are kept, and what each launcher chose.

Timing. Launching an autotuned Triton kernel from Python costs tens of
microseconds of host time per call. `triton.testing.do_bench` times
back-to-back launches, so on a problem that runs for a few microseconds it
measures the launcher, every candidate looks alike, and the choice is noise. A
CUDA-graph replay of many calls measures the kernels alone (`device_time_ms`);
where a call cannot be captured the plain timing is the fallback.

Keys. A choice is made for one exact problem (the tuner's key: sizes, dtypes,
layout), so a configuration is only ever used at the size it was tuned at.

The store. Choices are kept on disk per GPU model, SM count, driver, torch and
triton version, and the source digest of the kernel's module (`configure`,
called by whoever runs the launchers: the sweep does); a later process with the
same identity takes them from there instead of tuning again, and says so: every
choice records whether it was "tuned" in this process or came from the "cache".
Without `configure`, choices live in this process only.

Choices. Every launcher records what it ran under one key (`record_choice`), and
one function answers for all of them (`chosen`).
"""
from __future__ import annotations

import functools
import gc
import hashlib
import inspect
import json
import os
import statistics
import tempfile
import threading
from pathlib import Path

import numpy
import triton

from kernels.launch import interpreted, record

# Short per-candidate timing: enough to rank candidates; the sweep times the winner properly. About
# TUNING_REP_MS of device time per candidate, in TUNING_REPLAYS replays of one CUDA graph.
TUNING_REP_MS = 10
TUNING_REPLAYS = 5
_WARM_REPLAYS = 2
_MAX_GRAPH_CALLS = 1000

_COMPILE_ONLY = False


def compile_only() -> None:
    """Put this process in compile-only mode, for good: every candidate a tuner meets still
    compiles and runs once, but none is timed (each reads the same, so the first is kept) and no
    choice is stored. Only for a process that fills Triton's cache and measures nothing (the
    workers of `suite.compile_ahead`)."""
    global _COMPILE_ONLY
    _COMPILE_ONLY = True


def device_time_ms(fn, quantiles=None, rep: int = TUNING_REP_MS):
    """Median (or `quantiles`) of `fn`'s device time per call, in ms."""
    import torch

    if _COMPILE_ONLY:
        fn()  # compiles it; the time is never read
        return [1.0] * len(quantiles) if quantiles else 1.0
    torch.cuda.synchronize()  # the graph is captured on a side stream: inputs must be ready
    try:
        times = _graph_times_ms(fn, rep)
    except Exception:  # noqa: BLE001 -- not capturable: time plain launches instead
        torch.cuda.synchronize()
        return triton.testing.do_bench(fn, warmup=5, rep=rep, quantiles=quantiles, return_mode="median")
    if quantiles:
        return [float(q) for q in numpy.quantile(times, quantiles)]
    return statistics.median(times)


def _graph_times_ms(fn, rep: float) -> list[float]:
    """Time per call of `fn` in each of TUNING_REPLAYS replays of one CUDA graph of n calls, n
    chosen from one timed call so the replays together run about `rep` ms (at least one call
    each), after _WARM_REPLAYS untimed ones. Triton's do_bench_cudagraph replays its graph ten
    times whatever `rep` is, and estimates from five eager calls: several times the device time
    this spends, per candidate."""
    import torch

    with torch.cuda.stream(torch.cuda.Stream()):
        fn()  # first touch: caches, the launcher's own first call
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        one = start.elapsed_time(end)
        n = _MAX_GRAPH_CALLS if one <= 0 else max(1, min(_MAX_GRAPH_CALLS, int(rep / TUNING_REPLAYS / one)))
        graph = torch.cuda.CUDAGraph()
        # No garbage collection while capturing: a collected compiled kernel unloads its module,
        # which is illegal during a capture and invalidates the graph.
        collecting = gc.isenabled()
        gc.disable()
        graph.capture_begin()
        try:
            for _ in range(n):
                fn()
        finally:
            graph.capture_end()
            if collecting:
                gc.enable()
        for _ in range(_WARM_REPLAYS):  # the graph's upload, and clocks rising from idle
            graph.replay()
        times = []
        for _ in range(TUNING_REPLAYS):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / n)
    return times


def interleaved_times_ms(fns: dict, rep: int = TUNING_REP_MS) -> dict:
    """Median device time (ms) of each candidate {name: ms}, the candidates timed in rotating order.

    Timed one after the other, a candidate's position matters: on long
    kernels the GPU heats up and lowers its clock toward its power cap while
    the later ones run. There are as many rounds as candidates and each
    round starts one candidate later, so every candidate is timed once in
    every position and a drift that depends on the position cancels out of
    the comparison. It does not make a short tuning measurement a
    steady-state one: candidates within a few percent of each other can
    swap places under sustained load.
    """
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(len(names)):
        for name in names[r:] + names[:r]:
            times[name].append(device_time_ms(fns[name], rep=rep))
    return {name: statistics.median(t) for name, t in times.items()}


# ---------------------------------------------------------------- what each launcher chose

_CHOICES: dict[tuple, dict] = {}  # (op, key) -> what the last launch of op with that key ran
_LATEST: dict[str, dict] = {}  # op -> the latest entry


def record_choice(op: str, key: tuple, entry: dict) -> None:
    """Keep what a launch of `op` with `key` ran (kernel, configuration, grid, tuning source)."""
    merged = {**_CHOICES.get((op, key), {}), **entry}
    _CHOICES[(op, key)] = merged
    _LATEST[op] = merged


def chosen(op: str, key: tuple | None = None) -> dict | None:
    """What the last launch of `op` with `key` ran; with no key, the latest launch of `op`."""
    entry = _LATEST.get(op) if key is None else _CHOICES.get((op, key))
    return dict(entry) if entry is not None else None


# ---------------------------------------------------------------- the store

class _Store:
    """One JSON file of choices for one identity (GPU model, SMs, driver, torch, triton)."""

    def __init__(self, directory: Path, identity: dict, retune: bool):
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(directory) / f"tuning-{digest}.json"
        self.identity, self.retune = identity, retune
        self._lock = threading.Lock()
        self.entries = {} if retune else self._read()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # no file yet, or one cut short: tune again
        return data.get("entries", {}) if data.get("identity") == self.identity else {}

    def get(self, name: str) -> dict | None:
        return self.entries.get(name)

    def put(self, name: str, value: dict) -> None:
        with self._lock:
            self.entries = {**self._read(), **self.entries, name: value}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole and renamed: a reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tuning-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump({"identity": self.identity, "entries": self.entries}, f, indent=0, sort_keys=True)
            os.replace(tmp, self.path)


_store: _Store | None = None


def configure(directory, identity: dict, retune: bool = False) -> None:
    """Keep choices in `directory` for this identity (None: in this process only). With
    `retune`, stored choices are ignored (and replaced by the new ones)."""
    global _store
    _store = _Store(Path(directory), identity, retune) if directory is not None else None


def store_path() -> str | None:
    return str(_store.path) if _store is not None else None


@functools.lru_cache(maxsize=None)
def _source_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _entry_name(tuner_name: str, module_file: str | tuple[str, ...], key) -> str:
    files = (module_file,) if isinstance(module_file, str) else module_file
    return f"{tuner_name}|{'+'.join(_source_digest(f) for f in files)}|{key!r}"


def _config_dict(c: triton.Config) -> dict:
    return {"kwargs": dict(c.kwargs), "num_warps": c.num_warps, "num_stages": c.num_stages,
            "num_ctas": getattr(c, "num_ctas", 1), "maxnreg": getattr(c, "maxnreg", None)}


def _config_of(d: dict) -> triton.Config:
    """A stored configuration back as a triton.Config. (A stored choice cannot outlive a change of
    the candidates: they are in the module whose source digest names the entry.)"""
    extra = {"maxnreg": d["maxnreg"]} if d.get("maxnreg") is not None else {}
    return triton.Config(dict(d["kwargs"]), num_warps=d["num_warps"], num_stages=d["num_stages"],
                         num_ctas=d.get("num_ctas", 1), **extra)


def autotune_key(tuner, args: tuple, kwargs: dict) -> tuple:
    """The key Triton's Autotuner files a choice under: the values of its key arguments, then the
    dtype of every tensor argument (as Autotuner.run builds it)."""
    named = {**dict(zip(tuner.arg_names, args)), **kwargs}
    named = {k: v for k, v in named.items() if k in tuner.arg_names}
    key = [named[k] for k in tuner.keys if k in named]
    key += [str(v.dtype) for v in named.values() if hasattr(v, "dtype")]
    return tuple(key)


_SOURCES: dict[tuple, str] = {}  # (tuner name, key) -> "tuned" / "cache" / "single candidate"
_DECIDED: dict[tuple, dict] = {}  # (tuner name, problem) -> the launch's answer, once its config is known


@functools.lru_cache(maxsize=None)
def _module_file(fn) -> str:
    return inspect.getsourcefile(fn)


def launch_autotuned(name: str, tuner, grid, *args, problem: tuple, **kwargs) -> dict:
    """Launch `tuner` (a triton.autotune object) with its choice for this key taken from the store
    when there is one, tuned (and stored) otherwise. `problem` identifies the call's tuning key
    cheaply (the launcher knows it: sizes, dtype, layout); once a problem's configuration is
    known, later calls launch it directly, without rebuilding the autotuner's key on every call.
    Returns {"config", "source", "key", "timings" (the candidates' ms when this call tuned),
    "fresh" (False when an earlier call already answered for this problem)}."""
    decided = _DECIDED.get((name, problem))
    if decided is not None:
        config = decided["config"]
        full, pre_hook = {**kwargs, **config.all_kwargs()}, getattr(config, "pre_hook", None)
        if pre_hook is not None:
            pre_hook({**dict(zip(tuner.arg_names, args)), **full})
        tuner.fn[grid](*args, **full)
        record(tuner.fn, grid, args, full, pre_hook=pre_hook)
        return decided
    key = autotune_key(tuner, args, kwargs)
    entry = _entry_name(name, _module_file(tuner.base_fn if hasattr(tuner, "base_fn") else tuner.fn), key)
    if key not in tuner.cache:
        stored = kept(entry)
        if stored is not None:
            tuner.cache[key] = _config_of(stored["config"])
            _SOURCES[(name, key)] = "cache"
    before = getattr(tuner, "configs_timings", None)
    tuned_here = key not in tuner.cache
    if tuned_here:
        precompile(tuner, grid, args, kwargs)
    tuner[grid](*args, **kwargs)
    record(getattr(tuner, "fn", None), grid, args, {**kwargs, **tuner.best_config.all_kwargs()},
           pre_hook=getattr(tuner.best_config, "pre_hook", None))
    timings = getattr(tuner, "configs_timings", None)
    timings = timings if tuned_here and timings is not None and timings is not before else None
    if tuned_here:
        _SOURCES[(name, key)] = "tuned" if timings is not None else "single candidate"
        if key in tuner.cache:
            keep(entry, {"config": _config_dict(tuner.cache[key])})
    answer = {"config": tuner.best_config, "source": _SOURCES.get((name, key), "tuned"), "key": key,
              "timings": timings, "fresh": True}
    if key in tuner.cache:
        _DECIDED[(name, problem)] = {**answer, "timings": None, "fresh": False}
    return answer


def precompile(tuner, grid, args: tuple, kwargs: dict) -> int:
    """Compile the candidates `tuner` (a triton.autotune object) is about to time all at once
    (`compile_all`), instead of one after the other as the tuner reaches them. Returns the
    configurations submitted."""
    fn = getattr(tuner, "fn", None)
    try:
        tuner.nargs = dict(zip(tuner.arg_names, args))  # what the tuner's pruning reads
        configs = list(tuner.prune_configs(kwargs))
    except Exception:  # noqa: BLE001 -- a Triton whose pruning works otherwise: compile them all
        configs = list(tuner.configs)
    finally:
        tuner.nargs = None
    return compile_all(fn, [(grid, args, {**kwargs, **c.all_kwargs()}) for c in configs])


def compile_all(fn, launches: list[tuple]) -> int:
    """Compile the @triton.jit function `fn` for each (grid, args, kwargs) at once, in a pool of
    threads (Triton's AsyncCompileMode: the compiler releases the GIL); a cold sweep's time is
    mostly compiles, and a tuner's candidates are otherwise compiled one by one. Returns the
    launches submitted (0 where there is nothing to gain or this Triton cannot). One that fails
    to compile is left to its launch, which fails as it would have."""
    async_mode = getattr(triton, "AsyncCompileMode", None)
    if async_mode is None or len(launches) < 2 or not hasattr(fn, "warmup") or interpreted(fn):
        return 0
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(max_workers=min(len(launches), os.cpu_count() or 1)) as pool, \
                async_mode(pool, ignore_errors=True):
            for grid, args, kwargs in launches:
                try:
                    fn.warmup(*args, grid=grid, **kwargs)
                except Exception:  # noqa: BLE001 -- this one compiles (and fails) at its launch
                    pass
    except Exception:  # noqa: BLE001 -- the compiles still needed happen at the launches
        return 0
    return len(launches)


def kept(name: str) -> dict | None:
    """The store's entry `name` (None without a store, or under --retune)."""
    return _store.get(name) if _store is not None else None


def keep(name: str, value: dict) -> None:
    """Store `value` as the entry `name` (nowhere without a store)."""
    if _store is not None:
        _store.put(name, value)


def remembered(name: str, key: tuple, compute, module_file: str | tuple[str, ...]):
    """A choice that is not a triton.autotune one (a JSON-able dict), for one exact key: from this
    process, else the store, else `compute()` (then stored). Returns (value, source). The entry
    is named by the source digest of `module_file` (or of each of several files: those whose
    kernels the choice is made among)."""
    local = _REMEMBERED.get((name, key))
    if local is not None:
        return local
    entry = _entry_name(name, module_file, key)
    stored = kept(entry)
    if stored is not None:
        _REMEMBERED[(name, key)] = (stored["value"], "cache")
        return stored["value"], "cache"
    value = compute()
    _REMEMBERED[(name, key)] = (value, "tuned")
    keep(entry, {"value": value})
    return value, "tuned"


_REMEMBERED: dict[tuple, tuple] = {}

