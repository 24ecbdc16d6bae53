"""`sustain` on the CPU: the chunk loop, one record with its time series, energy and burst/steady
summary, end to end through the runner's preparation with a fake clock, timer and NVML; and the
command's argument errors."""
import json

import pytest
import torch

from analysis import report
from analysis import sustain as analysis_sustain
from analysis.records import Record, dump
from conftest import interpreted_here
from suite import env, runner, sustain, timing
from suite.cli import main
from suite.registry import Impl, Workload
from suite.telemetry import Sampler
from suite.workloads import all_workloads

SW_POWER_CAP = 0x4


@pytest.fixture
def ctx():
    return runner.Context(device="cpu", env=env.collect(None, interpret=True, command="test"), interpret=True,
                          policy=timing.TimingPolicy(), run_id="sustain-test")


class Clock:
    def __init__(self, t=1.7e9):
        self.t = self.start = t

    def __call__(self):
        return self.t

    @property
    def elapsed(self):
        return self.t - self.start


class Timer:
    """Device time of `calls` calls from a profile of seconds per call over the run; runs the closure
    once per chunk (the verified one) and moves the fake clock on."""

    def __init__(self, clock, per_call, host_gap_s=1e-4):
        self.clock, self.per_call, self.host_gap_s, self.ran = clock, per_call, host_gap_s, 0

    def __call__(self, fn, calls):
        fn()
        self.ran += 1
        device = calls * self.per_call(self.clock.elapsed)
        self.clock.t += device + self.host_gap_s
        return device


def gpu_model(t):
    """SM clock, power and throttle mask of a GPU that boosts for 3 s, then holds a 690 W cap."""
    return (1980, 400.0, 0) if t < 3.0 else (1500, 690.0, SW_POWER_CAP)


def fake_sampler(clock, model=gpu_model, step_s=0.02, period_s=0.005):
    """A Sampler whose readings are written, on leaving the block, for the fake clock's span: the
    real summary and energy code then read them."""

    class FakeSampler(Sampler):
        def __init__(self, handle):
            super().__init__(handle)
            self.energy_problem = None

        def __enter__(self):
            self.t0 = clock()
            return self

        def __exit__(self, *exc):
            t, mj, rows = self.t0 - 0.05, 0.0, []
            next_step, published = self.t0, 0
            end = clock() + 0.1  # the real sampler waits for one more counter step
            while t <= end:
                sm, watts, mask = model(t - self.t0)
                mj += watts * period_s * 1e3
                if t >= next_step:
                    published, next_step = int(mj), next_step + step_s
                rows.append((t, sm, 3201, watts, 60, mask, published))
                t += period_s
            self.rows = rows

    return FakeSampler


def ramp(elapsed):
    """1 ms per call for 3 s, then slower until 8 s, then 1.25 ms (80% of the burst)."""
    return 1e-3 if elapsed < 3 else 1e-3 * (1 + 0.25 * min(1.0, (elapsed - 3) / 5))


def test_chunks_grow_to_their_length_and_stop_after_the_run():
    clock = Clock()
    timer = Timer(clock, lambda t: 1e-3)
    chunks, interrupted = sustain.run_chunks(lambda: None, 2.0, 0.2, timer, clock)
    calls = [c.calls for c in chunks]
    assert not interrupted and calls[:5] == [1, 4, 16, 64, 200] and set(calls[4:]) == {200}
    assert chunks[-1].t1 - clock.start >= 2.0 > chunks[-2].t1 - clock.start
    assert all(a.t1 <= b.t0 for a, b in zip(chunks, chunks[1:]))


def test_chunks_follow_a_slowing_gpu():
    clock = Clock()
    chunks, _ = sustain.run_chunks(lambda: None, 6.0, 0.2, Timer(clock, lambda t: 1e-3 if t < 2 else 2e-3), clock)
    assert chunks[-1].calls == 100  # 0.2 s of 2 ms calls


def test_ctrl_c_keeps_the_chunks_measured():
    clock = Clock()
    timer = Timer(clock, lambda t: 1e-3)

    def interrupt(fn, calls):
        if len(seen) == 3:
            raise KeyboardInterrupt
        seen.append(calls)
        return timer(fn, calls)
    seen = []
    chunks, interrupted = sustain.run_chunks(lambda: None, 60.0, 0.2, interrupt, clock)
    assert interrupted and len(chunks) == 3


def test_a_timer_without_time_is_an_error():
    with pytest.raises(RuntimeError, match="reported 0"):
        sustain.run_chunks(lambda: None, 1.0, 0.2, lambda fn, calls: 0, Clock())


def test_throughput_in_the_workloads_own_unit():
    w = all_workloads()
    layer = {"preset": "llama-3-8b", "batch": 64, "context": 8192}
    assert sustain.throughput_unit(w["decode-layer"], layer, "bf16") == ("tokens_per_s", 64.0)
    gemm = {"M": 8192, "N": 8192, "K": 8192}
    assert sustain.throughput_unit(w["gemm-square"], gemm, "bf16") == ("flop_per_s", 2.0 * 8192 ** 3)
    copy = {"array_bytes": 2 << 30}
    assert sustain.throughput_unit(w["stream-copy"], copy, "fp32") == ("bytes_per_s", float(4 << 30))


def _run(ctx, impl_name="torch.copy_", seconds=20.0, per_call=ramp):
    w = all_workloads()["stream-copy"]
    task = runner.Task(w, {"array_bytes": 4124}, "fp32")
    impl = next(i for i in w.impls if i.name == impl_name)
    clock = Clock()
    timer = Timer(clock, per_call)
    record = sustain.sustain_case(task, ctx, impl, seconds=seconds, chunk_s=0.2, burst_s=2.0, timer=timer,
                                  clock=clock, sampler_cls=fake_sampler(clock))
    return record, timer


def test_one_record_with_series_summary_and_energy(ctx):
    record, timer = _run(ctx)
    assert record.status == "ok" and record.view == "sustain" and record.workload == "stream-copy"
    s = record.sustain
    assert s["workload_view"] == "streaming" and s["unit"] == "bytes_per_s" and s["work_per_call"] == 8248
    n = len(s["series"]["t_s"])
    assert timer.ran == n and all(len(v) == n for v in s["series"].values())
    assert record.time_s["n"] == n and record.verify["rel_err"] <= record.verify["tolerance"]
    assert record.timing["method"] == "cuda-events" and record.timing["meaningful"] is False  # interpreter run

    summary = s["summary"]
    burst, steady = summary["burst"], summary["steady"]
    assert burst["throughput"] == pytest.approx(8248 / 1e-3, rel=1e-6)
    assert steady["throughput"] == pytest.approx(8248 / 1.25e-3, rel=1e-6)
    assert summary["steady_vs_burst"]["throughput"] == pytest.approx(0.8, rel=1e-6)
    assert burst["sm_clock_mhz"] == 1980 and steady["sm_clock_mhz"] == 1500
    assert summary["steady_vs_burst"]["power"] == pytest.approx(690 / 400)
    assert burst["throttle"]["reason"] == "none"
    assert steady["throttle"] == {"reason": "sw_power_cap", "share": 1.0, "reasons": {"sw_power_cap": 1.0}}
    # The throughput enters the 2% band around its steady median shortly before the ramp ends at 8 s.
    assert 7.0 <= summary["time_to_steady_s"] <= 8.2

    # Energy from the counter: the steady window draws 690 W; the whole run is measured too.
    e = s["energy"]["steady"]
    assert e["watts"] == pytest.approx(690.0, rel=0.02)
    assert e["joules_per_call"] == pytest.approx(690.0 * 1.25e-3, rel=0.03)
    assert "joules_per_call" in record.energy and record.telemetry["throttle"] == ["sw_power_cap"]


def test_the_record_reads_back_and_the_report_recomputes_it(ctx):
    record, _ = _run(ctx)
    back = Record.from_dict(json.loads(dump(record)))
    assert analysis_sustain.analyse(back) == record.sustain["summary"]
    text = report.render([back], fmt="plain")
    assert "sustained load, burst against steady state" in text
    assert "sw_power_cap (100% of chunks)" in text and "pJ/byte" in text


def test_a_run_too_short_to_separate_burst_from_steady_says_so(ctx):
    record, _ = _run(ctx, seconds=3.0)
    summary = record.sustain["summary"]
    assert summary["steady_vs_burst"] is None and "overlap" in summary["problem"]


def test_an_implementation_that_fails_verification_is_recorded_failed(ctx):
    def make(params, dtype, device, gen):
        a = torch.rand(params["n"], generator=gen, device=device) + 0.5
        return {"a": a, "out": torch.empty_like(a)}

    wrong = Impl("wrong", False, lambda inp: lambda: torch.mul(inp["a"], 3, out=inp["out"]))
    w = Workload(name="toy-sustain", family="toy", description="out = 2a", dtypes=("fp32",),
                 cases={m: [{"n": 10}] for m in ("quick", "full", "interpret")}, make_inputs=make, impls=(wrong,),
                 reference=lambda inp, p, d: 2 * inp["a"].double(), flops=lambda p, d: p["n"],
                 bytes=lambda p, d: 8 * p["n"])
    clock = Clock()
    record = sustain.sustain_case(runner.Task(w, {"n": 10}, "fp32"), ctx, wrong, seconds=5.0,
                                  timer=Timer(clock, lambda t: 1e-3), clock=clock, sampler_cls=fake_sampler(clock))
    assert record.status == "failed" and "verification failed" in record.reason
    assert record.view == "sustain" and record.sustain is None


def test_a_launch_failing_mid_run_is_recorded_failed(ctx):
    clock = Clock()
    timer = Timer(clock, lambda t: 1e-3)

    def breaks(fn, calls):
        if clock.elapsed > 1.0:
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
        return timer(fn, calls)
    w = all_workloads()["stream-copy"]
    impl = next(i for i in w.impls if i.name == "torch.copy_")
    record = sustain.sustain_case(runner.Task(w, {"array_bytes": 4124}, "fp32"), ctx, impl, seconds=5.0,
                                  timer=breaks, clock=clock, sampler_cls=fake_sampler(clock))
    assert record.status == "failed" and record.view == "sustain"
    assert record.reason == "sustain loop: RuntimeError: CUDA error: an illegal memory access was encountered"
    assert record.verify is not None and record.sustain is None


@interpreted_here
def test_the_triton_kernel_sustains_through_the_interpreter(ctx, working_interpreter):
    record, timer = _run(ctx, impl_name="triton", seconds=6.0, per_call=lambda t: 1e-3)
    assert record.status == "ok" and record.impl == "triton" and timer.ran == len(record.sustain["series"]["t_s"])


# ---------------------------------------------------------------- the command

def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv, needle", [
    (["sustain"], "sustain needs --workload NAME; choose from: "),
    (["sustain", "--workload", "nosuch"], "unknown workload 'nosuch'; choose from: "),
    (["sustain", "--workload", "stream-copy", "--case", "3 GiB"], "unknown case '3 GiB' for stream-copy; choose"),
    (["sustain", "--workload", "stream-copy", "--dtype", "fp8"], "unknown dtype 'fp8' for stream-copy; choose "
                                                                  "from: fp32, bf16"),
    (["sustain", "--workload", "gemm-square", "--impl", "cublas"], "unknown implementation 'cublas' of "
                                                                    "gemm-square for bf16; choose from: triton"),
    (["sustain", "--workload", "stream-copy", "--seconds", "0"], "--seconds must be a positive number"),
    (["sustain", "--workload", "stream-copy", "--seconds", "inf"], "--seconds must be a positive number"),
    (["sustain", "--workload", "stream-copy", "--seconds", "10", "--burst", "6"], "at most half of --seconds"),
    (["sustain", "--workload", "stream-copy", "--chunk", "5"], "--chunk must be between"),
    (["sustain", "--workload", "stream-copy", "--plot", "x.jpg"], "must end in .png or .svg"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith("error: ") and needle in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_without_a_gpu_sustain_is_one_line_and_exit_2(capsys, tmp_path):
    out = tmp_path / "s.jsonl"
    assert main(["sustain", "--workload", "stream-copy", "--seconds", "5", "--out", str(out)]) == 2
    assert "no CUDA GPU" in _err_line(capsys) and not out.exists()


def test_defaults_pick_bf16_the_largest_quick_case_and_the_first_implementation():
    class Args:
        workload, case, dtype, impl = "gemm-square", None, None, None
    w, params, dtype, impl = sustain.resolve(Args, all_workloads())
    assert (w.case_label(params), dtype, impl.name) == ("8192x8192x8192", "bf16", "triton")
    Args.workload, Args.case, Args.impl = "stream-copy", "array_bytes=4194304", "torch.copy_"
    w, params, dtype, impl = sustain.resolve(Args, all_workloads())
    assert (w.case_label(params), dtype, impl.name) == ("4 MiB", "bf16", "torch.copy_")


@pytest.fixture
def gpu_free_command(monkeypatch, ctx):
    """`sustain` as on a GPU machine, but run on the CPU: CUDA is said to be there, and the case runs
    through sustain_case with the CPU context and the fake clock, timer and NVML above."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(sustain, "nvml_handle", lambda i: None)
    monkeypatch.setattr(sustain.env_mod, "collect", lambda *a, **k: ctx.env)
    real, calls = sustain.sustain_case, []

    def on_the_cpu(task, _gpu_ctx, impl, **kw):
        calls.append(task)
        clock = Clock()
        return real(task, ctx, impl, seconds=kw["seconds"], chunk_s=kw["chunk_s"], burst_s=kw["burst_s"],
                    timer=Timer(clock, ramp), clock=clock, sampler_cls=fake_sampler(clock))
    monkeypatch.setattr(sustain, "sustain_case", on_the_cpu)
    return calls


def test_the_command_writes_one_record_prints_the_table_and_plots(gpu_free_command, tmp_path, capsys):
    out, png = tmp_path / "s.jsonl", tmp_path / "s.png"
    rc = main(["sustain", "--workload", "stream-copy", "--case", "1 MiB", "--dtype", "fp32",
               "--impl", "torch.copy_", "--seconds", "12", "--out", str(out), "--plot", str(png)])
    assert rc == 0
    (line,) = out.read_text().splitlines()
    r = json.loads(line)
    assert r["view"] == "sustain" and r["env"]["settle_s"] == 0.0 and r["sustain"]["seconds"] == 12.0
    printed = capsys.readouterr()
    assert "sustained load, burst against steady state" in printed.out and "sw_power_cap" in printed.out
    assert f"plot written to {png}" in printed.err and png.read_bytes()[:4] == b"\x89PNG"


def test_an_out_that_cannot_be_written_is_said_before_the_run(gpu_free_command, tmp_path, capsys):
    assert main(["sustain", "--workload", "stream-copy", "--seconds", "12", "--out", str(tmp_path)]) == 2
    assert _err_line(capsys).startswith(f"error: --out {tmp_path} is a directory") and not gpu_free_command


def test_an_out_that_holds_records_needs_append(gpu_free_command, tmp_path, capsys):
    # Nothing appends to a results file silently: a second run into one file says --append.
    out = tmp_path / "s.jsonl"
    run = ["sustain", "--workload", "stream-copy", "--case", "1 MiB", "--dtype", "fp32", "--impl", "torch.copy_",
           "--seconds", "12", "--no-report", "--out", str(out)]
    assert main(run) == 0
    before = out.read_text()
    capsys.readouterr()
    assert main(run) == 2
    assert "already holds" in _err_line(capsys) and out.read_text() == before
    assert main(run + ["--append"]) == 0
    assert len(out.read_text().splitlines()) == 2
