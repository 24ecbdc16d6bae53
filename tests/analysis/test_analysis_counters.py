"""Nsight Compute's counters against the model: parsing `ncu --csv`, units, sums over a call's
kernels, the verdicts, and the "counters" view."""
import math
from pathlib import Path

import pytest

from analysis import counters as hw
from analysis import report
from analysis import roofline as rl
from analysis.records import Record, dump, load
from analysis.views import counters as view
from test_analysis_roofline import GiB, L2, MiB, env, stream

SAMPLE = Path(__file__).parent / "data" / "ncu_sample.csv"
HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
          '"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')


def row(kid, kernel, metric, unit, value):
    cells = (kid, "4242", "python3.12", "node0", kernel, "1", "7", "(128, 1, 1)", "(1024, 1, 1)", "0", "9.0",
             "Command line profiler metrics", metric, unit, value)
    return ",".join(f'"{c}"' for c in cells)


def csv_text(*rows, header=HEADER, before=("==PROF== Connected to process 4242 (/usr/bin/python3.12)",)):
    return "\n".join([*before, header, *rows]) + "\n"


def kernel_rows(kid, name, read, write, ns, **flop_metrics):
    rows = [row(kid, name, "dram__bytes_read.sum", "byte", f"{read:,}"),
            row(kid, name, "dram__bytes_write.sum", "byte", f"{write:,}"),
            row(kid, name, "gpu__time_duration.sum", "nsecond", f"{ns:,}")]
    return rows + [row(kid, name, m, "inst", f"{v:,}") for m, v in flop_metrics.items()]


FFMA = "smsp__sass_thread_inst_executed_op_ffma_pred_on.sum"
FADD = "smsp__sass_thread_inst_executed_op_fadd_pred_on.sum"
BF16 = "sm__ops_path_tensor_src_bf16_dst_fp32.sum"


# ---------------------------------------------------------------- the committed sample

def test_the_sample_parses_into_kernels_with_the_three_base_metrics():
    # The sample is `ncu --csv` output of one multi-kernel call (Triton's naive attention: scores,
    # softmax, P V) taken on an H200. The checks are structural, so that another capture can
    # replace it.
    kernels = hw.parse_csv(SAMPLE.read_text())
    assert len(kernels) >= 2 and len({k.id for k in kernels}) == len(kernels)
    for k in kernels:
        assert k.name
        for metric in ("dram__bytes_read.sum", "dram__bytes_write.sum", "gpu__time_duration.sum"):
            assert math.isfinite(k.values[metric]) and k.values[metric] >= 0, (k.name, metric)
        assert 0 < k.values["gpu__time_duration.sum"] < 60  # seconds, whatever unit the file used
        assert k.quantity("flops") is not None  # at least one FLOP counter read per kernel
    sums = hw.summarize(kernels)
    for q, total in (("dram_read_bytes", "dram_read_bytes"), ("dram_write_bytes", "dram_write_bytes"),
                     ("time_s", "time_s"), ("flops", "flops_counted")):
        parts = [k[q] for k in sums["kernels"] if k[q] is not None]
        assert sums[total] == pytest.approx(sum(parts)) if parts else sums[total] is None


def test_the_sample_holds_the_documented_columns():
    text = SAMPLE.read_text()
    header = next(line for line in text.splitlines() if line.startswith('"ID"'))
    for column in hw.REQUIRED_COLUMNS:
        assert f'"{column}"' in header


# ---------------------------------------------------------------- parsing and units

@pytest.mark.parametrize("unit, value, expected", [
    ("byte", "1,500,000,000", 1.5e9), ("Kbyte", "1,500,000", 1.5e9), ("Mbyte", "1,500.00", 1.5e9),
    ("Gbyte", "1.50", 1.5e9), ("Tbyte", "0.0015", 1.5e9),
])
def test_byte_units_scale_to_bytes(unit, value, expected):
    k, = hw.parse_csv(csv_text(row("0", "k", "dram__bytes_read.sum", unit, value)))
    assert k.values["dram__bytes_read.sum"] == pytest.approx(expected)


@pytest.mark.parametrize("unit, value", [("nsecond", "2,000,000"), ("usecond", "2,000.00"), ("msecond", "2.00"),
                                         ("second", "0.002"), ("ns", "2000000"), ("us", "2,000")])
def test_time_units_scale_to_seconds(unit, value):
    k, = hw.parse_csv(csv_text(row("0", "k", "gpu__time_duration.sum", unit, value)))
    assert k.values["gpu__time_duration.sum"] == pytest.approx(2e-3)


def test_counts_take_si_prefixes_and_weights():
    k, = hw.parse_csv(csv_text(row("0", "k", FFMA, "Kinst", "1.5"), row("0", "k", FADD, "inst", "7"),
                               row("0", "k", BF16, "", "1,000")))
    assert k.values[FFMA] == 1500 and k.values[FADD] == 7
    assert k.quantity("flops") == 2 * 1500 + 7 + 1000  # an FFMA is two FLOPs


def test_unreadable_values_are_not_read_never_a_crash():
    text = csv_text(row("0", "k", "dram__bytes_read.sum", "byte", "n/a"),
                    row("0", "k", "dram__bytes_write.sum", "furlong", "12"),
                    row("0", "k", "gpu__time_duration.sum", "nsecond", "abc"),
                    row("0", "k", FFMA, "inst", "10"))
    k, = hw.parse_csv(text)
    assert set(k.unread) == {"dram__bytes_read.sum", "dram__bytes_write.sum", "gpu__time_duration.sum"}
    assert "n/a" in k.unread["dram__bytes_read.sum"] and "furlong" in k.unread["dram__bytes_write.sum"]
    sums = hw.summarize([k])
    assert sums["dram_read_bytes"] is None and sums["time_s"] is None and sums["flops_counted"] == 20
    assert set(k.unread) <= set(sums["not_read"]) and "n/a" in sums["not_read"]["dram__bytes_read.sum"]
    # a metric asked for that the output does not hold at all is not read either
    assert sums["not_read"][BF16] == "not in the profiler's output (kernel 0)" and FFMA not in sums["not_read"]


def test_sums_run_over_every_kernel_of_the_call():
    # naive attention: three kernels, each with its own traffic and FLOP kind.
    text = csv_text(*kernel_rows("0", "_scores_kernel", 100, 4000, 1000, **{BF16: 500}),
                    *kernel_rows("1", "_softmax_kernel", 4000, 4000, 2000, **{FADD: 30, FFMA: 5}),
                    *kernel_rows("2", "_pv_kernel", 4100, 100, 1500, **{BF16: 500}))
    sums = hw.summarize(hw.parse_csv(text))
    assert [k["name"] for k in sums["kernels"]] == ["_scores_kernel", "_softmax_kernel", "_pv_kernel"]
    assert sums["dram_read_bytes"] == 8200 and sums["dram_write_bytes"] == 8100
    assert sums["time_s"] == pytest.approx(4.5e-6)
    assert sums["flops_counted"] == 500 + 30 + 2 * 5 + 500
    assert [k["flops"] for k in sums["kernels"]] == [500, 40, 500]


def test_rows_of_one_kernel_are_grouped_by_id_even_when_names_repeat():
    text = csv_text(*kernel_rows("0", "copy", 10, 10, 5), *kernel_rows("1", "copy", 20, 20, 5))
    assert [k.values["dram__bytes_read.sum"] for k in hw.parse_csv(text)] == [10, 20]


def test_profiler_and_application_lines_around_the_csv_are_skipped():
    text = csv_text(*kernel_rows("0", "k", 10, 20, 5)[:2], "==WARNING== something the profiler says",
                    "hello from the application", *kernel_rows("0", "k", 10, 20, 5)[2:],
                    before=("==PROF== Connected", "some stdout line", '"quoted" stdout before the header'))
    k, = hw.parse_csv(text)
    assert k.values["gpu__time_duration.sum"] == 5e-9 and k.values["dram__bytes_write.sum"] == 20


def test_newer_trailing_columns_are_accepted():
    header = HEADER + ',"Rule Name","Rule Type","Rule Description"'
    text = csv_text(row("0", "k", "dram__bytes_read.sum", "byte", "64") + ',"","",""', header=header)
    assert hw.parse_csv(text)[0].values["dram__bytes_read.sum"] == 64


@pytest.mark.parametrize("text, needle", [
    ("==PROF== Connected\n==ERROR== ERR_NVGPUCTRPERM - no permission\n", "no CSV header"),
    ('"ID","Kernel Name","Metric Name","Metric Value"\n"0","k","dram__bytes_read.sum","1"\n', "Metric Unit"),
    ("", "no CSV header"),
])
def test_output_that_is_not_the_documented_csv_is_one_clear_error(text, needle):
    with pytest.raises(hw.CounterError, match=needle):
        hw.parse_csv(text)


def test_profiler_errors_are_collected_once_each():
    text = ("==PROF== Connected\n==ERROR== ERR_NVGPUCTRPERM - The user does not have permission\n"
            "==ERROR== ERR_NVGPUCTRPERM - The user does not have permission\n==ERROR== LibraryNotLoaded\n")
    assert hw.profiler_errors(text) == ["ERR_NVGPUCTRPERM - The user does not have permission", "LibraryNotLoaded"]
    assert hw.profiler_errors("==PROF== fine\n") == []


def test_every_metric_has_a_known_quantity_and_dimension():
    assert len(set(hw.metric_names())) == len(hw.METRICS)
    assert {m.quantity for m in hw.METRICS} == set(hw.QUANTITIES)
    assert hw.base_name("dram__bytes_read.sum") == "dram__bytes_read"


# ---------------------------------------------------------------- verdicts

def sums(read, write, flops=None, kernels=1):
    return {"kernels": [{}] * kernels, "dram_read_bytes": read, "dram_write_bytes": write, "flops_counted": flops,
            "not_read": {}}


def judge(s, model=2 * GiB, write=GiB, flops=0, l2=L2, launches=1, **kw):
    return hw.judge(s, model_bytes=model, model_flops=flops, model_write_bytes=write, l2_bytes=l2,
                    launches=launches, **kw)


def test_within_five_percent_holds_and_just_beyond_is_flagged():
    j = judge(sums(1.049 * GiB, 0.99 * GiB))
    assert j.verdict == "within 5%" and j.flags == () and j.read_ratio == pytest.approx(1.049)
    assert judge(sums(1.051 * GiB, GiB)).flags == ("re-reads",)
    assert judge(sums(0.951 * GiB, GiB)).verdict == "within 5%"


def test_the_issue_copy_holds_reads_first():
    # A 1 GiB copy read 1.0738 GB and wrote 1.0465 GB from DRAM.
    j = judge(sums(1.0738e9, 1.0465e9))
    assert j.verdict == "within 5%"
    assert j.read_ratio == pytest.approx(1.0738e9 / GiB) and j.write_ratio == pytest.approx(1.0465e9 / GiB)


def test_writes_short_by_what_l2_holds_are_a_note_not_a_fault():
    j = judge(sums(GiB, 60 * MiB), model=GiB + 100 * MiB, write=100 * MiB)
    assert j.verdict == "within 5%" and "still sit in L2" in j.cause
    j = judge(sums(GiB, 10 * MiB), model=GiB + 100 * MiB, write=100 * MiB)  # 90 MiB short: beyond a 60 MiB L2
    assert j.flags == ("wrong model",) and "writes" in j.cause


def test_writes_above_the_model_by_what_l2_holds_are_a_note_not_a_fault():
    # A sum writes 4 bytes, yet DRAM saw 4.5 MB written: lines an earlier call left dirty in L2.
    j = judge(sums(GiB, 4.5e6), model=GiB + 4, write=4)
    assert j.verdict == "within 5%" and "left dirty" in j.cause
    assert judge(sums(GiB, 100 * MiB), model=GiB + 4, write=4).flags == ("extra writes",)  # beyond a 60 MiB L2


def test_flops_of_a_memory_roof_workload_are_given_not_judged():
    j = judge(sums(GiB, 4.5e6, flops=1.15e9), model=GiB + 4, write=4, flops=1e9, judge_flops=False)
    assert j.verdict == "within 5%" and j.flops_ratio == pytest.approx(1.15) and "not judged" in j.cause
    assert judge(sums(GiB, 4.5e6, flops=1.15e9), model=GiB + 4, write=4, flops=1e9).flags == ("extra FLOPs",)
    assert judge(sums(GiB, GiB, flops=None), flops=100, judge_flops=False).verdict == "within 5%"


def test_a_split_fp16_path_is_left_out_where_the_aggregate_is_read():
    split = "sm__ops_path_tensor_src_fp16_dst_fp32.sum"
    both = hw.parse_csv(csv_text(row("0", "k", "sm__ops_path_tensor_src_fp16.sum", "", "1000"),
                                 row("0", "k", split, "", "1000")))
    assert both[0].quantity("flops") == 1000  # the same work, counted once
    alone = hw.parse_csv(csv_text(row("0", "k", split, "", "1000"), row("0", "k", BF16, "", "5")))
    assert alone[0].quantity("flops") == 1005


def test_reads_short_by_no_more_than_l2_are_cache_resident():
    j = judge(sums(170 * MiB, 100 * MiB), model=300 * MiB, write=100 * MiB)
    assert j.flags == ("cache-resident",) and "served from L2" in j.cause and j.read_ratio == pytest.approx(0.85)


def test_reads_short_beyond_the_l2_mean_a_wrong_model():
    j = judge(sums(0.5 * GiB, GiB))
    assert j.flags == ("wrong model",) and "never move" in j.cause


def test_unknown_l2_cannot_tell_cache_from_model():
    assert judge(sums(0.5 * GiB, GiB), l2=None).flags == ("below the model",)


def test_above_the_model_is_an_extra_kernel_or_re_reads():
    j = judge(sums(1.3 * GiB, GiB, kernels=2), launches=1)
    assert j.flags == ("extra kernel",) and "2 kernels where the declaration says 1" in j.cause
    assert judge(sums(1.3 * GiB, GiB, kernels=1), launches=1).flags == ("re-reads",)
    assert judge(sums(1.3 * GiB, GiB, kernels=3), launches=None).flags == ("re-reads",)  # count not declared
    assert judge(sums(GiB, 1.3 * GiB)).flags == ("extra writes",)


def test_without_a_read_write_split_the_total_is_judged():
    # naive attention: the model's bytes include score round trips, so no split is known.
    model = 17 * GiB
    assert judge(sums(8.6 * GiB, 8.4 * GiB, kernels=3), model=model, write=None, launches=3).verdict == "within 5%"
    j = judge(sums(8.5 * GiB - 40 * MiB, 8.5 * GiB - 10 * MiB), model=model + GiB, write=None)
    assert j.bytes_ratio == pytest.approx((17 * GiB - 50 * MiB) / (18 * GiB)) and j.flags == ("wrong model",)
    j = judge(sums(100 * MiB, 50 * MiB), model=200 * MiB, write=None)
    assert j.flags == ("cache-resident",) and "writes still in L2" in j.cause
    assert j.read_ratio is None and j.write_ratio is None
    j = judge(sums(120 * MiB, 100 * MiB), model=200 * MiB, write=None)  # 20 MiB over: within what L2 holds
    assert j.flags == ("re-reads",) and "left dirty" in j.cause
    assert "left dirty" not in judge(sums(GiB, GiB), model=GiB, write=None).cause


def test_flops_within_above_and_below_the_model():
    model = 2 * 8192 ** 3
    assert judge(sums(GiB, GiB, flops=1.01 * model), flops=model).verdict == "within 5%"
    j = judge(sums(GiB, GiB, flops=2 * model), flops=model)
    assert j.flags == ("extra FLOPs",) and j.flops_ratio == pytest.approx(2.0)
    j = judge(sums(GiB, GiB, flops=0.5 * model), flops=model)
    assert j.flags == ("wrong model",) and "causal" in j.cause


def test_a_flop_counter_missing_is_named_when_flops_fall_short():
    s = {**sums(GiB, GiB, flops=10.0), "not_read": {"sm__ops_path_tensor_src_fp8.sum": "not offered"}}
    j = judge(s, flops=1000)
    assert "sm__ops_path_tensor_src_fp8.sum" in j.cause


def test_compute_bound_workloads_name_flops_first():
    s = sums(1.3 * GiB, GiB, flops=2.0)
    assert judge(s, flops=1).flags == ("re-reads", "extra FLOPs")
    assert judge(s, flops=1, flops_first=True).flags == ("extra FLOPs", "re-reads")


def test_nothing_to_check_when_the_model_has_no_flops_or_the_counters_none():
    assert judge(sums(GiB, GiB, flops=123.0), flops=0).flops_ratio is None
    assert judge(sums(GiB, GiB, flops=None), flops=100).flags == ("not read",)
    assert judge(sums(None, GiB)).flags == ("not read",)


def test_a_call_the_profiler_saw_no_kernel_of_says_so():
    j = hw.judge({"kernels": []}, model_bytes=2 * GiB, model_flops=0, launches=1)
    assert j.flags == ("no kernel",) and "memcpy" in j.cause and "declaration says 1" in j.cause


def test_a_kernel_count_other_than_declared_is_noted():
    j = judge(sums(GiB, GiB, kernels=1), launches=2)
    assert j.verdict == "within 5%" and "1 kernel(s) where the declaration says 2" in j.cause


# ---------------------------------------------------------------- records and the view

def counter_record(read, write, *, impl="triton", kernels=1, status="ok", reason="", flops=0, launches=1,
                   stored_verdict=None):
    r = stream("copy", 2 * GiB, 1.0, impl=impl, dtype="bf16")
    r.view, r.time_s, r.timing, r.telemetry, r.status, r.reason, r.launches = (
        "counters", None, None, None, status, reason, launches)
    r.counters = {"workload_view": "streaming", "ncu": "Version 2025.1.0.0", "ncu_options": {"cache-control": "none"}}
    if status == "ok":
        s = sums(read, write, flops, kernels)
        j = judge(s)
        r.counters.update(s, kernels=[{"id": str(i), "name": "k", "dram_read_bytes": read / kernels,
                                       "dram_write_bytes": write / kernels, "time_s": 1e-4, "flops": None}
                                      for i in range(kernels)],
                          model_bytes=2 * GiB, model_flops=0, model_write_bytes=GiB, time_s=kernels * 1e-4,
                          verdict=stored_verdict or j.verdict, cause=j.cause)
    else:
        r.verify = None
    return r


def view_rows(records):
    a = rl.analyze(records)
    (section,) = view.sections(a, [r for r in records if r.view == "counters"])
    return section, section.tables[0].rows


def test_the_view_tables_ratios_verdicts_and_skips():
    section, rows = view_rows([counter_record(1.0738e9, 1.0465e9),
                               counter_record(0, 0, impl="torch.copy_", status="skipped",
                                              reason="profiler: ERR_NVGPUCTRPERM - no permission")])
    by_impl = {r[3]: r for r in rows}
    ok = by_impl["triton"]
    assert ok[4] == "1" and ok[6] == 1.0738e9 and ok[8] == pytest.approx(1.0738e9 / GiB) and ok[14] == "within 5%"
    skipped = by_impl["torch.copy_"]
    assert skipped[14] == "skipped: profiler: ERR_NVGPUCTRPERM - no permission" and "ERR_NVGPUCTRPERM" in skipped[16]
    assert any("--cache-control none (the L2 as the previous call left it)" in n for n in section.notes)


def test_the_view_recomputes_the_verdict_and_puts_causes_under_the_table():
    r = counter_record(0.5 * GiB, GiB, stored_verdict="within 5%")  # a stale verdict on disk
    section, rows = view_rows([r])
    assert rows[0][14] == "wrong model"
    assert any(n.startswith("stream-copy") and "never move" in n for n in section.notes)


def test_the_view_shows_the_sweep_figure_of_the_same_case_beside_the_counters():
    swept = stream("copy", 2 * GiB, 4.2e12, dtype="bf16")
    other = stream("copy", 2 * GiB, 1.0e12, impl="torch.copy_", vendor=True, dtype="bf16")
    _, rows = view_rows([swept, other, counter_record(1.0738e9, 1.0465e9)])
    assert rows[0][15].value == pytest.approx(4.2e12) and rows[0][15].kind == "bytes_per_s"


def test_report_shows_the_counters_beside_the_roofline(tmp_path):
    f = tmp_path / "mixed.jsonl"
    records = [stream("copy", 2 * GiB, 4.2e12, dtype="bf16"), counter_record(1.0738e9, 1.0465e9)]
    f.write_text("".join(dump(r) + "\n" for r in records))
    text = report.render(load(f), fmt="plain")
    assert "hardware counters against the model" in text and "within 5%" in text
    assert "streaming bandwidth by working set" in text
    csv = report.render(load(f), fmt="csv")
    assert "counters" in csv


def test_a_counters_record_without_counts_is_not_judged():
    r = counter_record(GiB, GiB)
    r.counters = {"workload_view": "streaming"}
    assert hw.judge_record(r) is None
    _, rows = view_rows([r])
    assert rows[0][14] == "no counters"


def test_records_of_the_view_round_trip_through_a_results_file(tmp_path):
    f = tmp_path / "c.jsonl"
    r = counter_record(1.0738e9, 1.0465e9)
    f.write_text(dump(r) + "\n")
    (back,) = load(f)
    assert isinstance(back, Record) and back.counters["dram_read_bytes"] == 1.0738e9
    assert hw.judge_record(back).verdict == "within 5%" and back.env == env()
