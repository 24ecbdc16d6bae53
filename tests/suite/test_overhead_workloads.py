"""The overhead workloads: their declarations, their interpreted sweep (verified, with the host in every
record), verification that catches a launch that did not happen, and the host's CPU model."""
import dataclasses

import pytest

from analysis.records import load
from conftest import interpreted_here
from suite import env, runner, timing
from suite.registry import case_id
from suite.workloads import all_workloads
from suite.workloads import overhead as ov

NAMES = ("launch-empty", "launch-args12", "launch-sync")


@pytest.fixture
def ctx():
    return runner.Context(device="cpu", env=env.collect(None, interpret=True, command="test"), interpret=True,
                          policy=timing.TimingPolicy(), run_id="test-run")


def _workloads():
    return [all_workloads()[n] for n in NAMES]


def test_declarations_are_never_placed_and_state_their_launches():
    assert {w.name for w in all_workloads().values() if w.family == "overhead"} == set(NAMES)
    for w in _workloads():
        assert (w.family, w.view_name, w.roof) == ("overhead", "overhead", "")
        for mode in ("quick", "full", "interpret"):
            for p in w.cases[mode]:
                assert w.flops(p, "fp32") == 0 and w.bytes(p, "fp32") == 0  # never on the roofline
                assert all(i.launches_for(p, "fp32") == 1 for i in w.impls)
    impls = {(w.name, i.name): i for w in _workloads() for i in w.impls}
    assert set(impls) == {("launch-empty", "triton"), ("launch-empty", "triton-prepared"), ("launch-empty", "torch"),
                          ("launch-args12", "triton"), ("launch-args12", "triton-prepared"),
                          ("launch-sync", "triton"), ("launch-sync", "torch")}
    assert all(i.vendor == (name == "torch") and i.backend == name.split("-")[0] for (_, name), i in impls.items())


@interpreted_here
def test_interpreted_sweep_verifies_every_launch_and_records_the_host(ctx, tmp_path):
    out = tmp_path / "r.jsonl"
    tasks = runner.plan(_workloads(), "interpret")
    runner.run_sweep(tasks, ctx, out, resume=False, progress=False)
    recs = load(out)
    assert len(recs) == 7
    assert all(r.status == "ok" for r in recs), [(r.workload, r.impl, r.reason) for r in recs]
    for r in recs:
        assert r.verify["rel_err"] <= r.verify["tolerance"]
        assert (r.view, r.roof, r.flops, r.bytes, r.launches) == ("overhead", "", 0, 0, 1)
        assert not r.meaningful  # interpreter timings are never launch figures
        assert r.env["cpu"] and r.env["python"] and r.env["torch"] and r.env["triton"]
        assert r.env["cpu"] == env.cpu_model()


def _broken(name, impl_name, prepare):
    w = all_workloads()[name]
    impls = tuple(dataclasses.replace(i, prepare=prepare) if i.name == impl_name else i for i in w.impls)
    return dataclasses.replace(w, name=f"{name}-broken", impls=impls)


@interpreted_here
def test_verification_catches_a_launch_that_did_not_happen_or_dropped_an_argument(ctx, tmp_path):
    def no_launch(inp):  # returns the output untouched: still the runner's NaN poison
        return lambda: inp["out"]

    def swapped(inp):  # the first two ints exchanged
        i0, i1, i2, i3 = inp["ints"]
        return ov._triton_args12({**inp, "ints": (i1, i0, i2, i3)})

    out = tmp_path / "r.jsonl"
    tasks = runner.plan([_broken("launch-empty", "triton", no_launch), _broken("launch-args12", "triton", swapped)],
                        "interpret")
    runner.run_sweep(tasks, ctx, out, resume=False, progress=False)
    by = {(r.workload, r.impl): r for r in load(out)}
    assert by["launch-empty-broken", "triton"].status == "failed"
    assert by["launch-empty-broken", "torch"].status == "ok"  # the untouched vendor path still passes
    assert by["launch-args12-broken", "triton"].status == "failed"
    assert "verification failed" in by["launch-args12-broken", "triton"].reason


def test_the_round_trip_synchronizes_only_a_gpu(monkeypatch):
    import torch

    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: waited.append(True))
    assert ov._sync(torch.device("cuda")) is torch.cuda.synchronize  # a GPU call waits for its result
    inp = {"out": torch.full((1,), float("nan"))}
    assert ov._torch_round_trip(inp)() is inp["out"] and inp["out"].item() == 1.0
    assert not waited  # the interpreter's CPU has nothing to wait for


def test_cpu_model_reads_the_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n")
    assert env.cpu_model(str(info)) == "Intel(R) Xeon(R) Platinum 8480+"


@pytest.mark.parametrize("text", ["processor\t: 0\nCPU implementer\t: 0x41\n", "model name\t:\n", None])
def test_cpu_model_without_a_model_name_falls_back_to_the_platform(tmp_path, monkeypatch, text):
    # An Arm host's cpuinfo has no model name; an empty field or a missing file says nothing either.
    info = tmp_path / "cpuinfo"
    if text is not None:
        info.write_text(text)
    monkeypatch.setattr(env.platform, "processor", lambda: "")
    monkeypatch.setattr(env.platform, "machine", lambda: "aarch64")
    assert env.cpu_model(str(info)) == "aarch64"


def test_every_record_of_a_sweep_states_the_cpu():
    e = env.collect(None, interpret=True, command="test")
    assert e["cpu"] == env.cpu_model() and isinstance(e["cpu"], str) and e["cpu"]
    assert {"python", "torch", "triton"} <= set(e)


def test_case_ids_are_stable():
    # --resume matches on the case id: one case per workload, named by its argument count.
    assert [case_id(p) for w in _workloads() for p in w.cases["quick"]] == ["args=1", "args=12", "args=1"]
    assert [w.case_label(w.cases["quick"][0]) for w in _workloads()] == \
        ["empty kernel", "twelve arguments", "launch + synchronize"]
