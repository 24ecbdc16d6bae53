"""`python -m suite counters`: the cases it profiles, finding ncu, the profiled process's command,
recorded skips without a profiler or without counters, and argument errors. A stand-in `ncu`
(a script on PATH that writes what the real one would) drives the command without a GPU; the
tests marked gpu profile for real."""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from analysis.records import load
from suite import counters, registry, runner
from suite.cli import main
from suite.workloads import all_workloads

ROOT = Path(__file__).resolve().parents[2]
MiB, GiB, L2 = 1 << 20, 1 << 30, 60 << 20

HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
          '"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')


def csv_rows(kid, name, read, write, ns):
    out = []
    for metric, unit, value in (("dram__bytes_read.sum", "byte", read), ("dram__bytes_write.sum", "byte", write),
                                ("gpu__time_duration.sum", "nsecond", ns)):
        out.append(",".join(f'"{c}"' for c in (kid, "1", "python", "h", name, "1", "7", "(1, 1, 1)", "(1, 1, 1)",
                                               "0", "9.0", "Command line profiler metrics", metric, unit,
                                               f"{value:,}")))
    return out


# A stand-in for ncu: answers --version and --query-metrics, and for a profiling run writes the
# log ncu would (FAKE_NCU_LOG's text) and the result the profiled process would (FAKE_CHILD), as
# FAKE_NCU_MODE says. It records the command it was given in FAKE_NCU_ARGV.
FAKE_NCU = textwrap.dedent('''\
    import json, os, sys, time
    argv = sys.argv[1:]
    if argv == ["--version"]:
        print("NVIDIA (R) Nsight Compute Command Line Profiler\\nVersion 2099.1.0.0 (build 1) (public-release)")
        sys.exit(0)
    if argv == ["--query-metrics"]:
        print("Device gh100\\nMetric Name      Metric Type  Metric Unit  Metric Description")
        for name in os.environ["FAKE_NCU_OFFERS"].split(","):
            print(f"{name}      Counter      byte      something")
        sys.exit(0)
    with open(os.environ["FAKE_NCU_ARGV"], "w") as f:
        json.dump(argv, f)
    mode = os.environ.get("FAKE_NCU_MODE", "ok")
    log = argv[argv.index("--log-file") + 1]
    result = json.loads(argv[-1])["result"]  # the profiled child's one argument: its JSON spec
    if mode == "hang":
        with open(os.environ["FAKE_NCU_PID"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
    if mode == "crash":
        print("Traceback (most recent call last):\\nRuntimeError: CUDA error: out of memory", file=sys.stderr)
        with open(log, "w") as f:
            f.write("==PROF== Connected to process 1\\n==ERROR== The application returned an error code (1).\\n")
        sys.exit(1)
    with open(log, "w") as f:
        f.write(os.environ.get("FAKE_NCU_LOG", ""))
    with open(result, "w") as f:
        f.write(os.environ["FAKE_CHILD"])
''')


@pytest.fixture
def fake_ncu(tmp_path, monkeypatch):
    """Put the stand-in ncu first on PATH, and make this machine look like one with an H200."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ncu = bin_dir / "ncu"
    ncu.write_text(f"#!{sys.executable}\n" + FAKE_NCU)
    ncu.chmod(ncu.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NCU_ARGV", str(tmp_path / "argv.json"))
    monkeypatch.setenv("FAKE_NCU_PID", str(tmp_path / "ncu.pid"))
    offered = [counters.hw.base_name(m) for m in counters.hw.metric_names() if "fp8" not in m]
    monkeypatch.setenv("FAKE_NCU_OFFERS", ",".join(offered))
    monkeypatch.setenv("FAKE_CHILD", json.dumps({"status": "ok", "verify": {"rel_err": 0.0, "tolerance": 1e-6},
                                                 "config": {"BLOCK": 4096}, "out_bytes": GiB, "input_sets": 1,
                                                 "warmup_calls": 3}))
    monkeypatch.setattr(counters, "visible_gpus", lambda: 1)
    monkeypatch.setattr(counters, "_environment", lambda device, command: h200_env(command))
    return tmp_path


def h200_env(command=""):
    return {"host": "node0", "interpret": False, "command": command, "driver": "570.86",
            "gpu": {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-0", "cc": [9, 0], "sm_count": 132,
                    "l2_bytes": L2, "mem_bytes": 141 * GiB}}


def run(argv, tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    rc = main(["counters", *argv, "--out", str(out)])
    return rc, (load(out) if out.exists() else []), capsys.readouterr()


# ---------------------------------------------------------------- what is profiled

def test_every_headline_case_is_a_case_of_the_full_sweep_and_every_family_has_one():
    workloads = all_workloads()

    def unresolved(pairs):
        return [(name, label) for name, label in pairs
                if name not in workloads or label not in {workloads[name].case_label(p)
                                                          for p in workloads[name].cases[counters.MODE]}]

    assert unresolved(counters.HEADLINE) == []
    assert unresolved([("stream-copy", "3 GiB"), ("nosuch", "1 MiB")]) == [("stream-copy", "3 GiB"),
                                                                            ("nosuch", "1 MiB")]
    families = {workloads[name].family for name, _ in counters.HEADLINE}
    assert families >= {"streaming", "gemm", "attention", "decode"}
    for name, _ in counters.HEADLINE:
        assert counters.HEADLINE_DTYPE in workloads[name].dtypes


def test_streaming_headline_cases_are_at_least_a_gibibyte():
    workloads = all_workloads()
    for name, label in counters.HEADLINE:
        w = workloads[name]
        if w.family == "streaming":
            params = next(p for p in w.cases["full"] if w.case_label(p) == label)
            assert params["array_bytes"] >= GiB


def test_default_plan_is_the_headline_cases_with_every_implementation(capsys):
    assert main(["counters", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"{len(lines) - 1} profiled calls")
    assert any("stream-copy" in line and "torch.copy_" in line for line in lines)
    assert any("attention-fwd" in line and "causal" in line and "triton-naive" in line for line in lines)
    assert all(" bf16 " in line for line in lines[:-1])


def test_only_size_dtype_and_impl_narrow_the_plan(capsys):
    assert main(["counters", "--only", "gemm-square", "--size", "1024x1024x1024", "--dtype", "fp32,fp8",
                 "--impl", "triton", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()[:-1]
    assert [line.split()[1] for line in lines] == ["fp32", "fp8"]


@pytest.mark.parametrize("argv, needle", [
    (["--only", "nosuch"], "unknown workload or family 'nosuch'"),
    (["--size", "3 GiB"], "unknown size '3 GiB'"),
    (["--dtype", "fp9"], "unknown dtype 'fp9'"),
    (["--impl", "nosuch"], "unknown implementation of the selected workloads 'nosuch'"),
    (["--only", "gemm-k-sweep"], "no headline case among gemm-k-sweep: name the cases with --size"),
    (["--only", "stream-copy", "--impl", "torch.matmul"], "unknown implementation"),
    (["--only", "gemm-square", "--size", "8192x8192x8192", "--dtype", "fp32", "--impl", "torch._scaled_mm"],
     "nothing to profile"),
    (["--timeout", "0"], "--timeout must be positive"),
    (["--timeout", "abc"], "invalid float value: 'abc'"),
])
def test_argument_errors_are_one_line_and_exit_2(argv, needle, capsys):
    assert main(["counters", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


# ---------------------------------------------------------------- finding ncu

def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_ncu_is_found_on_path_first(tmp_path, monkeypatch):
    on_path = _executable(tmp_path / "bin" / "ncu")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert counters.find_ncu([str(tmp_path / "nowhere" / "ncu")]) == (str(on_path), ["PATH"])


def test_ncu_is_found_in_the_cuda_install_newest_first(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda"))
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    old = _executable(tmp_path / "nsight" / "2024.1.0" / "ncu")
    new = _executable(tmp_path / "nsight" / "2025.3.1" / "ncu")
    not_executable = tmp_path / "nsight" / "2026.1.0" / "ncu"
    not_executable.parent.mkdir()
    not_executable.write_text("")  # newest, but no profiler: not executable
    places = ["{NO_SUCH_VAR}/bin/ncu", "{CUDA_HOME}/bin/ncu", str(tmp_path / "nsight" / "*" / "ncu")]
    found, looked = counters.find_ncu(places)
    assert found == str(new) and old.exists()
    assert looked == ["PATH", f"{tmp_path}/cuda/bin/ncu", str(tmp_path / "nsight" / "*" / "ncu")]
    in_cuda = _executable(tmp_path / "cuda" / "bin" / "ncu")
    assert counters.find_ncu(places)[0] == str(in_cuda)


def test_without_ncu_every_measurement_is_a_recorded_skip(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(counters, "NCU_PLACES", ())
    rc, records, io = run(["--only", "stream-copy,stream-fill"], tmp_path, capsys)
    assert rc == 0 and len(records) == 4
    for r in records:
        assert r.status == "skipped" and r.view == "counters" and r.counters["workload_view"] == "streaming"
        assert "ncu) was not found (looked on PATH)" in r.reason
    assert "skipped (4): Nsight Compute's profiler (ncu) was not found" in io.out
    assert "Traceback" not in io.err


def test_a_profiler_but_no_gpu_is_one_line_and_exit_2(fake_ncu, monkeypatch, capsys):
    monkeypatch.setattr(counters, "visible_gpus", lambda: 0)
    rc, records, io = run(["--only", "stream-copy"], fake_ncu, capsys)
    assert rc == 2 and records == []
    assert io.err.strip().splitlines() == [
        "error: no CUDA GPU is visible (torch.cuda.is_available() is False): counters are read from a GPU's kernels"]


def test_an_out_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["counters", "--only", "stream-copy", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out {tmp_path} is a directory: name a results file, e.g. {tmp_path}/results.jsonl"]


def test_a_device_that_does_not_exist_is_one_line_and_exit_2(fake_ncu, capsys):
    rc, _, io = run(["--only", "stream-copy", "--device", "3"], fake_ncu, capsys)
    assert rc == 2 and "--device 3 does not exist" in io.err


# ---------------------------------------------------------------- profiling through the stand-in ncu

def test_a_profiled_call_becomes_a_counters_record_with_its_verdict(fake_ncu, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NCU_LOG", "\n".join(["==PROF== Connected to process 1", HEADER,
                                                  *csv_rows("0", "_stream_kernel", 1_073_800_000, 1_046_500_000,
                                                            480_000), "==PROF== Disconnected"]) + "\n")
    rc, records, io = run(["--only", "stream-copy", "--impl", "triton"], fake_ncu, capsys)
    assert rc == 0
    (r,) = records
    c = r.counters
    assert r.status == "ok" and r.view == "counters" and c["workload_view"] == "streaming"
    assert r.verify == {"rel_err": 0.0, "tolerance": 1e-6} and r.config == {"BLOCK": 4096}
    assert c["dram_read_bytes"] == 1_073_800_000 and c["kernels"][0]["name"] == "_stream_kernel"
    assert c["model_bytes"] == 2 * GiB and c["model_write_bytes"] == GiB
    assert c["read_ratio"] == pytest.approx(1_073_800_000 / GiB) and c["verdict"] == "within 5%"
    assert c["ncu"] == "Version 2099.1.0.0 (build 1) (public-release)"
    assert c["not_read"]["sm__ops_path_tensor_src_fp8.sum"] == "not offered by this profiler for this GPU"
    argv = json.loads(Path(os.environ["FAKE_NCU_ARGV"]).read_text())
    for option in (["--csv"], ["--clock-control", "none"], ["--cache-control", "none"],
                   ["--profile-from-start", "off"]):
        i = argv.index(option[0])
        assert argv[i:i + len(option)] == option
    metrics = argv[argv.index("--metrics") + 1].split(",")
    assert "dram__bytes_read.sum" in metrics and "sm__ops_path_tensor_src_fp8.sum" not in metrics
    child = argv[argv.index(sys.executable):]
    assert child[1:3] == ["-m", "suite.counters"]
    spec = json.loads(child[3])  # the child's one argument
    assert spec["params"] == {"array_bytes": GiB} and spec["impl"] == "triton" and spec["dtype"] == "bf16"
    assert c["command"].startswith(str(fake_ncu / "bin" / "ncu"))
    assert "stream-copy" in io.out and "within 5%" in io.out and "Verdict" in io.out


def test_a_copy_the_profiler_saw_no_kernel_of_says_so(fake_ncu, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NCU_LOG", "==PROF== Connected\n==WARNING== No kernels were profiled.\n")
    rc, (r,), io = run(["--only", "stream-copy", "--impl", "torch.copy_"], fake_ncu, capsys)
    assert rc == 0 and r.status == "ok" and r.counters["kernels"] == [] and r.counters["verdict"] == "no kernel"
    assert "memcpy" in r.counters["cause"] and "no kernel" in io.out


def test_counters_the_profiler_cannot_read_are_a_skip_with_its_message(fake_ncu, monkeypatch, capsys):
    message = ("ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU Performance Counters on "
               "the target device 0.")
    monkeypatch.setenv("FAKE_NCU_LOG", f"==PROF== Connected\n==ERROR== {message}\n==PROF== Disconnected\n")
    rc, (r,), io = run(["--only", "stream-copy", "--impl", "triton"], fake_ncu, capsys)
    assert rc == 0 and r.status == "skipped" and r.reason == "profiler: " + message
    assert r.verify is not None  # the call itself ran and was verified
    assert f"skipped (1): profiler: {message}" in io.out


def test_a_failed_verification_in_the_profiled_process_is_a_failed_record(fake_ncu, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_CHILD", json.dumps({"status": "failed", "reason": "verification failed: rel_err 1",
                                                 "verify": {"rel_err": 1.0, "tolerance": 1e-6}, "config": None}))
    rc, (r,), _ = run(["--only", "stream-copy", "--impl", "triton"], fake_ncu, capsys)
    assert rc == 0 and r.status == "failed" and r.reason == "verification failed: rel_err 1"
    assert "dram_read_bytes" not in r.counters


def test_a_profiled_process_that_crashes_is_a_failed_record_with_its_last_line(fake_ncu, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NCU_MODE", "crash")
    rc, (r,), _ = run(["--only", "stream-copy", "--impl", "triton"], fake_ncu, capsys)
    assert rc == 0 and r.status == "failed"
    assert r.reason == ("the profiled process ended without a result (exit status 1): RuntimeError: CUDA error: "
                        "out of memory")


def test_a_profiled_process_past_its_timeout_is_stopped_and_recorded(fake_ncu, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NCU_MODE", "hang")
    rc, (r,), _ = run(["--only", "stream-copy", "--impl", "triton", "--timeout", "2"], fake_ncu, capsys)
    assert rc == 0 and r.status == "failed" and "ran past --timeout 2 s" in r.reason


def test_a_terminated_run_takes_its_profiled_process_with_it(fake_ncu, monkeypatch):
    monkeypatch.setenv("FAKE_NCU_MODE", "hang")
    out, pid_file = fake_ncu / "c.jsonl", fake_ncu / "ncu.pid"
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(Path(__file__).parent)!r}]
        import test_counters as t
        from suite import counters
        from suite.cli import main
        counters.visible_gpus = lambda: 1
        counters._environment = lambda device, command: t.h200_env(command)
        sys.exit(main(["counters", "--only", "stream-copy", "--impl", "triton", "--out", {str(out)!r}]))
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.exists(), parent.communicate()
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 130 and "interrupted" in err and "Traceback" not in err
    ncu_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(ncu_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the profiled process outlived the run")


def test_output_with_a_header_but_not_the_documented_columns_is_a_failure(fake_ncu, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NCU_LOG", '"ID","Kernel Name","Value"\n"0","k","1"\n')
    rc, (r,), _ = run(["--only", "stream-copy", "--impl", "triton"], fake_ncu, capsys)
    assert r.status == "failed" and "lacks the column(s) Metric Name" in r.reason


def test_offered_metrics_reads_the_base_names(fake_ncu):
    names = counters.offered_metrics("ncu")
    assert "dram__bytes_read" in names and "sm__ops_path_tensor_src_fp8" not in names
    assert counters.offered_metrics(str(fake_ncu / "no-such-ncu")) is None


# ---------------------------------------------------------------- the profiled process, on a GPU

@pytest.mark.gpu
def test_the_profiled_process_verifies_and_reports_the_output(tmp_path):
    result = tmp_path / "r.json"
    spec = {"workload": "stream-copy", "params": {"array_bytes": 16 * MiB}, "dtype": "bf16", "impl": "triton",
            "result": str(result)}
    assert counters.child_main([json.dumps(spec)]) == 0
    got = json.loads(result.read_text())
    assert got["status"] == "ok" and got["out_bytes"] == 16 * MiB and got["verify"]["rel_err"] == 0.0


@pytest.mark.gpu
def test_a_gibibyte_copy_reads_what_the_model_counts(tmp_path, capsys):
    # The observation: a Triton copy of 1 GiB read 1.0738 GB from DRAM.
    ncu, _ = counters.find_ncu()
    if ncu is None:
        pytest.skip("Nsight Compute (ncu) is not installed here")
    out = tmp_path / "c.jsonl"
    assert main(["counters", "--only", "stream-copy", "--impl", "triton", "--out", str(out)]) == 0
    (r,) = load(out)
    if r.status == "skipped":
        pytest.skip(r.reason)
    assert r.status == "ok", r.reason
    assert r.counters["read_ratio"] == pytest.approx(1.0, abs=0.05)
    assert r.counters["verdict"] == "within 5%", r.counters["cause"]
