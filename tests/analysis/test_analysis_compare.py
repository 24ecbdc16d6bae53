"""`compare`: spec ratio beside measured ratio, largest surprise first; spec-only sides; bad input."""
import csv
import io

import pytest

from analysis import compare
from analysis.errors import AnalysisError
from test_analysis_roofline import GiB, env, gemm, h200, stream

H100 = dict(name="NVIDIA H100 80GB HBM3", mem=81559 << 20, l2=50 << 20)


def rows_of(text, first_col):
    """The data rows of the CSV table whose header starts with `first_col`."""
    rows = list(csv.reader(io.StringIO(text)))
    start = next(i for i, r in enumerate(rows) if r and r[0] == first_col)
    header, out = rows[start], []
    for r in rows[start + 1:]:
        if not r:
            break
        out.append(dict(zip(header, r)))
    return out


def test_ratios_and_sort_order_against_another_sku():
    a = h200(env(name=H100["name"], mem=H100["mem"], l2=H100["l2"]), hbm=3.0e12, bf16=700e12)
    b = h200(env(), hbm=4.5e12, bf16=800e12)
    ceilings = rows_of(compare.render(a, b, fmt="csv"), "item")
    by_item = {r["item"]: r for r in ceilings}
    hbm, bf16 = by_item["HBM bandwidth"], by_item["compute bf16"]
    assert float(hbm["spec_ratio"]) == pytest.approx(4.8 / 3.35)
    assert float(hbm["measured_ratio"]) == pytest.approx(1.5)
    assert float(hbm["difference_delta"]) == pytest.approx(1.5 - 4.8 / 3.35)
    assert float(bf16["spec_ratio"]) == pytest.approx(989.5 / 989.5)
    assert float(bf16["measured_ratio"]) == pytest.approx(800 / 700)
    # Surprise = |ln(measured / spec)|: bf16 (1.14 vs 1.00) is a bigger surprise than HBM (1.50 vs 1.43);
    # the L2 plateau has no spec ratio and comes last.
    assert [r["item"] for r in ceilings] == ["compute bf16", "HBM bandwidth", "L2 plateau"]


def test_cases_present_on_both_sides_only():
    a = h200() + [stream("fill", 4 * GiB, 4.0e12)]
    b = h200(env(1), hbm=4.4e12 * 0.8)
    cases = rows_of(compare.render(a, b, fmt="csv"), "workload")
    assert "stream-fill" not in {r["workload"] for r in cases}
    worst = cases[0]
    assert worst["workload"] == "stream-copy" and float(worst["measured_ratio"]) == pytest.approx(0.8)
    assert float(worst["spec_ratio"]) == pytest.approx(1.0)


def test_same_sku_says_spec_ratios_are_one():
    text = compare.render(h200(env(0)), h200(env(1), hbm=4.3e12))
    assert "Both sides are H200-SXM: every spec ratio is 1" in text
    assert "Assumptions of A: H200 #0 on node0" in text and "Assumptions of B: H200 #1 on node0" in text


def test_spec_only_side_is_labelled_and_shows_spec_ratios():
    text = compare.render(h200(), None, spec_b="B200")
    assert "spec ratios only" in text and "every ratio here is a SPEC ratio" in text
    rows = rows_of(compare.render(h200(), None, spec_b="B200", fmt="csv"), "item")
    hbm = next(r for r in rows if r["item"] == "HBM bandwidth")
    assert float(hbm["spec_ratio"]) == pytest.approx(7.7 / 4.8)
    assert float(hbm["b_at_a"]) == pytest.approx(4.4e12 * 7.7 / 4.8)
    assert "measured_ratio" not in hbm


def test_spec_only_needs_a_spec_for_a():
    unknown = h200(env(name="NVIDIA Mystery X1", mem=33 * GiB))
    with pytest.raises(AnalysisError, match="matches no spec entry"):
        compare.render(unknown, None, spec_b="H200")
    assert "H200-SXM, chosen with --spec" in compare.render(unknown, None, spec_a="H200", spec_b="B200")


@pytest.mark.parametrize("call, message", [
    (lambda: compare.render(h200(), None), "side B needs a results file or a spec name"),
    (lambda: compare.render(None, h200()), "side A needs measured records"),
    (lambda: compare.render(h200(), h200(), spec_b="H300"), "unknown spec 'H300'"),
    (lambda: compare.render(h200(), h200(), fmt="xlsx"), "unknown format"),
    (lambda: compare.render(h200(env(0)) + h200(env(1)), h200()), "side A holds 2 GPUs"),
    (lambda: compare.render(h200(), []), "side B holds no records"),
    (lambda: compare.render(h200(), [gemm(64, 64, 64, 1e12), "oops"]), r"B\[1\] is a str"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(AnalysisError, match=message) as e:
        call()
    assert "\n" not in str(e.value)


def test_two_gpus_of_one_file():
    from analysis.roofline import select_gpu

    both = h200(env(0)) + h200(env(1), hbm=4.4e12 * 0.9)
    rows = rows_of(compare.render(select_gpu(both, 0), select_gpu(both, 1), fmt="csv"), "item")
    assert rows[0]["item"] == "HBM bandwidth" and float(rows[0]["measured_ratio"]) == pytest.approx(0.9)


def test_a_ceiling_set_by_the_same_measurement_on_both_sides_carries_an_interval():
    a = h200()
    b = h200(env(1), hbm=4.4e12 * 1.02)
    for recs, spread in ((a, (1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01)), (b, (1.0, 0.99, 1.01, 1.0, 1.0, 1.02, 0.98, 1.0))):
        for r in recs:
            r.time_s["round_p50"] = [r.seconds * f for f in spread]
    rows = rows_of(compare.render(a, b, fmt="csv"), "item")
    text = compare.render(a, b, fmt="plain")
    hbm = next(r for r in rows if r["item"] == "HBM bandwidth")
    assert float(hbm["measured_ratio"]) == pytest.approx(1.02)
    assert "1.020 [" in text  # the interval shown beside the ratio
