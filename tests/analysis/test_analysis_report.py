"""`report`: sections per family present, formats, labels of what is not meaningful, multi-GPU flags."""
import csv
import datetime
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import records, report
from analysis.errors import AnalysisError
from test_analysis_roofline import GiB, MiB, case, env, gemm, h200, rec, stream, telemetry

ROOT = Path(__file__).resolve().parents[2]


def table(built, section_title, table_title=None):
    """The raw rows of a table of `report.build`'s sections (numbers unformatted)."""
    section = next(sec for sec in built if section_title in sec.title)
    return next(t for t in section.tables if table_title is None or t.title == table_title).rows


def sections(text):
    return [line[3:] for line in text.splitlines() if line.startswith("## ")]


def test_only_families_present_get_sections():
    titles = sections(report.render([r for r in h200() if r.family == "streaming"]))
    assert any("streaming bandwidth" in t for t in titles)
    assert not any(word in " ".join(titles) for word in ("GEMM", "attention", "decode", "Interconnect", "side by side"))
    titles = sections(report.render(h200()))
    assert any("GEMM cases" in t for t in titles) and not any("skinny" in t for t in titles)


def test_streaming_table_has_ratio_and_hbm_ceiling_under_it():
    text = report.render(h200())
    part = text[text.index("streaming bandwidth"):]
    assert "torch.copy_" in part and "1.031" in part  # Triton/vendor at 4 GiB: 1 / 0.97
    assert "Measured HBM ceiling: 4,400 GB/s" in part and "91.7% of the spec sheet's 4,800 GB/s" in part
    assert "| transition |" in part


def test_csv_is_one_tidy_table_of_raw_full_precision():
    recs = h200(hbm=4.4123456789e12)
    rows = list(csv.DictReader(io.StringIO(report.render(recs, fmt="csv"))))
    assert len(rows) == len(recs)  # one row per record, one header
    assert len({tuple(r) for r in rows}) == 1  # the same columns in every row
    hbm = next(r for r in rows if r["workload"] == "stream-copy" and r["bytes"] == str(4 * GiB) and r["vendor"] == "False")
    assert float(hbm["bytes_per_s"]) == pytest.approx(4.4123456789e12, rel=1e-12)
    assert not any("GB/s" in cell for r in rows for cell in r.values())


def test_github_and_plain_formats():
    github, plain = report.render(h200()), report.render(h200(), fmt="plain")
    assert "| HBM bandwidth " in github and "|---" in github
    assert "|" not in plain and "HBM bandwidth" in plain and "=====" in plain


@pytest.mark.parametrize("kwargs, message", [
    (dict(fmt="html"), "unknown format 'html'; valid: github, plain, csv"),
    (dict(spec="H300"), "unknown spec 'H300'; valid: H100-SXM"),
    (dict(plot="roofline.pdf"), "must end in .png or .svg"),
])
def test_bad_arguments_are_one_line(kwargs, message):
    with pytest.raises(AnalysisError, match=message) as e:
        report.render(h200(), **kwargs)
    assert "\n" not in str(e.value)


def test_empty_and_foreign_input():
    with pytest.raises(AnalysisError, match="no records"):
        report.render([])
    with pytest.raises(AnalysisError, match="not an analysis.records.Record"):
        report.render([{"workload": "stream-copy"}])


def test_interpreter_records_are_labelled_and_set_no_ceiling():
    cpu = {"host": "laptop", "interpret": True, "gpu": {"index": None, "name": "cpu (Triton interpreter)"}}
    rs = [stream("copy", 4 * GiB, 1e9, meaningful=False, env_=cpu),
          stream("copy", 4 * GiB, 2e9, impl="torch.copy_", vendor=True, meaningful=False, env_=cpu)]
    text = report.render(rs)
    assert "No record holds a meaningful timing" in text
    assert "not meaningful (interpreter timing)" in text
    assert "not measured: no meaningful streaming case" in text
    assert "no spec entry matches 'cpu (Triton interpreter)'" in text


def test_failed_cases_show_their_status():
    rs = h200() + [stream("copy", 2 * GiB, 1e12, status="failed", reason="verification failed: rel_err 1")]
    text = report.render(rs)
    assert "Triton failed: verification failed: rel_err 1" in text
    assert "## Failures and skips" in text


def test_unknown_gpu_and_spec_override():
    e = env(name="NVIDIA Mystery X1", mem=33 * GiB)
    text = report.render(h200(e))
    assert "no spec entry matches 'NVIDIA Mystery X1'" in text and "--spec NAME" in text
    text = report.render(h200(e), spec="H100-SXM")
    assert "H100-SXM, chosen with --spec" in text and "3,350" in text


def test_gemm_skinny_attention_and_decode_sections():
    skinny = []
    for m in (1, 64, 256, 1024):
        flops, nbytes = 2 * m * 8192 * 8192, (2 * m * 8192 + 8192 * 8192) * 2
        t = max(nbytes / 4.0e12, flops / 720e12)
        skinny.append(rec("gemm-skinny", "gemm", params={"M": m, "N": 8192, "K": 8192}, flops=flops, nbytes=nbytes,
                          seconds=t))
        skinny.append(rec("gemm-skinny", "gemm", "torch.matmul", vendor=True, params={"M": m, "N": 8192, "K": 8192},
                          flops=flops, nbytes=nbytes, seconds=t * 1.3))
    p = {"B": 4, "H": 32, "S": 4096, "D": 128, "causal": True}
    attn = [case("attention", "attention-fused", 10**13, 1 * GiB, 500e12, params=p),
            case("attention", "attention-naive", 10**13, 1 * GiB, 100e12, params=p, impl="triton-naive",
                 moved=20 * GiB),
            case("attention", "attention-fused", 10**13, 1 * GiB, 550e12, params=p, impl="sdpa-cudnn", vendor=True)]
    kv = 2 * 32 * 8 * 4096 * 128 * 2
    decode = [case("decode", "decode-attention", 4 * kv, kv, 4.0 * 4.0e12,
                   params={"batch": 32, "q_heads": 32, "kv_heads": 8, "context": 4096})]
    text = report.render(h200() + skinny + attn + decode)
    assert "memory-bound until M = 256 by the measured ridge" in text
    assert re.search(r"\|\s*5\.000 ", text)  # fused / naive speed-up
    part = text[text.index("decode step"):]
    tokens = 32 / (kv / 4.0e12)
    assert f"{tokens:,.0f}" in part
    assert re.search(r"\|\s*1\.200 \|", part)  # measured / spec-predicted: 4.8 / 4.0 (numbers align right)


def test_multi_gpu_file_flags_the_slow_gpu_with_its_conditions():
    slow = env(1, power_limit=450)
    rs = h200(env(0)) + [r for r in h200(slow) if r.family != "streaming"] + [
        stream("copy", 4 * GiB, 3.9e12, env_=slow, tel=telemetry(sm=1410, power=450, throttle=["sw_power_cap"])),
        stream("copy", 8 * MiB, 9e12, env_=slow)]
    text = report.render(rs)
    part = text[text.index("## GPUs side by side"):]
    assert "H200 #0 on node0" in part and "H200 #1 on node0" in part and "median of node0" in part
    flagged = part[part.index("Flagged GPUs"):]
    assert "HBM bandwidth" in flagged and "SM 1410 MHz" in flagged and "sw_power_cap" in flagged
    assert "compute bf16" not in flagged


def test_collectives_section_compares_busbw_with_the_per_direction_link():
    rs = h200()
    size, t = 1 << 30, (1 << 30) / 360e9
    for rank in (0, 1):
        rs.append(rec("nccl-all-reduce", "collective", "torch.distributed", vendor=True,
                      params={"op": "all-reduce", "message_bytes": size, "world_size": 2}, nbytes=size,
                      seconds=t * (1 + 0.1 * rank), env_=env(rank)))
    text = report.render(rs)
    part = text[text.index("Interconnect"):]
    mean_t = t * 1.05
    assert f"{size / mean_t / 1e9:.1f}" in part  # busbw = algbw for 2-rank all-reduce
    assert "450.0" in part and "per direction" in part
    assert f"{size / mean_t / 450e9:.1%}" in part
    # The collective ranks do not make this a multi-GPU report.
    assert "## GPUs side by side" not in text


def test_report_of_a_few_thousand_records_is_fast(tmp_path):
    rs = []
    for gpu in range(8):  # one node's sweep: 8 GPUs x 270 cases
        e = env(gpu)
        rs += h200(e)
        for k in range(1, 88):
            rs += [stream("triad", k * 64 * MiB, 4.3e12, env_=e), gemm(64 * k, 4096, 4096, 600e12, env_=e),
                   gemm(64 * k, 4096, 4096, 650e12, impl="torch.matmul", vendor=True, env_=e)]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(records.dump(r) + "\n" for r in rs))
    loaded = records.load(path)
    start = time.process_time()  # CPU time: other jobs on a shared CI machine do not count
    report.render(loaded)
    report.render(loaded, fmt="csv")
    assert len(loaded) == 2144 and time.process_time() - start < 1.0


def test_analysis_imports_neither_torch_nor_triton():
    code = ("import sys, analysis.report, analysis.compare, analysis.specs, analysis.plot, analysis.collectives; "
            "heavy = [m for m in ('torch', 'triton', 'matplotlib', 'numpy') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_collectives_across_nodes_have_no_spec_column():
    size, t = 1 << 30, (1 << 30) / 40e9
    rs = [rec("nccl-all-reduce", "collective", "nccl", vendor=True, nbytes=size, seconds=t,
              params={"op": "all-reduce", "message_bytes": size, "world_size": 16, "nodes": 2})]
    peak = table(report.build(rs), "Interconnect", "Peak bus bandwidth against the spec")[0]
    assert peak[0] == "all-reduce" and peak[3] == pytest.approx(size / t * 2 * 15 / 16)
    assert peak[5] is None and peak[6] is None


def test_shape_search_counts_only_measured_shapes():
    search = [gemm(m, 4096, 8192, 700e12, workload="gemm-shape-search") for m in (4096, 8192)]
    search += [gemm(m, 4096, 8192, 690e12, impl="torch.matmul", vendor=True, workload="gemm-shape-search")
               for m in (4096, 8192)]
    search += [gemm(6144, 4096, 16384, 1.0, workload="gemm-shape-search", status="skipped", reason="time budget")]
    row = table(report.build(search), "GEMM shape search")[0]
    assert row[:2] == ["bf16", 2]


def test_where_the_sweeps_time_went_counts_each_case_once_and_the_tuning_sources():
    recs = h200()
    for i, r in enumerate(recs):
        r.wall = {"case_s": 2.0 if r.family == "gemm" else 1.0}
        r.config = {"tuning": "cache" if r.vendor else "tuned"} if not r.vendor else None
    rows = table(report.build(recs), "Where the sweep's time went")
    by = {row[1]: row for row in rows}
    # Streaming: 3 cases of 1 s (two with two implementations); GEMM: 1 case of 2 s.
    assert by["streaming"][2:5] == [3, 3.0, pytest.approx(0.6)] and by["gemm"][2:4] == [1, 2.0]
    assert by["all"][2:5] == [4, 5.0, 1.0] and by["all"][5:7] == [4, 0]
    assert by["all"][7] is None and by["gemm"][7] is None  # the fixtures' run id names no start time
    assert not any(s.title == "Where the sweep's time went" for s in report.build(h200()))  # no wall: no section


def test_start_to_last_record_runs_from_the_run_ids_start_time_to_the_latest_timestamp():
    recs = h200()
    start = datetime.datetime(2026, 12, 2, 0, 45, 50, tzinfo=datetime.timezone.utc)
    for i, r in enumerate(recs):
        r.run_id, r.wall = "20261202T004550Z-fd0e27", {"case_s": 1.0}
        r.timestamp = (start + datetime.timedelta(seconds=10.5 + 7 * i)).isoformat()
    rows = table(report.build(recs), "Where the sweep's time went")
    last = 10.5 + 7 * (len(recs) - 1)
    assert {row[1]: row for row in rows}["all"][7] == pytest.approx(last)
    recs[-1].timestamp = "not a time"  # an unreadable stamp is left out, never guessed
    rows = table(report.build(recs), "Where the sweep's time went")
    assert {row[1]: row for row in rows}["all"][7] == pytest.approx(last - 7)


def test_a_transition_row_faster_than_the_l2_plateau_is_named_and_a_slower_one_is_not():
    recs = h200()  # its 48 MiB copy (transition) runs 1.3x the L2 plateau
    notes = next(s for s in report.build(recs) if s.title.endswith("streaming bandwidth by working set")).notes
    (note,) = [n for n in notes if "run faster than the L2 plateau" in n]
    assert note.startswith("1 transition row(s)") and "working set 48 MiB" in note
    slow = [r for r in recs if r.bytes != 48 * MiB] + [stream("copy", 48 * MiB, 8.0e12)]
    notes = next(s for s in report.build(slow) if s.title.endswith("streaming bandwidth by working set")).notes
    assert not any("run faster than the L2 plateau" in n for n in notes)


def test_where_the_time_went_splits_a_case_into_compiles_warm_ups_and_rounds():
    recs = h200()
    for r in recs:
        r.wall = {"case_s": 2.0, "setup_s": 0.5}
        r.timing = {**(r.timing or {}), "estimating_s": 0.25, "rounds_s": 0.75}
    rows = table(report.build(recs), "Where the sweep's time went")
    by = {row[1]: row for row in rows}
    cases = by["all"][2]
    # Each implementation's own parts summed over its records; the rounds, shared by a case's
    # implementations, once per case.
    assert by["all"][9:] == [0.5 * len(recs), 0.25 * len(recs), pytest.approx(0.75 * cases)]
    for r in recs:
        r.wall, r.timing = {"case_s": 2.0}, {k: v for k, v in r.timing.items() if k not in ("estimating_s", "rounds_s")}
    rows = table(report.build(recs), "Where the sweep's time went")
    assert {row[1]: row for row in rows}["all"][8:] == [None] * 4  # older records: not split, not guessed


def test_where_the_time_went_shows_the_compiling_ahead_of_each_run():
    recs = h200()
    for r in recs:
        r.wall = {"case_s": 2.0}
        r.env = {**r.env, "compile_ahead": {"workers": 8, "seconds": 12.5}}
    by = {row[1]: row for row in table(report.build(recs), "Where the sweep's time went")}
    assert by["all"][8] == 12.5  # once per run, beside its start-to-last time
    assert all(row[8] is None for family, row in by.items() if family != "all")
    for r in recs:
        r.env = {**r.env, "compile_ahead": None}  # not done: a dash, not a zero
    assert {row[1]: row for row in table(report.build(recs), "Where the sweep's time went")}["all"][8] is None
