"""The sweep through Triton's interpreter: records, verification, failures, resume."""
import math

import pytest
import torch

from analysis.records import load
from conftest import interpreted_here
from suite import runner, timing
from suite.registry import Impl, Skip, Workload, case_id
from suite.workloads import all_workloads


@pytest.fixture
def ctx():
    from suite import env
    return runner.Context(device="cpu", env=env.collect(None, interpret=True, command="test"), interpret=True,
                          policy=timing.TimingPolicy(), run_id="test-run")


def _toy(impls, **kw):
    """A tiny workload: out = 2*a, with the given implementations."""
    def make(params, dtype, device, gen):
        a = torch.rand(params["n"], generator=gen, device=device) + 0.5
        return {"a": a, "out": torch.empty_like(a)}

    return Workload(name="toy", family="toy", description="out = 2a", dtypes=("fp32",),
                    cases={"quick": [{"n": 10}], "full": [{"n": 10}], "interpret": [{"n": 10}, {"n": 33}]},
                    make_inputs=make, impls=tuple(impls), reference=lambda inp, p, d: 2 * inp["a"].double(),
                    flops=lambda p, d: p["n"], bytes=lambda p, d: 8 * p["n"], **kw)


def _good(inp):
    return lambda: torch.mul(inp["a"], 2, out=inp["out"])


@interpreted_here
def test_streaming_interpret_sweep_records_everything(ctx, tmp_path, working_interpreter):
    out = tmp_path / "r.jsonl"
    tasks = runner.plan([all_workloads()["stream-triad"], all_workloads()["stream-read"]], "interpret")
    runner.run_sweep(tasks, ctx, out, resume=False, progress=False)
    recs = load(out)
    assert len(recs) == len(tasks) * 2  # triton + torch for each case and dtype
    assert all(r.status == "ok" for r in recs), [(r.impl, r.reason) for r in recs if r.status != "ok"]
    for r in recs:
        assert r.verify["rel_err"] <= r.verify["tolerance"]
        assert r.timing["meaningful"] is False and not r.meaningful  # interpreter timings never count
        assert r.time_s["n"] == len(r.time_s["samples"]) > 0
        assert r.env["interpret"] is True and r.env["torch"] and r.env["triton"]
        assert r.bytes > 0 and r.run_id == "test-run"
    triad = [r for r in recs if r.workload == "stream-triad" and r.impl == "triton"]
    assert all(r.config["BLOCK"] > 0 for r in triad)


def test_wrong_result_is_recorded_failed_and_sweep_goes_on(ctx, tmp_path):
    out = tmp_path / "r.jsonl"

    def wrong(inp):
        return lambda: torch.mul(inp["a"], 2.01, out=inp["out"])

    def half_written(inp):  # leaves the tail unwritten: the NaN poison must show it
        def run():
            torch.mul(inp["a"][:5], 2, out=inp["out"][:5])
            return inp["out"]
        return run

    def crashes(inp):
        raise RuntimeError("compile error: bad thing\nmore detail")

    def skips(inp):
        raise Skip("backend refuses this shape")

    w = _toy([Impl("good", False, _good), Impl("wrong", False, wrong), Impl("half", False, half_written),
              Impl("crash", False, crashes), Impl("skip", True, skips)])
    runner.run_sweep(runner.plan([w], "interpret"), ctx, out, resume=False, progress=False)
    by = {(r.impl, r.params["n"]): r for r in load(out)}
    assert len(by) == 10
    for n in (10, 33):
        assert by["good", n].status == "ok"
        assert by["wrong", n].status == "failed" and "verification failed" in by["wrong", n].reason
        assert by["half", n].status == "failed" and by["half", n].verify["rel_err"] == math.inf
        assert by["crash", n].status == "failed" and by["crash", n].reason == "RuntimeError: compile error: bad thing"
        assert by["skip", n].status == "skipped" and by["skip", n].reason == "backend refuses this shape"
        assert by["wrong", n].time_s is None  # a failed case is never timed


def test_unsupported_dtype_and_workload_skip_are_recorded(ctx, tmp_path):
    ctx.env["gpu"]["cc"] = [7, 0]
    gpu_ctx = runner.Context(device="cpu", env=ctx.env, interpret=False, policy=ctx.policy, run_id="x")
    recs = []
    w = _toy([Impl("good", False, _good)])
    task = runner.Task(w, {"n": 10}, "bf16")
    runner.run_task(task, gpu_ctx, recs.append)
    assert recs[0].status == "skipped" and "compute capability 8.0" in recs[0].reason

    w2 = _toy([Impl("good", False, _good)], skip=lambda p, d, dev: "needs 2 TB")
    recs.clear()
    runner.run_task(runner.Task(w2, {"n": 10}, "fp32"), ctx, recs.append)
    assert recs[0].status == "skipped" and recs[0].reason == "needs 2 TB"


def test_interrupted_sweep_keeps_records_and_resume_skips_them(ctx, tmp_path, monkeypatch):
    out = tmp_path / "r.jsonl"
    tasks = runner.plan([all_workloads()["stream-copy"]], "interpret")
    real = runner.run_task
    calls = {"n": 0}

    def interrupt_on_third(task, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task, *a, **k)

    monkeypatch.setattr(runner, "run_task", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        runner.run_sweep(tasks, ctx, out, resume=False, progress=False)
    kept = load(out)
    assert len(kept) == 4  # two tasks x two implementations, all flushed before the interrupt

    monkeypatch.setattr(runner, "run_task", real)
    assert runner.unfinished(tasks, ctx, out) == tasks[2:]  # what --resume compiles ahead and measures
    writer = runner.run_sweep(tasks, ctx, out, resume=True, progress=False)
    assert writer.count == 2 * (len(tasks) - 2)  # only what was missing
    keys = [r.key for r in load(out)]
    assert len(keys) == len(set(keys)) == 2 * len(tasks)
    assert runner.unfinished(tasks, ctx, out) == []


def test_plan_filters_by_dtype_and_size():
    w = all_workloads()["stream-copy"]
    tasks = runner.plan([w], "full", dtypes=["bf16"], sizes=["2048 MiB"])
    assert [(t.dtype, t.params["array_bytes"]) for t in tasks] == [("bf16", 2048 << 20)]
    # The quick sweep runs its own dtypes only (streaming: fp32).
    assert runner.plan([w], "quick", dtypes=["bf16"]) == []
    assert {t.dtype for t in runner.plan([w], "quick")} == {"fp32"}


def test_streaming_quick_sweep_reaches_far_beyond_l2():
    # The HBM ceiling needs working sets far beyond any current L2 (60 MB on H200).
    w = all_workloads()["stream-copy"]
    assert max(p["array_bytes"] for p in w.cases["quick"]) >= 2 << 30
    assert min(p["array_bytes"] for p in w.cases["full"]) <= 1 << 20


def test_every_quick_case_is_a_full_case():
    # A full results file supersedes a quick one only if it measures every quick case.
    for w in all_workloads().values():
        full = {case_id(p) for p in w.cases["full"]}
        assert [case_id(p) for p in w.cases["quick"] if case_id(p) not in full] == [], w.name


def test_register_rejects_quick_cases_missing_from_full():
    from suite.registry import register
    w = _toy([Impl("good", vendor=False, prepare=_good)])
    bad = Workload(**{**w.__dict__, "name": "toy-quick-not-full",
                      "cases": {**w.cases, "quick": [{"n": 11}]}})
    with pytest.raises(ValueError, match="quick cases missing from its full cases"):
        register(bad)


def test_poison_survives_tuning_a_chosen_config_that_writes_nothing_fails(ctx):
    """An autotuner runs every candidate into the output on its first call, so a chosen
    configuration that writes nothing would inherit a correct output. The runner verifies a
    fresh call on a freshly poisoned output: this one tunes right and then writes nothing."""
    def tuned_then_silent(inp):
        calls = {"n": 0}

        def run():
            calls["n"] += 1
            if calls["n"] == 1:  # "tuning": candidates write the right answer
                torch.mul(inp["a"], 2, out=inp["out"])
            return inp["out"]  # the "chosen config" writes nothing
        return run

    recs = []
    w = _toy([Impl("silent", False, tuned_then_silent), Impl("good", True, _good)])
    runner.run_task(runner.Task(w, {"n": 33}, "fp32"), ctx, recs.append)
    by = {r.impl: r for r in recs}
    assert by["silent"].status == "failed" and "NaN" in by["silent"].reason
    assert by["silent"].verify["finite"] is False
    assert by["good"].status == "ok" and by["good"].verify["max_excess"] <= 1
    assert by["good"].verify["checked"] == by["good"].verify["elements"] == 33


def test_a_stale_element_fails_the_elementwise_check_the_norm_would_pass(ctx):
    # One element of 4096 off by 5%: 7.8e-4 normwise, inside a 1e-3 tolerance; 12x its own bound.
    def nearly(inp):
        def run():
            torch.mul(inp["a"], 2, out=inp["out"])
            inp["out"][17] *= 1.05
            return inp["out"]
        return run

    recs = []
    w = _toy([Impl("nearly", False, nearly)], tolerance={"fp32": 1e-3})  # normwise alone would pass
    runner.run_task(runner.Task(w, {"n": 4096}, "fp32"), ctx, recs.append)
    assert recs[0].status == "failed" and "tolerance" in recs[0].reason
    assert recs[0].verify["rel_err"] < recs[0].verify["tolerance"] < recs[0].verify["max_excess"]
