"""The report's energy table (pJ/byte beside the memory ceilings, pJ/FLOP per dtype beside the
compute ceilings, tokens/J of the decode step) and the ceilings' "throttled while set"."""
import copy
import csv
import io

import pytest

from analysis import energy, report
from analysis import roofline as rl
from analysis.errors import AnalysisError
from test_analysis_roofline import GiB, MiB, case, env, gemm, h200, stream, telemetry


def measured(joules_per_call, watts, uncertainty=0.01, window_s=3.0):
    return {"joules_per_call": joules_per_call, "watts": watts, "joules": joules_per_call * 100, "calls": 100,
            "uncertainty": uncertainty, "window_s": window_s, "counter_resolution_s": 0.1,
            "reading_period_s": 0.005, "min_window_s": 2.2, "max_uncertainty": 0.05,
            "method": "nvml total energy counter"}


def with_energy(records):
    """h200()'s records, the HBM and bf16 ceilings' measurements with counter readings; a decode step."""
    for r in records:
        if r.workload == "stream-copy" and r.bytes == 4 * GiB and not r.vendor:
            r.energy = measured(149e-12 * r.bytes, 635.0)  # 149 pJ per byte
        elif r.workload == "gemm-square" and r.vendor:
            r.energy = measured(1.03e-12 * r.flops, 682.0)  # 1.03 pJ per FLOP
        elif r.family == "streaming":
            r.energy = {"not_measured": "the window (0.040 s in 5 interval(s)) is too short for the counter's "
                                        "100.0 ms steps"}
    step = case("decode", "decode-layer", 2e12, 20e9, 200e12, params={"batch": 64, "context": 8192})
    step.energy = measured(64 / 144.0, 690.0)  # 144 tokens per joule
    return records + [step]


def tables(recs):
    section = next(s for s in report.build(recs) if s.title.endswith(": energy"))
    return {t.title: [dict(zip([c.key for c in t.cols], row)) for row in t.rows] for t in section.tables}, section


def test_pj_per_byte_and_flop_beside_the_ceilings_and_tokens_per_joule():
    got, section = tables(with_energy(h200()))
    hbm, l2 = got["Memory ceilings"]
    assert hbm["ceiling"] == "HBM bandwidth" and hbm["pj_per_byte"] == pytest.approx(149.0)
    assert hbm["watts"] == 635.0 and hbm["uncertainty"] == 0.01 and hbm["remark"] == ""
    assert l2["pj_per_byte"] is None and l2["remark"].startswith("not measured: the window (0.040 s")
    (bf16,) = got["Compute ceilings"]
    assert bf16["dtype"] == "bf16" and bf16["pj_per_flop"] == pytest.approx(1.03)
    assert bf16["set_by"].startswith("vendor")
    (step,) = got["Decode step"]
    assert step["tokens_per_joule"] == pytest.approx(144.0) and step["tokens"] == pytest.approx(64 / 0.01)
    assert any("stepped every 100.0 ms" in n and "2.20 s" in n for n in section.notes)
    assert any("wider than ±5%" in n for n in section.notes)


def test_figures_measured_between_the_counters_steps_are_said_with_their_assumption():
    recs = with_energy(h200())
    _, section = tables(recs)
    assert not any("between the counter's own steps" in n for n in section.notes)
    hbm = next(r for r in recs if r.workload == "stream-copy" and r.bytes == 4 * GiB and not r.vendor)
    hbm.energy = {**hbm.energy, "span_s": 0.41, "method": "nvml total energy counter, between its steps"}
    _, section = tables(recs)
    (note,) = [n for n in section.notes if "between the counter's own steps" in n]
    assert note.startswith("1 figure(s)") and "assumes each step adds the energy" in note


def test_each_figure_says_its_share_of_the_power_limit_and_at_the_limit_what_that_means():
    recs = with_energy(h200())
    got, section = tables(recs)
    (step,) = got["Decode step"]
    assert step["of_limit"] == pytest.approx(690.0 / 700)  # the env's 700 W limit
    assert got["Memory ceilings"][1]["of_limit"] is None  # not measured: no share either
    assert not any("power limit or more" in n for n in section.notes)  # no figure between steps yet
    for r in recs:
        if r.energy and "watts" in r.energy:
            r.energy = {**r.energy, "span_s": 0.3, "method": "nvml total energy counter, between its steps"}
    _, section = tables(recs)
    (note,) = [n for n in section.notes if "power limit or more" in n]
    # The GEMM's 682 W and the step's 690 W, not the copy's 635 W (91%).
    assert note.startswith("2 of them drew 95%") and "a sustain run gives the steady figure" in note
    for r in recs:
        if r.energy and r.energy.get("watts", 0) > 665:
            r.energy = {**r.energy, "watts": 665.0}  # 95.0% of the limit: still at it
    _, section = tables(recs)
    assert [n for n in section.notes if "power limit or more" in n][0].startswith("2 of them")
    for r in recs:
        if r.energy and r.energy.get("watts", 0) >= 665:
            r.energy = {**r.energy, "watts": 664.0}
    _, section = tables(recs)
    assert not any("power limit or more" in n for n in section.notes)


def test_an_energy_run_with_its_own_readings_says_what_held_its_clocks():
    recs = with_energy(h200())
    got, _ = tables(recs)
    assert got["Decode step"][0]["throttle"] is None  # a record without readings of its run
    recs[-1].energy = {**recs[-1].energy, "telemetry": {"samples": 40, "throttle": ["gpu_idle", "sw_power_cap"]}}
    got, _ = tables(recs)
    assert got["Decode step"][0]["throttle"] == "sw_power_cap"
    recs[-1].energy["telemetry"]["throttle"] = ["gpu_idle"]
    assert tables(recs)[0]["Decode step"][0]["throttle"] == "none"


def test_a_ceiling_without_an_energy_reading_says_so():
    recs = with_energy(h200())
    next(r for r in recs if r.workload == "gemm-square" and r.vendor).energy = None
    got, _ = tables(recs)
    assert got["Compute ceilings"][0]["remark"] == "not measured: no energy reading in the record"


def test_the_energy_section_comes_only_with_energy():
    assert not any(s.title.endswith(": energy") for s in report.build(h200()))
    text = report.render(with_energy(h200()))
    assert "## H200 #0 on node0: energy" in text and " pJ/byte |" in text and " pJ/FLOP |" in text


def test_energy_rows_in_csv_keep_full_precision():
    section = energy.sections(rl.analyze(with_energy(h200())))
    from analysis.tables import format_sections
    rows = list(csv.reader(io.StringIO(format_sections(section, "csv"))))
    header = next(r for r in rows if r and r[0] == "ceiling")
    hbm = dict(zip(header, rows[rows.index(header) + 1]))
    assert float(hbm["pj_per_byte"]) == pytest.approx(149.0, rel=1e-12) and "joules_per_call" in hbm


@pytest.mark.parametrize("bad, needle", [
    ("joules", "energy must be a JSON object or null"),
    ({"joules_per_call": -1.0, "watts": 600.0}, "energy.joules_per_call is -1.0"),
    ({"joules_per_call": 1.0}, "energy.watts is None"),
    ({"not_measured": 3}, "energy.not_measured must be the reason"),
])
def test_malformed_energy_is_refused_in_one_line(bad, needle):
    recs = h200()
    recs[3].energy = bad
    with pytest.raises(AnalysisError, match="stream-copy") as e:
        report.render(recs)
    assert needle in str(e.value)


# ---------------------------------------------------------------- throttled while set

def ceiling_rows(recs, title):
    section = next(s for s in report.build(recs) if s.title.endswith(": ceilings"))
    t = next(t for t in section.tables if t.title.startswith(title))
    return [dict(zip([c.key for c in t.cols], row)) for row in t.rows]


def test_each_ceiling_says_whether_it_was_set_while_throttled():
    e = env()
    recs = [stream("copy", 4 * GiB, 4.4e12, env_=e, tel=telemetry(throttle=["gpu_idle"])),
            stream("copy", 8 << 20, 9e12, env_=e),
            gemm(8192, 8192, 8192, 750e12, env_=e, tel=telemetry(sm=1500, throttle=["sw_power_cap"]))]
    hbm, l2 = ceiling_rows(recs, "Memory ceilings")
    assert hbm["throttled"] == "no" and l2["throttled"] == "no"  # an idle GPU between calls is no throttle
    assert ceiling_rows(recs, "Compute ceilings")[0]["throttled"] == "yes: sw_power_cap"


def test_a_lowered_power_limit_and_missing_telemetry_are_said():
    e = env(power_limit=500)
    e["gpu"].update(power_limit_below_default=True, clocks_locked=True)
    recs = [stream("copy", 4 * GiB, 4.4e12, env_=e, tel={}),
            gemm(8192, 8192, 8192, 700e12, env_=e, tel=telemetry(throttle=["sw_power_cap", "sw_thermal_slowdown"]))]
    hbm, l2 = ceiling_rows(recs, "Memory ceilings")
    assert hbm["throttled"] == "unknown: no telemetry; clocks locked; power limit below its default (500 W < 700 W)"
    assert l2["throttled"] is None  # no L2 ceiling measured
    assert ceiling_rows(recs, "Compute ceilings")[0]["throttled"].startswith("yes: sw_power_cap, sw_thermal_slowdown;")


def test_a_file_with_no_measured_energy_gets_one_line_not_a_table_of_gaps():
    recs = h200()
    for r in recs:
        r.energy = {"not_measured": "the window (0.190 s in 8 interval(s)) is too short for the counter's 100.0 ms steps"}
    got, section = tables(recs)
    assert got == {}
    assert "No sweep record of this GPU has an energy figure" in section.notes[0]
    assert "python -m suite sustain" in section.notes[0]
    # One measured figure brings the tables back.
    recs[3].energy = measured(149e-12 * recs[3].bytes, 635.0)
    got, _ = tables(recs)
    assert got["Memory ceilings"][0]["pj_per_byte"] == pytest.approx(149.0)


def sustained(base, unit, work, steady, *, swing=False, energy_steady=None, seconds=60.0, chunk=0.2):
    """`base` run back to back as a sustain record: `steady` throughput from 2 s on (the last
    second a third slower where `swing`), with a steady-state energy reading."""
    r = copy.deepcopy(base)
    r.view = "sustain"
    t = [round(i * chunk, 9) for i in range(int(round(seconds / chunk)))]
    device = [100 * work / (steady * (0.75 if swing and x >= seconds - 1 else 1.0)) for x in t]
    views = {"bytes_per_s": "streaming", "flop_per_s": "gemm", "tokens_per_s": "decode"}
    r.sustain = {"workload_view": views[unit],
                 "unit": unit, "work_per_call": work, "seconds": seconds, "chunk_s": chunk, "burst_s": 2.0,
                 "method": "cuda-events", "interrupted": False,
                 "series": {"t_s": t, "host_s": [chunk] * len(t), "calls": [100] * len(t), "device_s": device,
                            "sm_clock_mhz": [1980.0] * len(t), "mem_clock_mhz": [3201.0] * len(t),
                            "power_w": [650.0] * len(t), "temp_c": [60.0] * len(t), "throttle": [[]] * len(t)},
                 "energy": {"burst": None, "steady": energy_steady}}
    return r


def test_with_no_sweep_energy_the_sustain_runs_give_it_beside_the_ceilings():
    recs = h200()
    for r in recs:
        r.energy = {"not_measured": "the window (0.190 s) is too short for the counter's 100.0 ms steps"}
    hbm_case = next(r for r in recs if r.workload == "stream-copy" and r.bytes == 4 * GiB and not r.vendor)
    l2_case = next(r for r in recs if r.workload == "stream-copy" and r.bytes == 8 * MiB and not r.vendor)
    gemm_case = next(r for r in recs if r.workload == "gemm-square" and not r.vendor)
    step = case("decode", "decode-layer", 2e12, 20e9, 200e12, params={"batch": 64, "context": 8192})
    runs = [sustained(hbm_case, "bytes_per_s", hbm_case.bytes, 4.2e12,
                      energy_steady=measured(158e-12 * hbm_case.bytes, 677.0)),
            sustained(l2_case, "bytes_per_s", l2_case.bytes, 8e12, energy_steady=measured(1e-3, 500.0)),
            sustained(gemm_case, "flop_per_s", gemm_case.flops, 690e12,
                      energy_steady=measured(gemm_case.flops * 1e-12, 691.0)),
            sustained(step, "tokens_per_s", 64, 83e3, swing=True, energy_steady=measured(64 / 132.0, 634.0))]
    got, section = tables(recs + [step] + runs)
    rows = {row["figure"]: row for row in got["In steady state (sustain runs)"]}
    assert set(rows) == {"HBM bandwidth", "compute bf16", "decode step"}  # the L2-resident run speaks for no ceiling
    hbm, bf16, step_row = rows["HBM bandwidth"], rows["compute bf16"], rows["decode step"]
    assert hbm["energy"] == "158 pJ/byte" and hbm["swept"].value == pytest.approx(4.4e12)
    assert bf16["energy"] == "1.00 pJ/FLOP" and bf16["swept"].value == pytest.approx(750e12)
    assert step_row["energy"] == "132 tokens/J" and step_row["swept"].value == pytest.approx(64 / 0.01)
    assert step_row["remark"].startswith("throughput did not settle")
    assert section.notes[0].endswith("the figures below come from sustain runs.")
    # A file of sustain runs alone: their energy, and no word of sweep records it does not hold.
    _, alone = tables([runs[2]])
    assert not any("No sweep record" in n for n in alone.notes)
