"""`python -m suite counters`: hardware counters check the byte and FLOP models.

Each (case, dtype, implementation) runs in its own process under Nsight Compute's command-line
profiler (`ncu`): the process builds the inputs and verifies the implementation exactly as the
sweep does (runner.prepare_case), warms it up (the first calls tune and compile), and then makes
one call between torch.cuda.profiler.start() and stop(), so ncu profiles that call alone
(`--profile-from-start off`). ncu reads, per kernel, DRAM bytes read and written, GPU time and the
instruction counters that give executed FLOPs (analysis.counters.METRICS); analysis.counters sums
them over the call's kernels and holds them against the declaration's bytes and FLOPs. One record
per (case, dtype, implementation), view "counters", is appended to --out.

The profiler runs with `--clock-control none` (the clocks the sweep measures under, not ncu's base
clocks) and `--cache-control none` (the L2 as the previous call left it, as in the sweep's
back-to-back calls: data an implementation finds in L2 shows as DRAM bytes below the model).

No profiler, or one that cannot read the counters here (ERR_NVGPUCTRPERM, a library it cannot
load): every planned measurement is a recorded skip with the profiler's own message. `sweep` never
runs or needs ncu.

`python -m suite.counters ...` is the profiled process itself, started by the command above.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from analysis import counters as hw
from suite.errors import EXIT_INTERRUPTED, UsageError, check_device

ROOT = Path(__file__).resolve().parents[1]

# The headline case of every family, the cases the README's figures rest on: the streaming copy,
# read and fill at a 1 GiB array (the HBM regime, far beyond any L2), the largest square GEMM every
# dtype runs, attention at the common benchmarks' shape without and with the causal mask (the fused
# and the naive implementations alike: they are one workload), decode attention over a 2 GiB KV
# cache, the skinny GEMM at batch 1 (decode), and a llama-3-8b layer's decode step at batch 32.
HEADLINE = (
    ("stream-copy", "1024 MiB"),
    ("stream-read", "1024 MiB"),
    ("stream-fill", "1024 MiB"),
    ("gemm-square", "8192x8192x8192"),
    ("attention-fwd", "B4 H32 S4096 D128"),
    ("attention-fwd", "B4 H32 S4096 D128 causal"),
    ("decode-attention", "B=32 H=32/32 ctx=4096"),
    ("gemm-skinny", "M=1 w=8192x8192"),
    ("decode-layer", "llama-3-8b B=32 ctx=8192"),
)
# Every family runs bf16, and it is the dtype whose tensor-core counter the GEMMs and attention check.
HEADLINE_DTYPE = "bf16"
MODE = "full"  # cases are looked up among the full sweep's (which holds every quick case)

WARMUP_CALLS = 3  # calls before the profiled one (at least one per input set)
TIMEOUT_S = 1800.0  # one profiled process: inputs, verification, tuning, and ncu's replay passes
NCU_OPTIONS = {"clock-control": "none", "cache-control": "none"}

# Where ncu lives when it is not on PATH: the CUDA toolkit's bin/, and Nsight Compute's own installs.
NCU_PLACES = ("{CUDA_HOME}/bin/ncu", "{CUDA_PATH}/bin/ncu", "/usr/local/cuda/bin/ncu", "/usr/local/cuda-*/bin/ncu",
              "/opt/nvidia/nsight-compute/*/ncu", "/usr/local/cuda/nsight-compute*/ncu")


HELP = """\
Check the byte and FLOP models against the hardware: each (case, dtype, implementation) is
verified as in the sweep, warmed up, and one call is profiled under Nsight Compute (ncu, found on
PATH or in the CUDA install), with the GPU's clocks as they run. Per kernel, ncu reads DRAM bytes
read and written, GPU time and the tensor-core and FMA instruction counts that give executed
FLOPs; every kernel of the call is summed and held against the bytes and FLOPs the declaration
counts. Verdict: within 5%, or flagged with the likely cause (cache-resident data, an extra kernel
or re-reads, a wrong model). One JSON line per measurement (view "counters") is appended to --out;
`report` tables them beside the roofline. Without ncu, or where it cannot read the counters, each
measurement is a recorded skip with the profiler's message.

By default: the headline case of every family in bf16 (streaming copy, read and fill at 1 GiB,
GEMM 8192^3, attention with and without the causal mask, decode attention over a 2 GiB KV cache,
the skinny GEMM at M=1, a decode layer step), every implementation.

examples:
  python -m suite counters                                   # the headline cases
  python -m suite counters --only gemm-square --dtype fp32,bf16,fp8
  python -m suite counters --only stream-copy --size "2048 MiB" --impl triton
  python -m suite counters --dry-run                         # what would be profiled
"""


# ---------------------------------------------------------------- finding and asking the profiler

def _version_key(path: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def find_ncu(places=None) -> tuple[str | None, list[str]]:
    """(ncu's path or None, where it was looked for): PATH first, then `places` (NCU_PLACES by
    default; the newest match of a pattern first)."""
    places = NCU_PLACES if places is None else places
    looked = ["PATH"]
    found = shutil.which("ncu")
    if found:
        return found, looked
    for place in places:
        try:
            pattern = place.format(**os.environ)
        except KeyError:
            continue  # a variable that is not set
        looked.append(pattern)
        for path in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path, looked
    return None, looked


def not_found_reason(looked: list[str]) -> str:
    return ("Nsight Compute's profiler (ncu) was not found (looked on " + ", ".join(looked) + "): install Nsight "
            "Compute or put ncu on PATH; nothing was profiled")


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None


def ncu_version(ncu: str) -> str | None:
    p = _run([ncu, "--version"])
    if p is None:
        return None
    lines = [line.strip() for line in p.stdout.splitlines() if "version" in line.lower()]
    return lines[-1] if lines else None


def offered_metrics(ncu: str) -> set[str] | None:
    """The base metric names ncu offers for the GPUs here (`ncu --query-metrics`), or None when it
    cannot say (then every metric is asked for, and one it lacks is reported as not read)."""
    p = _run([ncu, "--query-metrics"])
    if p is None or p.returncode != 0:
        return None
    names = {m.group(0) for line in p.stdout.splitlines() if (m := re.match(r"[a-z0-9]+__\w+", line.strip()))}
    return names or None


# ---------------------------------------------------------------- what to profile

def _check_names(names, valid, what: str) -> None:
    for name in names or []:
        if name not in valid:
            raise UsageError(f"unknown {what} {name!r}; choose from: {', '.join(valid)}")


def plan(args, workloads: dict) -> list[tuple]:
    """[(runner.Task, Impl)] to profile, in order; a wrong name is a UsageError."""
    from suite import runner
    from suite.dtypes import DTYPES
    from suite.registry import case_id

    families = sorted({w.family for w in workloads.values()})
    _check_names(args.only, sorted(workloads) + families, "workload or family")
    selected = [w for w in workloads.values()
                if args.only is None or w.name in args.only or w.family in args.only]
    _check_names(args.dtype, list(DTYPES), "dtype")
    _check_names(args.impl, sorted({i.name for w in selected for i in w.impls}),
                 "implementation of the selected workloads")
    dtypes = args.dtype or [HEADLINE_DTYPE]
    if args.size:
        labels = {w.case_label(p) for w in selected for p in w.cases[MODE]}
        ids = {case_id(p) for w in selected for p in w.cases[MODE]}
        bad = [s for s in args.size if s not in labels and s not in ids]
        if bad:
            raise UsageError(f"unknown size {bad[0]!r} for the selected workloads; choose from: "
                             f"{', '.join(sorted(labels))}")
        tasks = runner.plan(selected, MODE, dtypes, args.size)
    else:
        headline = {(name, label) for name, label in HEADLINE}
        if not any(w.name == name for w in selected for name, _ in HEADLINE):
            labels = sorted({w.case_label(p) for w in selected for p in w.cases[MODE]})
            raise UsageError(f"no headline case among {', '.join(w.name for w in selected)}: name the cases with "
                             f"--size (e.g. {', '.join(labels[:4])})")
        tasks = [t for t in runner.plan(selected, MODE, dtypes)
                 if (t.workload.name, t.workload.case_label(t.params)) in headline]
    todo = [(t, i) for t in tasks for i in t.workload.impls_for(t.dtype) if not args.impl or i.name in args.impl]
    if not todo:
        raise UsageError(f"nothing to profile: the selected cases have no implementation for "
                         f"{', '.join(dtypes)}{' among ' + ', '.join(args.impl) if args.impl else ''}")
    return todo


# ---------------------------------------------------------------- one profiled process

@dataclass
class Outcome:
    """What profiling one (case, dtype, implementation) gave: the record's status and reason, its
    verification fields, and for a profiled call the counters' sums and what the model's writes are."""
    status: str
    reason: str = ""
    verify: dict | None = None
    config: dict | None = None
    sums: dict | None = None
    out_bytes: int = 0  # bytes of the call's output (the model's writes, where it moves the minimum)
    info: dict = field(default_factory=dict)  # ncu's version, command, messages, input sets


@dataclass(frozen=True)
class _ChildArgs:
    workload: str
    params: dict
    dtype: str
    impl: str
    device: int
    seed: int
    warmup: int
    result: Path


def _child_argv(task, impl, args, result: Path) -> list[str]:
    spec = {"workload": task.workload.name, "params": task.params, "dtype": task.dtype, "impl": impl.name,
            "device": args.device, "seed": args.seed, "result": str(result)}
    return [sys.executable, "-m", "suite.counters", json.dumps(spec, sort_keys=True)]


def ncu_command(ncu: str, metrics: list[str], log: Path, child: list[str]) -> list[str]:
    options = [x for k, v in NCU_OPTIONS.items() for x in (f"--{k}", v)]
    return [ncu, "--csv", "--print-units", "base", *options, "--profile-from-start", "off",
            "--metrics", ",".join(metrics), "--log-file", str(log), *child]


def _communicate(cmd: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run `cmd` in its own process group; (exit status or None when it ran past `timeout`, stdout,
    stderr). The group is killed on a timeout or an interrupt, so no profiled process outlives us."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip() and not line.startswith("==")]
    return lines[-1][:300] if lines else ""


def profile(ncu: str, metrics: list[str], task, impl, args, tmp: Path, index: int) -> Outcome:
    log, result = tmp / f"{index}.csv", tmp / f"{index}.json"
    cmd = ncu_command(ncu, metrics, log, _child_argv(task, impl, args, result))
    rc, out, err = _communicate(cmd, args.timeout)
    log_text = log.read_text(errors="replace") if log.exists() else ""
    messages = hw.profiler_errors("\n".join((log_text, out, err)))
    info = {"command": shlex.join(cmd), "profiler_messages": messages}
    if rc is None:
        return Outcome("failed", f"the profiled process ran past --timeout {args.timeout:g} s and was stopped",
                       info=info)
    try:
        child = json.loads(result.read_text()) if result.exists() else None
    except ValueError:
        child = None  # cut short: the process died while writing it
    if child is None:
        # The process itself failed (a traceback), or the profiler could not run it at all.
        if messages and "Traceback" not in err:
            return Outcome("skipped", "profiler: " + "; ".join(messages), info=info)
        return Outcome("failed", f"the profiled process ended without a result (exit status {rc}): "
                                 f"{_last_line(err) or _last_line(out) or 'no output'}", info=info)
    info.update(input_sets=child.get("input_sets"), warmup_calls=child.get("warmup_calls"))
    if child["status"] != "ok":
        return Outcome(child["status"], child.get("reason", ""), child.get("verify"), child.get("config"), info=info)
    text = log_text if '"ID"' in log_text else out
    try:
        kernels = hw.parse_csv(text)
    except hw.CounterError as e:
        if messages:
            return Outcome("skipped", "profiler: " + "; ".join(messages), child.get("verify"), child.get("config"),
                           info=info)
        if '"ID"' in text:  # a header, but not the documented one
            return Outcome("failed", f"profiler output: {e}", child.get("verify"), child.get("config"), info=info)
        kernels = []  # ncu profiled no kernel in the range ("No kernels were profiled")
    return Outcome("ok", "", child.get("verify"), child.get("config"), hw.summarize(kernels),
                   int(child.get("out_bytes") or 0), info)


# ---------------------------------------------------------------- the command

def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _environment(device: int | None, command: str) -> dict:
    from suite import env as env_mod

    env = env_mod.collect(device, command=command)
    if device is None:
        env["gpu"]["name"] = "no CUDA GPU"
    return env


def _counters(record, workload_view: str, outcome: Outcome, version: str | None, unoffered: dict) -> dict:
    """The record's `counters` field: what the profiler saw, the model beside it, and the verdict
    (analysis.counters.judge_record, which `report` applies again on reading)."""
    c = {"workload_view": workload_view, "ncu": version, "ncu_options": dict(NCU_OPTIONS), **outcome.info}
    if outcome.status != "ok" or outcome.sums is None:
        return c
    # Where the model is the minimum (inputs read once, the output written once), the output's size
    # is what it writes: reads can then be judged apart from writes.
    model_write = outcome.out_bytes if record.moved_bytes is None and outcome.out_bytes else None
    c.update(outcome.sums, not_read={**outcome.sums["not_read"], **unoffered},
             model_bytes=record.moved_bytes if record.moved_bytes is not None else record.bytes,
             model_flops=record.flops, model_write_bytes=model_write)
    record.counters = c
    j = hw.judge_record(record)
    c.update(read_ratio=j.read_ratio, write_ratio=j.write_ratio, bytes_ratio=j.bytes_ratio,
             flops_ratio=j.flops_ratio, verdict=j.verdict, cause=j.cause)
    return c


def main(args) -> int:
    try:
        import torch  # noqa: F401
        import triton  # noqa: F401
    except ImportError as e:
        raise UsageError(f"{e.name} is not installed: install the suite with `pip install -e .`") from None
    from suite import runner, timing
    from suite.results import default_out, identity, new_run_id, open_writer, prepare_output
    from suite.workloads import all_workloads

    todo = plan(args, all_workloads())
    if args.dry_run:
        for task, impl in todo:
            print(f"{task.workload.name:18s} {task.dtype:5s} {task.workload.case_label(task.params):28s} {impl.name}")
        print(f"{len(todo)} profiled calls, one process each")
        return 0
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout:g}")
    ncu, looked = find_ncu()
    gpus = visible_gpus()
    if ncu and not gpus:
        raise UsageError("no CUDA GPU is visible (torch.cuda.is_available() is False): counters are read from a "
                         "GPU's kernels")
    if gpus:
        check_device(args.device, gpus)
    gpu = bool(gpus)
    env = _environment(args.device if gpu else None, "python -m suite " + " ".join(getattr(args, "argv", [])))
    ctx = runner.Context(device=f"cuda:{args.device}" if gpu else "cpu", env=env, interpret=False,
                         policy=timing.TimingPolicy(), run_id=new_run_id(), seed=args.seed)
    out = args.out or default_out(env["gpu"]["name"], "counters")
    version = ncu_version(ncu) if ncu else None
    offered = offered_metrics(ncu) if ncu else None
    metrics = [m for m in hw.metric_names() if offered is None or hw.base_name(m) in offered]
    unoffered = {m: "not offered by this profiler for this GPU" for m in hw.metric_names() if m not in metrics}
    prepare_output(Path(out), resume=False, append=getattr(args, "append", False), machine={identity(env)})
    writer = open_writer(out)
    print(f"counters: {len(todo)} profiled calls on {env['gpu']['name']} with "
          f"{ncu or 'no profiler (recording skips)'} -> {out}", file=sys.stderr)
    records = []
    # A terminating signal ends the run as Ctrl-C does: the profiled process group is killed with it.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="suite-counters-") as tmp:
            for index, (task, impl) in enumerate(todo):
                label = f"{task.workload.name} {task.workload.case_label(task.params)} {task.dtype} {impl.name}"
                print(f"counters [{index + 1}/{len(todo)}] {label}", file=sys.stderr)
                if ncu is None:
                    outcome = Outcome("skipped", not_found_reason(looked))
                else:
                    outcome = profile(ncu, metrics, task, impl, args, Path(tmp), index)
                record = runner.make_record(task, ctx, impl, outcome.status, outcome.reason, verify=outcome.verify,
                                            config=outcome.config)
                record.view = "counters"
                record.counters = _counters(record, task.workload.view_name, outcome, version, unoffered)
                writer(record)
                records.append(record)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the {writer.count} records profiled so far are in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        writer.close()
    print(f"counters: wrote {writer.count} records to {out}", file=sys.stderr)
    print(summary(records))
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def summary(records) -> str:
    """The counters table of this run's records, then one line per reason a measurement was skipped
    or failed (the records keep each one)."""
    from analysis import roofline as rl
    from analysis.tables import format_sections
    from analysis.views import counters as view

    sections = []
    for rs in rl.by_gpu(records).values():
        sections += view.sections(rl.analyze(rs), rs)
    text = format_sections(sections, "plain")
    reasons: dict[tuple, int] = {}
    for r in records:
        if r.status != "ok":
            reasons[(r.status, r.reason)] = reasons.get((r.status, r.reason), 0) + 1
    lines = [f"{status} ({n}): {reason}" for (status, reason), n in reasons.items()]
    return text + ("\n" + "\n".join(lines) + "\n" if lines else "")


# ---------------------------------------------------------------- the profiled process

def _output_bytes(out) -> int:
    import torch

    if isinstance(out, torch.Tensor):
        return out.numel() * out.element_size()
    if isinstance(out, (tuple, list)):
        return sum(_output_bytes(o) for o in out)
    return 0


def child_main(argv: list[str] | None = None) -> int:
    """One profiled call: inputs and verification as the sweep's, warm-up, then the call between
    cudaProfilerStart and cudaProfilerStop. Its one argument is the JSON the command passes
    (workload, params, dtype, impl, device, seed, result, and optionally warmup); what happened
    goes to the `result` file as JSON."""
    spec = json.loads((sys.argv[1:] if argv is None else argv)[0])
    a = _ChildArgs(spec["workload"], spec["params"], spec["dtype"], spec["impl"], int(spec.get("device", 0)),
                   int(spec.get("seed", 0)), int(spec.get("warmup", WARMUP_CALLS)), Path(spec["result"]))

    import torch

    from suite import env as env_mod
    from suite import runner, timing
    from suite.workloads import all_workloads

    w = all_workloads()[a.workload]
    impl = next(i for i in w.impls if i.name == a.impl)
    torch.cuda.set_device(a.device)
    ctx = runner.Context(device=f"cuda:{a.device}", env=env_mod.collect(a.device), interpret=False,
                         policy=timing.TimingPolicy(), run_id="", seed=a.seed)
    prep = runner.prepare_case(runner.Task(w, a.params, a.dtype), ctx, [impl])
    if prep.rejected:
        _, status, reason, fields = prep.rejected[0]
        result = {"status": status, "reason": reason, "verify": fields.get("verify"), "config": fields.get("config")}
    else:
        v = prep.verified[impl.name]
        warmup = max(a.warmup, len(prep.sets))
        for _ in range(warmup):
            v.fn()
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        out = v.fn()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
        result = {"status": "ok", "verify": v.check, "config": v.config, "out_bytes": _output_bytes(out),
                  "input_sets": len(prep.sets), "warmup_calls": warmup}
    a.result.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
