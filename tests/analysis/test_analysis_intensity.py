"""The "intensity" view on synthetic sweeps whose plateau, ridge and bend are known answers."""
import math

import pytest

from analysis import report
from analysis import roofline as rl
from analysis.tables import format_sections
from analysis.views import VIEWS
from analysis.views import intensity as iv
from test_analysis_roofline import GiB, gemm, rec, stream

HBM = 4.0e12  # the measured HBM ceiling of these sweeps
SPEC_FP32 = 67e12  # the H200 SXM's non-tensor fp32 figure in analysis/specs.json
SPEC_BW = 4.8e12


def point(k, flop_per_s=None, *, dtype="fp32", bytes_per_s=None, **kw):
    """One point of an intensity sweep on 1 GiB arrays: k multiply-adds per element, its FLOP/s
    (or, for k = 0, its bytes/s)."""
    esize = 4 if dtype == "fp32" else 2
    n = GiB // esize
    flops, nbytes = 2 * k * n, 2 * n * esize
    seconds = flops / flop_per_s if k else nbytes / bytes_per_s
    return rec(f"intensity-{dtype}", "intensity", dtype=dtype, params={"k": k, "array_bytes": GiB}, flops=flops,
               nbytes=nbytes, seconds=seconds, view="intensity", roof="traced", **kw)


def hbm_ceiling():
    return stream("copy", 4 * GiB, HBM)


def sweep(points, dtype="fp32", *, extra=(hbm_ceiling(),)):
    """The view's curve of one dtype, and the analysis it was drawn against."""
    a = rl.analyze([*extra, *points])
    return iv.curve(a, dtype, points), a


def built(records):
    a = rl.analyze(records)
    return iv.sections(a, [r for r in records if r.view == "intensity"])


def summary_row(sections, dtype):
    cols = sections[0].tables[0].cols
    row = next(r for r in sections[0].tables[0].rows if r[0] == dtype)
    return {c.key: v for c, v in zip(cols, row)}


def notes(sections) -> str:
    return " | ".join(sections[0].notes)


def k_of(r) -> int:
    return r.params["k"]


# The two-line model itself: F = min(60 TFLOP/s, intensity x 4 TB/s), ridge 15 FLOP/B (k = 60 in fp32).
SHARP = [point(0, bytes_per_s=3.9e12), point(4, 4e12), point(16, 16e12), point(48, 48e12), point(56, 56e12),
         point(256, 60e12), point(1024, 59.4e12)]


def test_a_sharp_bend_reaches_ninety_percent_at_nine_tenths_of_the_ridge():
    c, a = sweep(SHARP)
    assert c.plateau == pytest.approx(60e12) and k_of(c.peak) == 256
    assert c.plateau / a.hbm.value == pytest.approx(15.0)
    # 54 TFLOP/s lies between the k=48 and k=56 points, both on the memory slope: 13.5 FLOP/B.
    assert c.i90 == pytest.approx(13.5)
    assert c.held == pytest.approx(0.99) and k_of(c.held_by) == 1024
    row = summary_row(built([hbm_ceiling(), *SHARP]), "fp32")
    assert row["ridge"] == pytest.approx(15.0) and row["bend"] == pytest.approx(0.9)
    assert row["spec"] == pytest.approx(SPEC_FP32) and row["of_spec"] == pytest.approx(60 / 67)
    assert row["spec_ridge"] == pytest.approx(SPEC_FP32 / SPEC_BW)
    # The slope's points move the HBM ceiling's bytes/s, more than the copy (k=0) does.
    assert row["best_bw"] == pytest.approx(4e12) and row["bw_share"] == pytest.approx(1.0)
    assert "SM 1980 MHz" in row["conditions"]


def test_a_round_bend_is_placed_between_its_neighbours_on_log_log_axes():
    # 90% of 60 is 54: the k=64 point sits a factor 1.1 below it, the k=256 point 1.1 above, so the
    # log-log line between them reaches it half way: at the geometric mean of 16 and 64 FLOP/B.
    pts = [point(16, 16e12), point(64, 54e12 / 1.1), point(256, 54e12 * 1.1), point(1024, 60e12),
           point(2048, 57e12)]
    c, _ = sweep(pts)
    assert c.plateau == pytest.approx(60e12) and k_of(c.peak) == 1024
    assert c.i90 == pytest.approx(32.0)
    assert c.held == pytest.approx(0.95) and k_of(c.held_by) == 2048
    row = summary_row(built([hbm_ceiling(), *pts]), "fp32")
    assert row["bend"] == pytest.approx(32 / 15)
    assert "falls to 95.0% of itself" in notes(built([hbm_ceiling(), *pts]))


def test_a_curve_still_rising_has_no_plateau_and_says_so():
    memory_bound = [point(0, bytes_per_s=HBM), *(point(k, k / 4 * HBM) for k in (4, 16, 64))]
    c, _ = sweep(memory_bound)
    assert c.plateau is None and c.i90 is None and c.held is None
    assert "still rises at its last point" in c.no_plateau
    secs = built([hbm_ceiling(), *memory_bound])
    row = summary_row(secs, "fp32")
    assert row["plateau"] is None and row["ridge"] is None and row["bend"] is None and row["set_by"] is None
    assert "fp32: no plateau" in notes(secs) and "lower bound" in notes(secs)
    # No two-line model without a plateau; the points are still listed.
    assert [r[5] for r in secs[0].tables[1].rows] == [None] * 4


def test_a_single_peak_is_named_not_held():
    # 90% of 60 is 54, which no point but the peak reaches; the curve falls to 45 after it.
    pts = [point(64, 54e12 / 1.2), point(256, 54e12 * 1.2 / 1.08), point(1024, 45e12)]
    c, _ = sweep(pts)
    assert c.plateau == pytest.approx(60e12) and k_of(c.peak) == 256 and not c.no_plateau
    assert "a single peak at" in c.single_peak and "not a held plateau" in c.single_peak
    assert c.held == pytest.approx(0.75) and k_of(c.held_by) == 1024
    assert c.i90 is not None and 16 < c.i90 < 64
    secs = built([hbm_ceiling(), *pts])
    assert "fp32: a single peak at" in notes(secs) and "falls to 75.0% of itself" in notes(secs)


def test_the_lowest_point_already_on_the_plateau_puts_the_bend_below_the_sweep():
    c, _ = sweep([point(256, 59e12), point(1024, 60e12)])
    assert c.plateau == pytest.approx(60e12) and c.i90 is None and "bend lies below it" in c.i90_note


def test_a_point_above_the_spec_rate_is_kept_out_of_the_curve():
    pts = [*SHARP, point(512, 80e12)]  # 119% of the datasheet's 67 TFLOP/s: FLOPs miscounted
    c, _ = sweep(pts)
    assert c.plateau == pytest.approx(60e12)
    assert [k_of(r) for r, _ in c.impossible] == [512] and "FLOPs miscounted" in c.impossible[0][1]
    secs = built([hbm_ceiling(), *pts])
    assert "kept out: 119% of the spec CUDA-core fp32 rate" in notes(secs)
    assert all("k=512" not in r[1] for r in secs[0].tables[1].rows)


def test_a_point_moving_more_than_the_spec_bandwidth_is_kept_out():
    c, _ = sweep([point(0, bytes_per_s=6e12), *SHARP[1:]])
    assert [k_of(r) for r, _ in c.impossible] == [0] and "bytes miscounted" in c.impossible[0][1]


def test_sixteen_bit_curves_get_no_spec_figure_from_the_tensor_cores():
    # fp16 intensity is k / 2: 120 TFLOP/s plateau, ridge 30 FLOP/B.
    pts = [point(k, f, dtype="fp16") for k, f in ((16, 32e12), (64, 110e12), (256, 120e12), (1024, 119e12))]
    secs = built([hbm_ceiling(), *pts])
    row = summary_row(secs, "fp16")
    assert rl.analyze([hbm_ceiling()]).spec.flops("fp16") > 900e12  # the spec's fp16 figure: tensor cores
    assert row["plateau"] == pytest.approx(120e12) and row["ridge"] == pytest.approx(30.0)
    assert row["spec"] is None and row["of_spec"] is None and row["spec_ridge"] is None and row["gemm"] is None
    assert "holds no non-tensor fp16 figure" in notes(secs)


def test_the_fp32_gemm_is_set_beside_the_fp32_plateau():
    records = [hbm_ceiling(), gemm(8192, 8192, 8192, 51e12, dtype="fp32"), *SHARP]
    secs = built(records)
    row = summary_row(secs, "fp32")
    assert row["gemm"] == pytest.approx(51e12) and row["gemm_share"] == pytest.approx(0.85)
    assert "reaches 85.0% of the CUDA-core plateau" in notes(secs)


def test_the_points_carry_the_two_line_model():
    secs = built([hbm_ceiling(), *SHARP])
    rows = {r[1]: r for r in secs[0].tables[1].rows}
    by_k = {k_of(p): p.label for p in SHARP}
    copy, slope, top = rows[by_k[0]], rows[by_k[16]], rows[by_k[1024]]
    assert copy[2] == 0 and copy[3] is None and copy[5] is None and copy[8] == pytest.approx(3.9 / 4.0)
    assert slope[2] == pytest.approx(4.0) and slope[5] == pytest.approx(16e12) and slope[6] == pytest.approx(1.0)
    assert top[5] == pytest.approx(60e12) and top[7] == pytest.approx(0.99)


def test_without_an_hbm_ceiling_the_ridge_is_not_placed():
    c, a = sweep(SHARP, extra=())
    assert a.hbm is None and c.plateau == pytest.approx(60e12)
    secs = built(SHARP)
    row = summary_row(secs, "fp32")
    assert row["ridge"] is None and row["bend"] is None and row["i90"] == pytest.approx(13.5)
    assert "No HBM ceiling measured" in notes(secs)


def test_interpreter_points_are_not_a_curve():
    pts = [point(k, 1e9, meaningful=False) for k in (1, 5)]
    secs = built(pts)
    assert secs[0].tables == [] and notes(secs).startswith("No meaningful intensity measurement among 2 record")


def test_the_report_shows_the_sweep_and_keeps_it_out_of_ceilings_and_placement():
    records = [hbm_ceiling(), *SHARP, *(point(k, f, dtype="bf16") for k, f in ((64, 100e12), (256, 120e12),
                                                                              (1024, 121e12)))]
    assert VIEWS["intensity"] is iv.sections
    a = rl.analyze(records)
    assert not a.placements and not a.flagged and set(a.compute) == set()  # its own roofline, no ceiling
    built_sections = report.build(records)
    titles = [s.title for s in built_sections]
    assert sum("arithmetic-intensity sweep" in t for t in titles) == 1
    for fmt in ("github", "plain", "csv"):
        text = format_sections(built_sections, fmt)
        assert "Plateau, ridge and bend per dtype" in text
    assert math.isclose(summary_row([s for s in built_sections if "intensity" in s.title], "bf16")["plateau"],
                        121e12)
