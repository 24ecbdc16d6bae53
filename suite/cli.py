"""`python -m suite`: sweep, sustain, counters, collectives, env (on a GPU); report, compare,
audit, specs, pages (on any machine).

Only the GPU commands import torch and triton; the others read results files
and the spec database and start in a fraction of a second on a machine without
a GPU. This is the only module that knows argparse.

Every user error ends in one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.records import RecordError
from suite.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, check_device
from suite.interpreter import check_interpreter
from suite.results import continue_command, default_out, identity, new_run_id, prepare_output
from suite.timing import TimingPolicy

# Timed seconds per implementation and case. A quick map halves them: its rounds were the largest
# share of a warm quick map's time, and its ceilings stay within a few percent of the full sweep's.
FULL_BUDGET_S = TimingPolicy.budget_s
QUICK_BUDGET_S = FULL_BUDGET_S / 2


def sweep_budget(given: float | None, mode: str) -> float:
    """The timed seconds per implementation and case: --budget, else the mode's default."""
    return given if given is not None else (QUICK_BUDGET_S if mode == "quick" else FULL_BUDGET_S)

SWEEP_HELP = """\
Run workloads over their cases on one GPU: each (workload, case, dtype,
implementation) is verified against a float64 reference (outputs poisoned
with NaN first), then timed with CUDA events around CUDA-graph replays, the
Triton kernel and the vendor path (torch / cuBLAS / SDPA) alternating in
rounds. One JSON line per measurement is appended (and flushed) to --out, with
the GPU, its clocks, power and throttle reasons during the measurement, and
the software versions. At the end the report of the file is printed.

Before the first case, worker processes compile the Triton kernels of every
case into Triton's cache (--compile-workers), then exit; nothing is timed
while they run. A later sweep on the same machine finds them compiled and its
kernels' choices in the tuning store.

examples:
  python -m suite sweep --quick                      # a map of every family in about a minute
  python -m suite sweep --only streaming --dtype fp32,bf16
  python -m suite sweep --only stream-copy --size "2048 MiB"
  python -m suite sweep --list                       # what can run
  python -m suite sweep --quick --dry-run            # what would run
  python -m suite sweep --out r.jsonl --resume       # continue an interrupted sweep
  python -m suite sweep --interpret                  # no GPU: check kernels in Triton's interpreter
  python -m suite sweep --all-gpus --quick           # every GPU of this node, one process each

With --all-gpus the same sweep runs on every GPU at once, one process per GPU
started through torchrun; each rank appends to its own part file
(FILE.jsonl.rank<r>.part) as it goes, and at the end rank 0 gathers all ranks'
records, each naming its host, rank, GPU index and UUID, into --out. Across
nodes, start it with torchrun on each node yourself, e.g.
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
      -m suite sweep --quick --out cluster.jsonl
"""


COLLECTIVES_HELP = """\
Measure the interconnect through torch.distributed's NCCL backend, one process
per GPU: all-reduce, all-gather, reduce-scatter, all-to-all, broadcast (from
rank 0) and send/recv (rank r sends to r+1 while receiving from r-1), over
message sizes from --min-bytes to --max-bytes in x4 steps.

Each (collective, size) is first verified: every rank's input is a known,
non-zero, rank- and position-dependent pattern, outputs are poisoned with NaN,
and every rank's whole output is compared with the known answer (normwise,
within the dtype's tolerance): a wrong output is a failed record, never a
figure. Then, after warm-up and a barrier, each rank times many back-to-back
calls with CUDA events; the time per call is the largest of the ranks'
medians. Rank 0 appends one JSON line per (collective, size) to --out, with
the message size S as nccl-tests count it (the whole buffer: all-gather's
output, reduce-scatter's input) and the time per call t, from which

  algbw = S / t                 busbw = algbw * factor(op, n ranks)
  all-reduce 2(n-1)/n; all-gather, reduce-scatter, all-to-all (n-1)/n;
  broadcast, send/recv 1

busbw is comparable with one GPU's unidirectional link bandwidth (half a
"bidirectional" figure such as NVLink 4's 900 GB/s). NVLink multicast (NVLS)
is kept off in every process (NCCL_NVLS_ENABLE=0 and the like).

examples:
  python -m suite collectives --all-gpus                       # this node, 1 KiB .. 4 GiB
  python -m suite collectives --all-gpus --ops all-reduce,all-gather --max-bytes 256MiB
  python -m suite collectives --all-gpus --cpu --nproc 4       # no GPU: gloo on the CPU
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
      -m suite collectives --out cluster-coll.jsonl             # across nodes
"""


SUSTAIN_HELP = """\
Run one verified case back to back for minutes (--seconds), timing chunks of
calls between CUDA events while NVML is read every few milliseconds in the
background (SM and memory clocks, power, temperature, throttle reasons, the
energy counter). One record is appended to --out with the time series and its
summary: burst (the first --burst seconds) against steady state (the last half
of the run): throughput, SM clock and power with their ratios, the dominant
throttle reason and the time to reach steady state, and the joules per call
where the energy counter measures them. The suite reads clocks and limits and
never sets them. Needs a GPU.

examples:
  python -m suite sustain --workload gemm-square --case 8192x8192x8192 --dtype bf16 --impl torch.matmul --seconds 120
  python -m suite sustain --workload stream-copy --case "2048 MiB" --seconds 60 --plot copy.png
  python -m suite sustain --workload decode-layer --case "llama-3-8b B=64 ctx=8192" --impl torch --seconds 60
  python -m suite sustain --workload decode-layer --case "llama-3-8b B=64 ctx=8192" --impl triton-prepared
"""


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {value!r}")
    return items


def _seconds(low: float, *, inclusive: bool):
    """An argparse type: a number of seconds of at least (or above) `low`."""
    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
        if not (x >= low if inclusive else x > low) or x != x or x == float("inf"):
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'more than'} {low:g} "
                                             f"seconds, got {value}")
        return x
    return parse


def _count(value: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return n


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line, like every other user error (its usage block would bury the
    reason); subcommands inherit it."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m suite",
        description="Map a GPU's roofline as measured: Triton kernels and the vendor path, "
                    "swept over sizes, verified, timed, and set beside the spec sheet.",
        epilog="Run 'python -m suite COMMAND --help' for each command's options.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("sweep", help="measure workloads on a GPU and append records to a JSONL file",
                       description=SWEEP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--only", type=_csv, metavar="NAMES",
                   help="comma-separated workloads or families to run (default: all); see --list")
    s.add_argument("--skip", type=_csv, metavar="NAMES", default=[], help="workloads or families to leave out")
    s.add_argument("--dtype", type=_csv, metavar="DTYPES",
                   help="comma-separated data types (fp32, tf32, fp16, bf16, fp8; default: each workload's own)")
    s.add_argument("--size", type=_csv, metavar="LABELS",
                   help="only the cases with these labels or ids (as --dry-run shows them)")
    mode = s.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="a few cases per workload: a map in about a minute instead of the full sweep")
    mode.add_argument("--full", action="store_true", help="the full sweep (the default)")
    s.add_argument("--out", type=Path, metavar="FILE.jsonl",
                   help="results file to append to (default: results/<gpu>-<time>.jsonl)")
    s.add_argument("--resume", action="store_true",
                   help="continue the sweep that wrote --out: skip the measurements it holds (same workload, "
                        "case, dtype, impl and GPU); refused where its records come from another host, GPU or "
                        "record schema")
    s.add_argument("--append", action="store_true",
                   help="add this run's records to an --out that already holds records (without --resume or "
                        "--append a sweep refuses such a file)")
    s.add_argument("--device", type=int, default=0, metavar="N", help="CUDA device index (default 0)")
    s.add_argument("--all-gpus", action="store_true",
                   help="sweep every GPU of this machine at once, one process per GPU through torchrun; "
                        "rank 0 gathers all records into --out (--device is then ignored)")
    s.add_argument("--nproc", type=int, metavar="N",
                   help="with --all-gpus: how many processes (default: one per GPU); with --interpret, "
                        "N processes on the CPU")
    s.add_argument("--interpret", action="store_true",
                   help="no GPU needed: run the sweep's verification through Triton's interpreter on the "
                        "CPU at tiny sizes; timings are recorded as not meaningful")
    s.add_argument("--settle", type=_seconds(0, inclusive=True), default=2.0, metavar="SECONDS",
                   help="run large matrix products this long first, so clocks and power reach their "
                        "steady state before measuring (default 2; 0 to skip)")
    s.add_argument("--budget", type=_seconds(0, inclusive=False), default=None, metavar="SECONDS",
                   help=f"timed seconds per implementation and case, over {TimingPolicy.rounds} alternating "
                        f"rounds (default {FULL_BUDGET_S:g}; {QUICK_BUDGET_S:g} with --quick)")
    s.add_argument("--energy", type=_seconds(0, inclusive=True), default=0.0, metavar="SECONDS",
                   help="after timing a case, run each implementation alone for SECONDS more, one window "
                        "NVML's energy counter can measure, so its record carries joules per call (with a "
                        "100 ms counter: 3 or more for the bracket around the window within +-5%%; from about "
                        "0.4, measured between the counter's steps inside it; default 0: the timed rounds' "
                        "short windows, which the counter cannot resolve, and energy comes from 'sustain')")
    s.add_argument("--compile-workers", type=_count, default=None, metavar="N",
                   help="before the first case, compile the Triton kernels of the cases in N worker "
                        "processes at once, into Triton's cache (default: half the CPUs, at most 8; 0 "
                        "off); nothing is timed until they have exited, and cases compiled ahead into this "
                        "cache before are not compiled ahead again")
    s.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    s.add_argument("--retune", action="store_true",
                   help="tune every kernel anew instead of taking the choices stored in the user's cache "
                        "directory for this GPU and software (records say which they used)")
    s.add_argument("--list", action="store_true", help="list workloads, their families, dtypes and "
                   "implementations, and exit")
    s.add_argument("--dry-run", action="store_true", help="print the cases the sweep would run, and exit")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--no-report", action="store_true", help="do not print the report at the end")

    co = sub.add_parser("collectives", help="interconnect bandwidth: NCCL collectives over message sizes, "
                        "verified, timed, one process per GPU",
                        description=COLLECTIVES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    co.add_argument("--all-gpus", action="store_true",
                    help="one process per GPU of this machine, started through torchrun (without it, "
                         "start the command under torchrun yourself)")
    co.add_argument("--nproc", type=int, metavar="N",
                    help="with --all-gpus: how many processes (default: one per GPU; 2 with --cpu)")
    co.add_argument("--ops", type=_csv, metavar="OPS",
                    help="comma-separated collectives (default: all-reduce, all-gather, reduce-scatter, "
                         "all-to-all, broadcast, send-recv)")
    co.add_argument("--min-bytes", default="1KiB", metavar="SIZE", help="smallest message (default 1KiB)")
    co.add_argument("--max-bytes", metavar="SIZE",
                    help="largest message (default 4GiB on GPUs, 64KiB with --cpu); sizes go up in x4 steps")
    co.add_argument("--dtype", default="bf16", metavar="DTYPE", help="payload type: bf16 (default), fp16, fp32")
    co.add_argument("--budget", type=_seconds(0, inclusive=False), default=0.2, metavar="SECONDS",
                    help="timed seconds per collective and size (default 0.2)")
    co.add_argument("--out", type=Path, metavar="FILE.jsonl",
                    help="results file to append to (default: results/collectives-<gpu>-x<n>-<time>.jsonl)")
    co.add_argument("--cpu", action="store_true",
                    help="no GPU needed: run the same code over gloo on the CPU at small sizes; timings "
                         "are recorded as not meaningful")
    co.add_argument("--no-progress", action="store_true", help="no progress bar")
    co.add_argument("--no-report", action="store_true", help="do not print the bandwidth table at the end")

    r = sub.add_parser("report", help="tables (and a roofline plot) from results files; no GPU needed",
                       description="Per-GPU roofline tables from one or more results files: measured "
                                   "ceilings beside the spec sheet, each workload case on the roofline, "
                                   "Triton against the vendor path, and the assumptions under each table.")
    r.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl")
    r.add_argument("--format", choices=("github", "plain", "csv"), default="github",
                   help="github (Markdown, default), plain (terminal) or csv (raw full-precision numbers)")
    r.add_argument("--spec", metavar="NAME", help="compare against this spec-sheet entry instead of the one "
                   "matched from the GPU's name (see 'specs')")
    r.add_argument("--plot", metavar="FILE.png|svg", help="also draw the log-log roofline to this file")

    c = sub.add_parser("compare", help="two GPUs: measured ratio beside spec-sheet ratio",
                       description="For each ceiling and workload case present in both runs: the spec "
                                   "ratio B/A beside the measured ratio B/A, largest surprises first. "
                                   "With --spec-b NAME and no B file, the spec ratios alone.")
    c.add_argument("a", type=Path, metavar="A.jsonl")
    c.add_argument("b", type=Path, nargs="?", metavar="B.jsonl")
    c.add_argument("--spec-a", metavar="NAME", help="spec entry for A (default: matched from its GPU)")
    c.add_argument("--spec-b", "--spec", dest="spec_b", metavar="NAME",
                   help="spec entry for B; without B.jsonl, compare A against this spec sheet alone")
    c.add_argument("--gpu-a", metavar="GPU", help="when A holds several GPUs (an --all-gpus sweep): the one "
                   "to compare, as a device index, host:index or UUID")
    c.add_argument("--gpu-b", metavar="GPU", help="likewise for B; without B.jsonl, B is A's file, so "
                   "'compare x2.jsonl --gpu-a 0 --gpu-b 1' sets two GPUs of one run against each other")
    c.add_argument("--format", choices=("github", "plain", "csv"), default="github")

    sp = sub.add_parser("specs", help="list the spec-sheet database, or show one entry with its sources")
    sp.add_argument("name", nargs="?", help="entry to show (default: list all)")
    sp.add_argument("--format", choices=("github", "plain", "csv"), default="github")

    e = sub.add_parser("env", help="show the conditions a sweep would record (GPU, clocks, limits, versions)")
    e.add_argument("--device", type=int, default=0, metavar="N")
    e.add_argument("--json", action="store_true", help="print the raw JSON block records carry")

    # counters: hardware counters against the byte and FLOP models (options in suite/counters.py)
    from suite import counters as counters_cmd
    k = sub.add_parser("counters", help="Nsight Compute's DRAM and FLOP counters held against each case's "
                       "byte and FLOP model", description=counters_cmd.HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("--only", type=_csv, metavar="NAMES",
                   help="comma-separated workloads or families (default: the headline case of every family)")
    k.add_argument("--size", type=_csv, metavar="LABELS",
                   help="the cases with these labels or ids (default: each selected workload's headline case)")
    k.add_argument("--dtype", type=_csv, metavar="DTYPES", help=f"data types (default {counters_cmd.HEADLINE_DTYPE})")
    k.add_argument("--impl", type=_csv, metavar="NAMES", help="only these implementations (default: all)")
    k.add_argument("--out", type=Path, metavar="FILE.jsonl",
                   help="results file to write (default: results/<gpu>-counters-<time>.jsonl)")
    k.add_argument("--append", action="store_true", help="add to an --out that already holds records")
    k.add_argument("--device", type=int, default=0, metavar="N", help="CUDA device index (default 0)")
    k.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0, as the sweep's)")
    k.add_argument("--timeout", type=float, default=counters_cmd.TIMEOUT_S, metavar="SECONDS",
                   help=f"longest one profiled process may run (default {counters_cmd.TIMEOUT_S:g})")
    k.add_argument("--dry-run", action="store_true", help="print what would be profiled, and exit")
    # sustain: one case back to back for minutes, burst against steady state (suite/sustain.py)
    su = sub.add_parser("sustain", help="one case run back to back for minutes: burst against steady state, "
                        "with clocks, power, throttle reasons and energy", description=SUSTAIN_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    su.add_argument("--workload", metavar="NAME", help="the workload to run (see 'sweep --list')")
    su.add_argument("--case", metavar="LABEL", help="its case, by label or id as 'sweep --dry-run' shows them "
                    "(default: the workload's largest quick case)")
    su.add_argument("--dtype", metavar="DTYPE", help="data type (default: bf16 where the workload has it, else "
                    "its first)")
    su.add_argument("--impl", metavar="NAME", help="implementation (default: the workload's first for the dtype, "
                    "the Triton kernel)")
    su.add_argument("--seconds", type=float, default=180.0, help="how long to run it (default 180)")
    su.add_argument("--burst", type=float, default=2.0, metavar="SECONDS",
                    help="the burst window at the start (default 2; at most half of --seconds)")
    su.add_argument("--chunk", type=float, default=0.2, metavar="SECONDS",
                    help="calls timed between two CUDA events, in seconds (default 0.2)")
    su.add_argument("--out", type=Path, metavar="FILE.jsonl",
                    help="results file to append the record to (default: results/<gpu>-sustain-<time>.jsonl)")
    su.add_argument("--append", action="store_true", help="add to an --out that already holds records")
    su.add_argument("--plot", metavar="FILE.png|svg", help="draw throughput, SM clock and power over time")
    su.add_argument("--device", type=int, default=0, metavar="N", help="CUDA device index (default 0)")
    su.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    su.add_argument("--no-report", action="store_true", help="do not print the burst/steady table at the end")
    # pages: the results page of each GPU, from the committed results files and their manifest (analysis/pages.py)
    pg = sub.add_parser("pages", help="write each GPU's results page from the results files and their manifest; "
                        "no GPU needed",
                        description="Write docs/results/<gpu>.md for every GPU the manifest names: its results "
                                    "files, what each is, the command and code that made it, its roofline plot "
                                    "and its report. The same manifest and records give the same pages.")
    pg.add_argument("--manifest", type=Path, default=Path("benchmarks/results/manifest.json"), metavar="FILE.json",
                    help="the manifest (default: benchmarks/results/manifest.json)")
    pg.add_argument("--out", type=Path, metavar="DIR", help="write the pages here instead of the manifest's folder")
    pg.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 naming the pages that differ from what the manifest gives")
    _add_audit_parser(sub)  # audit: the spec sheet's assumptions checked against measurements (analysis/audit.py)
    return p


# ---------------------------------------------------------------- sweep

def _select(workloads: dict, only: list[str] | None, skip: list[str]):
    families = sorted({w.family for w in workloads.values()})
    valid = sorted(workloads) + families
    for name in (only or []) + skip:
        if name not in workloads and name not in families:
            raise UsageError(f"unknown workload or family {name!r}; choose from: {', '.join(valid)}")

    def hit(w, names):
        return w.name in names or w.family in names

    return [w for w in workloads.values() if (only is None or hit(w, only)) and not hit(w, skip)]


def _check_sweep_args(args) -> None:
    """What the arguments alone make wrong, refused before torch is imported."""
    if args.interpret and (args.quick or args.full):
        flag = "--quick" if args.quick else "--full"
        raise UsageError(f"{flag} does not apply to --interpret, which runs every workload at its own tiny "
                         f"interpreter sizes (timings not meaningful); drop {flag}")
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out naming an existing results file")
    if args.nproc is not None and not args.all_gpus:
        raise UsageError("--nproc needs --all-gpus")


def cmd_sweep(args) -> int:
    _check_sweep_args(args)
    if args.interpret:
        # Read by triton when kernels are decorated, so set before they are imported.
        os.environ["TRITON_INTERPRET"] = "1"
    torch = _import_torch()
    from suite.dtypes import DTYPES
    from suite.workloads import all_workloads

    workloads = all_workloads()
    selected = _select(workloads, args.only, args.skip)
    if args.dtype:
        bad = [d for d in args.dtype if d not in DTYPES]
        if bad:
            raise UsageError(f"unknown dtype {bad[0]!r}; choose from: {', '.join(DTYPES)}")
    if args.list:
        print(_list_table(workloads))
        return 0

    from suite import runner
    mode = "interpret" if args.interpret else ("quick" if args.quick else "full")
    tasks = runner.plan(selected, mode, args.dtype, args.size)
    if args.size:
        labels = {w.case_label(p) for w in selected for p in w.cases[mode]}
        bad = [s for s in args.size if s not in labels and not any(t.case == s for t in tasks)]
        if bad:
            raise UsageError(f"unknown size {bad[0]!r} for the {mode} sweep of the selected workloads; "
                             f"choose from: {', '.join(sorted(labels))}")
    if not tasks:
        raise UsageError("nothing to run: the selected workloads have no cases for these dtypes "
                         f"({', '.join(args.dtype or [])}); see --list")
    if args.dry_run:
        for t in tasks:
            print(f"{t.workload.name:24s} {t.dtype:5s} {t.workload.case_label(t.params):28s} "
                  f"impls: {', '.join(i.name for i in t.workload.impls_for(t.dtype))}")
        print(f"{len(tasks)} cases ({mode} sweep)")
        return 0

    if not args.interpret:
        if not torch.cuda.is_available():
            raise UsageError("no CUDA GPU is visible (torch.cuda.is_available() is False): run on a machine "
                             "with an NVIDIA GPU, or add --interpret to check the kernels on the CPU")
        check_device(args.device, torch.cuda.device_count())
    from suite import distributed
    if args.all_gpus or distributed.under_torchrun():
        return distributed.sweep(args, tasks, mode)
    check_interpreter(args)

    from suite import env as env_mod
    from suite import timing
    from suite.telemetry import nvml_handle

    device = "cpu" if args.interpret else f"cuda:{args.device}"
    if not args.interpret:
        torch.cuda.set_device(args.device)
    env = env_mod.collect(None if args.interpret else args.device, interpret=args.interpret,
                          command="python -m suite " + shlex.join(args.argv))
    env["settle_s"] = 0.0 if args.interpret else args.settle
    budget = env["budget_s"] = sweep_budget(args.budget, mode)
    env["energy_s"] = args.energy
    out = args.out or default_out(env["gpu"]["name"], mode)
    prepare_output(out, resume=args.resume, append=args.append, machine={identity(env)})
    ctx = runner.Context(device=device, env=env, interpret=args.interpret,
                         policy=timing.TimingPolicy(budget_s=budget, energy_s=args.energy), run_id=new_run_id(),
                         seed=args.seed, nvml=None if args.interpret else nvml_handle(args.device))
    store = runner.configure_tuning(ctx, retune=args.retune)
    print(f"sweep: {len(tasks)} cases ({mode}) on {env['gpu']['name']} -> {out}"
          + (f" (tuning choices: {store})" if store else ""), file=sys.stderr)
    env["compile_ahead"] = None
    try:
        if not args.interpret:
            from suite import compile_ahead

            workers = compile_ahead.default_workers() if args.compile_workers is None else args.compile_workers
            todo = runner.unfinished(tasks, ctx, out) if args.resume else tasks
            env["compile_ahead"] = compile_ahead.run(todo, device, workers, progress=not args.no_progress)
            runner.settle(args.settle, device)
        writer = runner.run_sweep(tasks, ctx, out, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the records measured so far are in {out}; continue with: "
              f"{continue_command(args.argv, out, out_given=args.out is not None, resumed=args.resume)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"sweep: wrote {writer.count} records to {out}", file=sys.stderr)
    if not args.no_report:
        from analysis.records import load
        from analysis.report import render
        print(render(load(out), fmt="plain"))
    return 0


def _list_table(workloads) -> str:
    from tabulate import tabulate
    rows = [(w.name, w.family, ",".join(w.dtypes), len(w.cases["quick"]), len(w.cases["full"]),
             ", ".join(i.name + ("*" if i.vendor else "") for i in w.impls), w.description)
            for w in workloads.values()]
    return tabulate(rows, headers=("workload", "family", "dtypes", "quick", "full", "implementations (*vendor)",
                                   "what"), tablefmt="simple")


def _import_torch():
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as e:
        raise UsageError(f"{e.name} is not installed: install the suite with `pip install -e .` "
                         "(torch, triton and the rest come with it)") from None
    return torch


def cmd_collectives(args) -> int:
    _import_torch()
    from suite import collectives
    return collectives.main(args)


# ------------------------------------------------------- report, compare, specs, env

def cmd_report(args) -> int:
    from analysis.records import load_many
    records = load_many(args.files)
    from analysis.report import render
    print(render(records, fmt=args.format, spec=args.spec, plot=args.plot))
    return 0


def cmd_compare(args) -> int:
    b_path = args.b or (args.a if args.gpu_b is not None else None)
    if b_path is None and args.spec_b is None:
        raise UsageError("compare needs a second results file B.jsonl, --gpu-b GPU for another GPU of A's "
                         "file, or --spec NAME for a spec-only side")
    from analysis.compare import render
    from analysis.records import load
    from analysis.roofline import select_gpu
    records_a = load(args.a)
    # Two GPUs of one file: read it once.
    records_b = records_a if b_path == args.a else (load(b_path) if b_path else None)
    if args.gpu_a is not None:
        records_a = select_gpu(records_a, args.gpu_a)
    if args.gpu_b is not None:
        records_b = select_gpu(records_b, args.gpu_b)
    print(render(records_a, records_b, spec_a=args.spec_a, spec_b=args.spec_b, fmt=args.format))
    return 0


def cmd_specs(args) -> int:
    from analysis.specs import render
    print(render(args.name, fmt=args.format))
    return 0


def cmd_env(args) -> int:
    torch = _import_torch()
    import json

    from suite import env as env_mod
    has_gpu = torch.cuda.is_available()
    if has_gpu:
        check_device(args.device, torch.cuda.device_count())
    env = env_mod.collect(args.device if has_gpu else None, interpret=not has_gpu)
    if args.json:
        print(json.dumps(env, indent=2))
        return 0
    from tabulate import tabulate
    rows = [(k, v) for k, v in env.items() if k != "gpu"] + [(f"gpu.{k}", v) for k, v in env["gpu"].items()]
    print(tabulate(rows, tablefmt="plain"))
    if not has_gpu:
        print("no CUDA GPU visible: a sweep here can only run with --interpret")
    return 0


COMMANDS = {"sweep": cmd_sweep, "collectives": cmd_collectives, "report": cmd_report, "compare": cmd_compare,
            "specs": cmd_specs, "env": cmd_env}


# counters: hardware counters against the models (suite/counters.py)
def cmd_counters(args) -> int:
    from suite import counters
    return counters.main(args)


COMMANDS["counters"] = cmd_counters


# sustain: one case back to back, burst against steady state (suite/sustain.py)
def cmd_sustain(args) -> int:
    _import_torch()
    from suite import sustain
    return sustain.main(args)


COMMANDS["sustain"] = cmd_sustain


# pages: results pages from the results files and their manifest (analysis/pages.py)
def cmd_pages(args) -> int:
    from analysis import pages
    if not args.check:
        for path in pages.generate(args.manifest, args.out):
            print(path)
        return 0
    if args.out is not None:
        raise UsageError("--check compares the pages in the manifest's own folder; it takes no --out")
    stale = pages.stale(args.manifest)
    if stale:
        print(f"pages out of date: {', '.join(stale)}; regenerate them with: python -m suite pages", file=sys.stderr)
        return 1
    print("pages are current")
    return 0


COMMANDS["pages"] = cmd_pages


# audit: a spec-sheet claim taken apart into its assumptions, each checked (analysis/audit.py)
AUDIT_HELP = """\
Take a spec-sheet claim ("this GPU does 300 TFLOP/s and that one 200, so the
first is 1.5x faster") apart into the four assumptions it silently makes,
and check each against the measurements of a results file:

  1 compute-bound       the case's FLOP/byte against the measured ridge, and
                        the limit that binds: compute roof, memory roof or
                        launch floor
  2 fast path           the best implementation's share of that binding
                        limit, and the spread between the implementations
                        measured (Triton, each vendor backend)
  3 data keeps pace     bytes moved at the measured memory roof against FLOPs
                        at the measured compute roof; achieved bytes/s against
                        the measured ceiling and the spec
  4 sustained           the steady/burst ratio of a sustain run of the case
                        (python -m suite sustain), with clocks, power and
                        throttle reasons while it was timed

Each is marked holds / breaks / not measured (never assumed), with its
number, beside the spec-sheet reader's predicted time and the measured one,
the launch overhead and the energy per unit of work where measured. Every
figure names its record: file, line and run id.

Cases by default: the decode step at batch 1 and 64, decode attention, fused
and naive attention, the largest GEMM and the skinny GEMM (the rule and its
reasons are in analysis/audit.py); --workload keeps those of the workloads
named, --case names others. Several results files of one GPU may be given
(add the sustain runs' files for assumption 4): each case is read from the
latest run that measured it.

examples:
  python -m suite audit results/h200.jsonl --format plain
  python -m suite audit results/h200.jsonl --vs results/h100.jsonl          # two GPUs measured
  python -m suite audit results/h200.jsonl --vs-spec H100-SXM --claim 1.43  # against a spec sheet
  python -m suite audit results/h200.jsonl --predict H100-SXM               # predicted ceilings, times
  python -m suite audit results/h200.jsonl --workload decode-layer --case "llama-3-8b B=16 ctx=8192"
"""


def _claim(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a speed-up such as 1.43, got {value!r}") from None
    if not (x > 0 and x != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive speed-up, got {value}")
    return x


def _add_audit_parser(sub) -> None:
    au = sub.add_parser("audit", help="the assumptions behind a spec-sheet claim, each checked against the "
                        "measurements; a prediction for another GPU; no GPU needed",
                        description=AUDIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    au.add_argument("files", nargs="+", type=Path, metavar="RESULTS.jsonl",
                    help="results files of one GPU (several: each case from the latest run measuring it)")
    other = au.add_mutually_exclusive_group()
    other.add_argument("--vs", type=Path, metavar="OTHER.jsonl",
                       help="a second GPU's results: the spec-predicted speed-up beside the measured one, per case, "
                            "with its 95%% interval, and that GPU's own audit")
    other.add_argument("--vs-spec", metavar="NAME",
                       help="a spec entry alone (see 'specs'): the speed-up its sheet and this GPU's sheet predict, "
                            "beside the one this GPU's measured efficiencies predict")
    au.add_argument("--claim", type=_claim, metavar="RATIO",
                    help="the claimed speed-up of this GPU over the other (e.g. 1.43), checked per case "
                         "(default: the spec sheets' own)")
    au.add_argument("--predict", metavar="NAME",
                    help="apply this GPU's measured efficiencies to NAME's spec sheet: predicted ceilings and case "
                         "times, with their error where --vs measured that GPU (default with --vs-spec: its NAME)")
    au.add_argument("--workload", type=_csv, metavar="NAMES", help="only the cases of these workloads")
    au.add_argument("--case", action="append", metavar="LABEL",
                    help="audit this case (a label or id, as 'report' shows it) instead of the default ones; "
                         "repeat it for more")
    au.add_argument("--dtype", metavar="DTYPE", help="the dtype of the cases (default: bf16 where measured)")
    au.add_argument("--spec", metavar="NAME", help="this GPU's spec entry, instead of the one matched from its name")
    au.add_argument("--gpu", metavar="GPU", help="when the files hold several GPUs: the one to audit (device index, "
                    "host:index or UUID)")
    au.add_argument("--vs-gpu", metavar="GPU", help="likewise for --vs")
    au.add_argument("--format", choices=("github", "plain", "csv"), default="github",
                    help="github (Markdown, default), plain (a terminal, 120 columns) or csv")


def cmd_audit(args) -> int:
    from analysis import audit
    print(audit.render(args.files, vs=args.vs, vs_spec=args.vs_spec, predict_spec=args.predict, claim=args.claim,
                       workloads=args.workload, labels=args.case, dtype=args.dtype, spec=args.spec, gpu=args.gpu,
                       vs_gpu=args.vs_gpu, fmt=args.format))
    return 0


COMMANDS["audit"] = cmd_audit


# `report ... | head`: the reader went away; end as a tool killed by SIGPIPE would, silently.
EXIT_BROKEN_PIPE = 128 + 13


def main(argv: list[str] | None = None) -> int:
    """Run one command. However it ends on a user's input or machine, it ends in one line on
    stderr, never a traceback: a usage, input or output error exits 2, Ctrl-C 130 (at any moment,
    imports included), a closed stdout quietly."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = argv  # recorded in each record's env, so a results file names the command that made it
        if not args.command:
            parser.print_help()
            return EXIT_USAGE
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except UsageError as e:
        return _fail(str(e))
    except (AnalysisError, RecordError) as e:  # a bad results file, spec name or format
        return _fail(str(e))
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:  # writing --out or --plot: a directory, under a file, unwritable, a full disk
        return _fail(_os_error(e, args))
    except ValueError as e:
        if type(e).__module__.startswith("analysis"):  # analysis's own errors: explained in one line
            return _fail(str(e))
        raise


def _fail(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def _os_error(e: OSError, args) -> str:
    reason = e.strerror or str(e)
    where = Path(os.fsdecode(e.filename)) if e.filename else None
    for option in ("out", "plot"):
        path = getattr(args, option, None)
        if path is None:
            continue
        path = Path(path)
        if where is None or where == path:
            return f"cannot write --{option} {path}: {reason}"
        if where in path.parents:  # making its directory failed
            return f"cannot write --{option} {path}: " + (f"{where} is a file, not a directory" if where.is_file()
                                                           else f"{where}: {reason}")
    return f"{where}: {reason}" if where else reason


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush finds nothing to fail on."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture): nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
