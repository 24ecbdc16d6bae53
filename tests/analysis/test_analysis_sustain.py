"""Burst against steady state from a sustain record's time series: windows, ratios, the dominant
throttle reason, the time to settle, the view's table, the plot, and malformed series refused."""
import copy
import math

import numpy as np
import pytest

from analysis import report
from analysis import roofline as rl
from analysis import sustain as sus
from analysis.errors import AnalysisError
from analysis.views import sustain as view
from test_analysis_roofline import rec

GEMM = 2 * 8192 ** 3


def sustain_record(throughput, *, seconds=60.0, chunk=0.2, burst_s=2.0, unit="flop_per_s", work=GEMM,
                   sm=lambda t: 1980.0, power=lambda t: 690.0, throttle=lambda t: ["sw_power_cap"],
                   energy=None, workload="gemm-square", family="gemm", params=None, meaningful=True):
    """A sustain record of back-to-back chunks of `chunk` seconds, throughput(t) at each chunk's middle."""
    t = [round(i * chunk, 9) for i in range(int(round(seconds / chunk)))]
    calls = 100
    series = {"t_s": t, "host_s": [chunk] * len(t), "calls": [calls] * len(t),
              "device_s": [calls * work / throughput(x + chunk / 2) for x in t],
              "sm_clock_mhz": [sm(x) for x in t], "mem_clock_mhz": [3201.0] * len(t),
              "power_w": [power(x) for x in t], "temp_c": [60.0] * len(t), "throttle": [throttle(x) for x in t]}
    r = rec(workload, family, "torch.matmul", vendor=True, params=params or {"M": 8192, "N": 8192, "K": 8192},
            flops=work if unit == "flop_per_s" else 0, nbytes=3 * 8192 * 8192 * 2,
            seconds=float(np.median(series["device_s"])) / calls, view="sustain", meaningful=meaningful)
    r.sustain = {"workload_view": family, "unit": unit, "work_per_call": work, "seconds": seconds, "chunk_s": chunk,
                 "burst_s": burst_s, "method": "cuda-events", "interrupted": False, "series": series,
                 "energy": {"burst": None, "steady": energy}}
    return r


def capped(t):
    """800 TFLOP/s for the first second, then falling towards 670 (time constant 3 s)."""
    return 800e12 if t < 1 else 670e12 + 130e12 * math.exp(-(t - 1) / 3)


def test_compute_bound_loop_under_the_power_cap():
    r = sustain_record(capped, sm=lambda t: 1980.0 if t < 1.2 else 1500.0,
                       power=lambda t: 450.0 if t < 0.4 else 690.0,
                       throttle=lambda t: [] if t < 0.4 else ["sw_power_cap"])
    s = sus.analyse(r)
    burst_chunks = [x for x in r.sustain["series"]["t_s"] if x < 2.0]
    expected_burst = len(burst_chunks) / sum(1 / capped(x + 0.1) for x in burst_chunks)  # work / device time
    assert s["burst"]["throughput"] == pytest.approx(expected_burst, rel=1e-9)
    assert s["steady"]["throughput"] == pytest.approx(670e12, rel=1e-4)
    assert s["steady"]["start_s"] == pytest.approx(30.0) and s["run_s"] == pytest.approx(60.0)
    assert s["steady_vs_burst"]["throughput"] == pytest.approx(670e12 / expected_burst, rel=1e-4)
    # Six of the ten burst chunks ran at 1980 MHz: the burst's median clock.
    assert s["burst"]["sm_clock_mhz"] == 1980.0 and s["steady_vs_burst"]["sm_clock"] == pytest.approx(1500 / 1980)
    assert s["steady_vs_burst"]["power"] == pytest.approx(1.0)
    assert s["steady"]["throttle"] == {"reason": "sw_power_cap", "share": 1.0, "reasons": {"sw_power_cap": 1.0}}
    assert s["burst"]["throttle"]["share"] == pytest.approx(0.8)  # two of the ten burst chunks were not capped
    # 670 + 130 exp(-(t-1)/3) is within 2% of 670 from t = 7.82 s: the chunk starting at 7.8 s.
    assert s["time_to_steady_s"] == pytest.approx(7.8)
    assert s["problem"] is None


def test_memory_bound_loop_stays_flat():
    rng = np.random.default_rng(0)
    noise = {round(i * 0.2, 9): 1 + 1e-3 * rng.standard_normal() for i in range(300)}
    r = sustain_record(lambda t: 4.24e12 * noise[round(t - 0.1, 9)], unit="bytes_per_s", work=4 << 30,
                       throttle=lambda t: [], workload="stream-copy", family="streaming", params={"array_bytes": 1})
    s = sus.analyse(r)
    assert s["time_to_steady_s"] == 0.0 and s["steady"]["throttle"]["reason"] == "none"
    assert s["steady_vs_burst"]["throughput"] == pytest.approx(1.0, abs=2e-3)


def test_one_slow_chunk_late_does_not_unsettle_the_run():
    r = sustain_record(lambda t: 600e12 if 50.0 < t < 50.2 else 670e12)
    assert sus.analyse(r)["time_to_steady_s"] == 0.0


def test_a_run_still_drifting_at_its_end_has_not_settled():
    r = sustain_record(lambda t: 800e12 - 3e12 * t)
    s = sus.analyse(r)
    assert s["time_to_steady_s"] is None and "did not settle" in s["problem"]


def test_burst_and_steady_that_overlap_are_not_compared():
    s = sus.analyse(sustain_record(capped, seconds=3.0))
    assert s["steady_vs_burst"] is None and s["time_to_steady_s"] is None and "overlap" in s["problem"]


def test_missing_readings_are_unknown_not_zero():
    r = sustain_record(capped, sm=lambda t: None, power=lambda t: None, throttle=lambda t: None)
    s = sus.analyse(r)
    assert s["steady"]["sm_clock_mhz"] is None and s["steady"]["throttle"]["reason"] is None
    assert s["steady_vs_burst"]["sm_clock"] is None and s["steady_vs_burst"]["throughput"] is not None
    row = view.sections(rl.analyze([r]), [r])[0].tables[0].rows[0]
    assert "no telemetry" in row


def test_the_dominant_reason_is_the_most_frequent():
    r = sustain_record(capped, throttle=lambda t: ["sw_thermal_slowdown"] if int(t * 5) % 2 else [])
    assert sus.analyse(r)["steady"]["throttle"] == {"reason": "sw_thermal_slowdown", "share": 0.5,
                                                    "reasons": {"sw_thermal_slowdown": 0.5}}


def _broken(mutate):
    r = sustain_record(capped)
    r.sustain = copy.deepcopy(r.sustain)
    mutate(r.sustain)
    return r


@pytest.mark.parametrize("mutate, needle", [
    (lambda s: s.pop("series"), "lacks the list(s)"),
    (lambda s: s["series"].pop("power_w"), "lacks the list(s) power_w"),
    (lambda s: s["series"]["calls"].pop(), "of one length"),
    (lambda s: s["series"]["device_s"].__setitem__(3, -1.0), "device_s holds -1.0"),
    (lambda s: s["series"]["device_s"].__setitem__(3, float("nan")), "device_s holds nan"),
    (lambda s: s["series"]["power_w"].__setitem__(0, "hot"), "power_w holds 'hot'"),
    (lambda s: s["series"]["throttle"].__setitem__(0, "sw_power_cap"), "throttle holds 'sw_power_cap'"),
    (lambda s: s["series"]["t_s"].reverse(), "not in time order"),
    (lambda s: s.__setitem__("unit", "furlongs"), "sustain.unit is 'furlongs'"),
    (lambda s: s.__setitem__("burst_s", 0), "sustain.burst_s is 0"),
    (lambda s: s["energy"].__setitem__("steady", {"joules_per_call": -1, "watts": 3}), "sustain.energy.steady"),
])
def test_malformed_series_are_refused_in_one_line(mutate, needle):
    with pytest.raises(AnalysisError, match="gemm-square") as e:
        sus.analyse(_broken(mutate))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_non_object_sustain_field_is_refused():
    r = sustain_record(capped)
    r.sustain = [1, 2]
    with pytest.raises(AnalysisError, match="sustain must be a JSON object"):
        sus.analyse(r)


def test_the_view_tables_burst_against_steady_with_energy():
    steady_energy = {"joules_per_call": 690.0 * 2 * 8192 ** 3 / 670e12, "watts": 690.0, "uncertainty": 0.004,
                     "window_s": 30.0, "method": "nvml total energy counter"}
    r = sustain_record(capped, energy=steady_energy)
    section = view.sections(rl.analyze([r]), [r])[0]
    row = dict(zip([c.key for c in section.tables[0].cols], section.tables[0].rows[0]))
    assert row["steady"].value == pytest.approx(670e12, rel=1e-4) and row["steady"].kind == "flop_per_s"
    assert row["steady_throttle"] == "sw_power_cap (100% of chunks)" and row["settle"] == pytest.approx(7.8)
    assert row["steady_energy"] == "1.03 pJ/FLOP (±0.4%)"  # 690 W / 670 TFLOP/s
    assert row["steady_joules_per_call"] == pytest.approx(steady_energy["joules_per_call"]) and row["remark"] == ""
    text = report.render([r])
    assert "sustained load, burst against steady state" in text and "670.0 TFLOP/s" in text


def test_the_view_says_why_energy_and_timing_are_missing():
    r = sustain_record(capped, energy={"not_measured": "no NVML"}, meaningful=False)
    row = view.sections(rl.analyze([r]), [r])[0].tables[0].rows[0]
    assert row[-1] == "steady energy not measured: no NVML; not meaningful (interpreter timing)"


def test_a_decode_step_is_in_tokens():
    r = sustain_record(lambda t: 99.5e3, unit="tokens_per_s", work=64,
                       energy={"joules_per_call": 690.0 * 64 / 99.5e3, "watts": 690.0, "uncertainty": 0.01},
                       workload="decode-layer", family="decode", params={"batch": 64})
    text = report.render([r], fmt="plain")
    assert "99,500 tok/s" in text and "144 tokens/J" in text


def test_plot_draws_each_sustain_record(tmp_path):
    path = tmp_path / "sustain.png"
    written = sus.plot([sustain_record(capped), sustain_record(lambda t: 4.2e12, unit="bytes_per_s")], path)
    data = path.read_bytes()
    assert written == str(path) and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_refuses_what_it_cannot_draw(tmp_path):
    with pytest.raises(AnalysisError, match="must end in .png or .svg"):
        sus.plot([sustain_record(capped)], tmp_path / "x.jpg")
    with pytest.raises(AnalysisError, match="no sustain record"):
        sus.plot([rec("gemm-square", "gemm")], tmp_path / "x.png")


@pytest.mark.parametrize("per, unit, text", [(1.0, "flop_per_s", "1.00 pJ/FLOP"), (158.2, "bytes_per_s", "158 pJ/byte"),
                                             (0.5, "flop_per_s", "0.500 pJ/FLOP"), (132.4, "tokens_per_s", "132 tokens/J")])
def test_steady_energy_keeps_three_significant_digits(per, unit, text):
    assert view._energy_text(per, unit, {"uncertainty": 0.002}) == f"{text} (±0.2%)"
