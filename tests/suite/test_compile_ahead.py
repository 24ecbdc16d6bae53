"""Compiling ahead: what a worker runs, what the store remembers, and the pool's failures."""
import os

import pytest
import torch

from conftest import interpreted_here
from kernels import tuning
from suite import compile_ahead, runner
from suite.registry import Impl, Skip, Workload
from suite.workloads import all_workloads


def _toy(impls, make=None):
    def make_inputs(params, dtype, device, gen):
        return {"a": torch.rand(params["n"], generator=gen, device=device)}

    return Workload(name="toy-ahead", family="toy", description="", dtypes=("fp32",),
                    cases={"quick": [{"n": 4}], "full": [{"n": 4}], "interpret": [{"n": 4}]},
                    make_inputs=make or make_inputs, impls=tuple(impls), reference=lambda inp, p, d: inp["a"],
                    flops=lambda p, d: 0, bytes=lambda p, d: 0)


def test_compile_only_runs_each_candidate_once_and_times_none(monkeypatch):
    monkeypatch.setattr(tuning, "_COMPILE_ONLY", True)
    calls = []
    assert tuning.device_time_ms(lambda: calls.append(1), quantiles=(0.5, 0.2, 0.8)) == [1.0, 1.0, 1.0]
    assert tuning.interleaved_times_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}) == \
        {"a": 1.0, "b": 1.0}
    assert calls == [1, "a", "b", "b", "a"]  # every candidate ran (compiled); no timing loop around it


def test_compile_only_is_off_unless_a_worker_sets_it():
    assert tuning._COMPILE_ONLY is False  # the sweep's own process times its candidates


def test_compile_task_runs_the_triton_implementations_once_and_reports_failures():
    ran = []

    def impl(name, vendor=False, error=None):
        def prepare(inp):
            def call():
                ran.append(name)
                if error is not None:
                    raise error
                return inp["a"]
            return call
        return Impl(name, vendor, prepare)

    w = _toy([impl("triton"), impl("torch", vendor=True), impl("triton-broken", error=RuntimeError("no tile")),
              impl("triton-skips", error=Skip("not this shape"))])
    failed = compile_ahead.compile_task(w, {"n": 4}, "fp32", "cpu")
    assert ran == ["triton", "triton-broken", "triton-skips"]  # the vendor path compiles nothing of Triton's
    assert failed == ["triton-broken: RuntimeError: no tile"]  # a skip is the sweep's to record, not a failure


def test_compile_task_reports_inputs_it_cannot_build():
    def make(params, dtype, device, gen):
        raise MemoryError("beside the other workers")

    w = _toy([Impl("triton", False, lambda inp: lambda: None)], make=make)
    assert compile_ahead.compile_task(w, {"n": 4}, "fp32", "cpu") == ["inputs: MemoryError: beside the other workers"]


def test_compile_task_leaves_cases_the_sweep_skips():
    w = Workload(**{**_toy([]).__dict__, "skip": lambda p, d, dev: "needs more memory"},)
    assert compile_ahead.compile_task(w, {"n": 4}, "fp32", "cpu") == []


def _tasks():
    return runner.plan([all_workloads()["stream-copy"]], "interpret")


@pytest.fixture
def store(tmp_path):
    """A tuning store in tmp_path for the test, none after it."""
    tuning.configure(tmp_path, {"gpu": "test"})
    yield tmp_path
    tuning.configure(None, {})


def test_cases_compiled_ahead_are_remembered_per_triton_cache(tmp_path, monkeypatch):
    tasks = _tasks()
    tuning.configure(None, {})
    compile_ahead._note_compiled([compile_ahead.task_key(tasks[0])])
    assert compile_ahead.pending(tasks) == tasks  # without a store nothing is remembered
    try:
        tuning.configure(tmp_path, {"gpu": "test"})
        compile_ahead._note_compiled([compile_ahead.task_key(t) for t in tasks[:2]])
        assert compile_ahead.pending(tasks) == tasks[2:]
        tuning.configure(tmp_path, {"gpu": "test"})  # a later process reads them back
        assert compile_ahead.pending(tasks) == tasks[2:]
        monkeypatch.setattr(compile_ahead, "_triton_cache_dir", lambda: str(tmp_path / "another-cache"))
        assert compile_ahead.pending(tasks) == tasks  # another cache holds none of them
    finally:
        tuning.configure(None, {})


def test_no_workers_is_no_compiling_ahead():
    assert compile_ahead.run(_tasks(), "cpu", 0) is None


def test_default_workers_leave_small_machines_alone(monkeypatch):
    for cpus, expected in ((2, 0), (3, 0), (4, 2), (16, 8), (128, compile_ahead.MAX_WORKERS)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert compile_ahead.default_workers() == expected


def _die(name, params, dtype, device):
    os._exit(3)  # as a segfaulting compiler would


def _hang(name, params, dtype, device):
    import time
    time.sleep(600)  # as a deadlocked one would


@interpreted_here
def test_workers_compile_then_a_second_run_starts_none(store, monkeypatch, working_interpreter):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the workers interpret, as this process does
    tasks = _tasks()[:3]
    first = compile_ahead.run(tasks, "cpu", 2, progress=False)
    assert first["workers"] == 2 and first["attempted"] == 3 and first["failed"] == 0, first
    assert first["stopped"] is None and first["seconds"] > 0
    assert len(first["longest"]) == 3 and all(sec > 0 for _, sec in first["longest"])
    second = compile_ahead.run(tasks, "cpu", 2, progress=False)
    assert second == {**second, "workers": 0, "cases": 0, "known": 3, "attempted": 0}


def _fail(name, params, dtype, device):
    return [f"triton: RuntimeError: no tile for {params}"], 0.01


def test_a_failing_case_is_counted_with_its_reasons(store):
    tasks = _tasks()[:2]
    summary = compile_ahead.run(tasks, "cpu", 1, progress=False, job=_fail)
    assert summary["failed"] == 2 and summary["attempted"] == 2
    assert sorted(key for key, _ in summary["failures"]) == sorted(compile_ahead.task_key(t) for t in tasks)
    assert all(len(lines) == 1 and "no tile" in lines[0] for _, lines in summary["failures"])


def test_a_worker_that_dies_stops_compiling_ahead_and_notes_nothing(store):
    tasks = _tasks()[:2]
    summary = compile_ahead.run(tasks, "cpu", 1, progress=False, job=_die)
    assert summary["stopped"] and "worker died" in summary["stopped"] and summary["attempted"] == 0
    assert compile_ahead.pending(tasks) == tasks  # the sweep compiles them itself


def test_a_worker_that_hangs_is_stopped_at_the_limit(store):
    import time
    tasks = _tasks()[:2]
    started = time.perf_counter()
    summary = compile_ahead.run(tasks, "cpu", 1, progress=False, job=_hang, limit_s=3.0)
    assert time.perf_counter() - started < 60  # the hung worker was stopped, not waited for
    assert "not done after 3 s" in summary["stopped"] and summary["attempted"] == 0
    assert compile_ahead.pending(tasks) == tasks


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_compile_workers_refuses_what_is_not_a_count(bad, capsys):
    from suite.cli import main
    assert main(["sweep", "--compile-workers", bad, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--compile-workers" in err[0]
