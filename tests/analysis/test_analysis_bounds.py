"""The three-way class (compute-, memory- or overhead-bound) on synthetic records with known answers,
the launch floors it uses, and the tables that show it (placement, launch overhead, decode eager/graph)."""
import pytest

from analysis import bounds, report
from analysis import roofline as rl
from analysis.views import decode as decode_view
from test_analysis_roofline import GiB, MiB, case, env, h200, rec

# What the overhead records below measured: per launch, eager (from Python) and replayed in a graph.
TRITON_EAGER, TRITON_GRAPH = 11.6e-6, 1.0e-6
TORCH_EAGER, TORCH_GRAPH = 7.1e-6, 0.5e-6


def overhead(workload, impl, eager, graph, *, vendor=False, method="cuda-graph", launches=1, **kw):
    """An overhead record timed by `method`: its median is that method's figure, the other an estimate."""
    seconds = graph if method == "cuda-graph" else eager
    r = rec(workload, "overhead", impl, vendor=vendor, dtype="fp32", params={"args": 1}, seconds=seconds,
            timing={"method": method, "eager_estimate_s": eager, "graph_estimate_s": graph}, **kw)
    r.launches = launches
    if vendor:
        r.backend = "torch"
    return r


def launch_records():
    return [
        overhead("launch-empty", "triton", TRITON_EAGER, TRITON_GRAPH),
        overhead("launch-empty", "torch", TORCH_EAGER, TORCH_GRAPH, vendor=True),
        overhead("launch-args12", "triton", 26.5e-6, 1.1e-6),  # dearer per launch: never the floor
        overhead("launch-sync", "triton", 40e-6, None, method="cuda-events"),  # not capturable
        overhead("launch-sync", "torch", 30e-6, None, vendor=True, method="cuda-events"),
    ]


def step(eager, graph, *, method, launches=11, batch=1, impl="triton", vendor=False, flops=1e9, nbytes=128 * MiB):
    """A decode-step-like case: little arithmetic, 128 MiB (past L2: the HBM roof applies)."""
    seconds = graph if method == "cuda-graph" else eager
    r = case("decode", "decode-layer", flops, nbytes, flops / seconds, impl=impl, vendor=vendor,
             params={"preset": "p", "batch": batch, "context": 8192},
             timing={"method": method, "eager_estimate_s": eager, "graph_estimate_s": graph})
    r.launches = launches
    return r


def classify(records, r):
    return bounds.classify(rl.analyze(records), r)


T_HBM_128MIB = 128 * MiB / 4.4e12  # h200()'s HBM ceiling: 30.5 us


def test_compute_bound_case():
    # 7.5e11 FLOPs at the 750 TFLOP/s bf16 ceiling: 1 ms; 1 GiB at 4.4 TB/s: 244 us; one launch: 1 us.
    r = case("gemm-like", "w", 7.5e11, GiB, 7.5e11 / 1.2e-3, timing={"eager_estimate_s": 1.21e-3})
    r.launches = 1
    b = classify(h200() + launch_records() + [r], r)
    assert b.kind == "compute" and b.eager_kind == "compute"
    assert b.t_compute == pytest.approx(1e-3) and b.t_memory == pytest.approx(GiB / 4.4e12)
    assert b.t_host == pytest.approx(TRITON_GRAPH)  # graph-timed: the graph floor
    assert b.graph_s == pytest.approx(1.2e-3) and b.eager_s == pytest.approx(1.21e-3)


def test_memory_bound_case():
    r = case("x", "w", 1e9, GiB, 1e9 / 300e-6, timing={"method": "cuda-events", "graph_estimate_s": 299e-6})
    r.launches = 2
    b = classify(h200() + launch_records() + [r], r)
    assert b.kind == "memory" and b.eager_kind == "memory"
    assert b.t_host == pytest.approx(2 * TRITON_EAGER)  # timed eagerly: the eager floor, two launches
    assert b.eager_s == pytest.approx(300e-6) and b.graph_s == pytest.approx(299e-6)


def test_eager_step_is_overhead_bound_and_its_graph_replay_memory_bound():
    # The decode layer at batch 1: 1.26 ms as a Python loop calls it, 142 us replayed, eleven launches.
    eager = step(1.26e-3, 142e-6, method="cuda-events")
    b = classify(h200() + launch_records() + [eager], eager)
    assert b.kind == "overhead" and b.t_host == pytest.approx(11 * TRITON_EAGER)
    assert b.t_memory == pytest.approx(T_HBM_128MIB) and b.t_host > b.t_memory > b.t_compute
    assert b.overhead_share == pytest.approx(1 - 142e-6 / 1.26e-3) and b.launch_bound
    graph = step(1.26e-3, 142e-6, method="cuda-graph")
    b = classify(h200() + launch_records() + [graph], graph)
    assert b.kind == "memory" and b.t_host == pytest.approx(11 * TRITON_GRAPH)  # 11 us < 30.5 us
    assert b.eager_kind == "overhead" and b.t_host_eager == pytest.approx(11 * TRITON_EAGER)


def test_vendor_cases_use_the_torch_floor():
    r = step(0.5e-3, 160e-6, method="cuda-events", impl="torch", vendor=True, launches=5)
    b = classify(h200() + launch_records() + [r], r)
    assert b.t_host == pytest.approx(5 * TORCH_EAGER)  # 35.5 us > 30.5 us at the HBM roof
    assert b.kind == "overhead"
    floors = bounds.launch_floors(launch_records())
    assert floors[True].eager_s == TORCH_EAGER and floors[True].graph_s == TORCH_GRAPH


def test_the_floor_is_the_cheapest_meaningful_launch_per_launch():
    recs = launch_records()
    floors = bounds.launch_floors(recs)
    assert (floors[False].eager_s, floors[False].graph_s) == (TRITON_EAGER, TRITON_GRAPH)
    assert floors[False].eager_record.workload == "launch-empty"
    # An interpreter record, however cheap, never sets a floor; a record of two launches counts per launch.
    cpu = {"host": "laptop", "interpret": True, "gpu": {"index": None, "name": "cpu (Triton interpreter)"}}
    cheap = overhead("launch-empty", "triton", 1e-9, None, method="interpreter-wallclock", meaningful=False,
                     env_=cpu)
    double = overhead("launch-pair", "triton", 2 * 9e-6, 2 * 0.8e-6, launches=2)
    floors = bounds.launch_floors(recs + [cheap, double])
    assert floors[False].eager_s == pytest.approx(9e-6) and floors[False].graph_s == pytest.approx(0.8e-6)
    assert bounds.launch_floors([])[False] == bounds.Floor(None, None)


def test_largest_limit_names_the_class_and_ties_go_to_the_device():
    assert bounds._largest({"compute": 1.0, "memory": 2.0, "overhead": 3.0}) == "overhead"
    assert bounds._largest({"compute": 2.0, "memory": 2.0, "overhead": 2.0}) == "compute"
    assert bounds._largest({"compute": 0.0, "memory": 2.0, "overhead": 2.0}) == "memory"


@pytest.mark.parametrize("change, reason", [
    (lambda r, recs: setattr(r, "launches", None), "launches not known"),
    (lambda r, recs: setattr(r, "launches", "eleven"), "launches not known"),  # a broken field, no crash
    (lambda r, recs: recs.clear(), "no Triton eager launch floor measured on this GPU"),
    (lambda r, recs: setattr(r, "dtype", "fp8"), "no fp8 compute ceiling"),
])
def test_a_missing_limit_gives_no_class_and_says_which(change, reason):
    r = step(1.26e-3, 142e-6, method="cuda-events")
    recs = launch_records()
    change(r, recs)
    b = classify(h200() + recs + [r], r)
    assert b.kind is None and reason in b.unknown
    assert bounds.class_text(b.kind, b.unknown) == f"unknown ({b.unknown})"


def test_unmeaningful_record_is_not_classed():
    r = step(1.26e-3, 142e-6, method="cuda-events")
    r.timing["meaningful"] = False
    b = classify(h200() + launch_records(), r)
    assert b.kind is None and b.eager_kind is None and b.unknown == "not a meaningful timing"


def test_eager_and_graph_come_from_the_median_and_the_other_estimate():
    r = step(1.3e-3, 150e-6, method="cuda-graph")
    r.time_s["p50"] = 142e-6  # the timed median replaces the graph estimate
    assert bounds.eager_graph(r) == (pytest.approx(1.3e-3), pytest.approx(142e-6))
    r.timing = {"method": "cuda-events", "eager_estimate_s": 1.3e-3, "graph_estimate_s": None}
    assert bounds.eager_graph(r) == (pytest.approx(142e-6), None)  # not capturable: no graph time
    assert bounds.overhead_share(1.0, None) is None and bounds.overhead_share(2.0, 1.5) == pytest.approx(0.25)
    r.timing = None
    assert bounds.eager_graph(r) == (None, None)


def table(built, title_part, table_title=None):
    section = next(s for s in built if title_part in s.title)
    t = next(t for t in section.tables if table_title is None or t.title == table_title)
    return [dict(zip([c.key for c in t.cols], row)) for row in t.rows], section


def test_placement_table_shows_class_eager_graph_share_and_method():
    recs = h200() + launch_records() + [step(1.26e-3, 142e-6, method="cuda-graph")]
    rows, section = table(report.build(recs), "workloads on the roofline")
    row = next(r for r in rows if r["workload"] == "decode-layer")
    assert row["class"] == "memory-bound" and row["eager_class"] == "overhead-bound"
    assert row["eager"] == pytest.approx(1.26e-3) and row["graph"] == pytest.approx(142e-6)
    assert row["overhead_share"] == pytest.approx(1 - 142 / 1260) and row["timed_by"] == "cuda-graph"
    assert row["t_host"] == pytest.approx(11 * TRITON_GRAPH) and row["t_memory"] == pytest.approx(T_HBM_128MIB)
    assert bounds.RULE in section.notes
    text = report.render(recs)
    assert "| Class " in text and "overhead-bound" in text and "1.260 ms" in text
    assert not any(r["workload"].startswith("launch") for r in rows)  # no FLOPs, no bytes: never placed


def test_overhead_view_tables_launches_with_the_host_and_the_floors():
    e = env()
    e.update(cpu="Intel(R) Xeon(R) Platinum 8480+", torch="2.11.0", triton="3.6.0", python="3.12.3")
    recs = h200() + [overhead(*args[:4], **args[4]) for args in (
        ("launch-empty", "triton", TRITON_EAGER, TRITON_GRAPH, {"env_": e}),
        ("launch-empty", "torch", TORCH_EAGER, TORCH_GRAPH, {"vendor": True, "env_": e}),
        ("launch-sync", "triton", 40e-6, None, {"method": "cuda-events", "env_": e}),
    )]
    recs[-1].timing["note"] = "graph capture failed (operation not permitted when stream is capturing); timed eagerly"
    rows, section = table(report.build(recs), "launch overhead")
    by = {(r["workload"], r["impl"]): r for r in rows}
    empty = by["launch-empty", "triton"]
    assert empty["eager"] == pytest.approx(TRITON_EAGER) and empty["graph"] == pytest.approx(TRITON_GRAPH)
    assert empty["cpu"] == "Intel(R) Xeon(R) Platinum 8480+" and empty["torch"] == "2.11.0"
    assert empty["triton"] == "3.6.0" and empty["python"] == "3.12.3" and empty["timed_by"] == "cuda-graph"
    sync = by["launch-sync", "triton"]
    assert sync["graph"] is None and "graph capture failed" in sync["remark"]
    assert by["launch-empty", "torch"]["eager"] == pytest.approx(TORCH_EAGER)
    assert any("Triton eager 11.60 us, graph 1.00 us" in n and "torch eager 7.10 us" in n for n in section.notes)


def test_overhead_view_labels_interpreter_timings():
    cpu = {"host": "laptop", "interpret": True, "gpu": {"index": None, "name": "cpu (Triton interpreter)"}}
    r = overhead("launch-empty", "triton", 7e-3, None, method="interpreter-wallclock", meaningful=False, env_=cpu)
    rows, section = table(report.build([r]), "launch overhead")
    assert rows[0]["remark"] == "not meaningful (interpreter timing)" and rows[0]["cpu"] == "not recorded"
    assert "No meaningful launch measurement" in section.notes[0]


def test_decode_table_shows_where_the_eager_step_stops_being_launch_bound():
    # Triton: launch-bound up to batch 16 (the host's time is fixed, the device's grows); torch: up to 4.
    triton = {1: (1.26e-3, 142e-6), 4: (1.27e-3, 170e-6), 16: (1.3e-3, 262e-6), 64: (0.66e-3, 623e-6)}
    torch = {1: (0.5e-3, 160e-6), 4: (0.29e-3, 185e-6), 16: (0.28e-3, 273e-6), 64: (0.65e-3, 632e-6)}
    steps = [step(*t, method="cuda-graph", batch=b) for b, t in triton.items()]
    steps += [step(*t, method="cuda-graph", batch=b, impl="torch", vendor=True) for b, t in torch.items()]
    built = report.build(h200() + launch_records() + steps)
    rows, section = table(built, "eager and graph-replayed")
    assert [(r["impl"], r["case"].split()[1]) for r in rows][:2] == [("triton", "batch=1"), ("torch", "batch=1")]
    first = rows[0]
    assert first["launch_bound"] == "yes" and first["eager_over_graph"] == pytest.approx(1.26e-3 / 142e-6)
    assert first["t_host"] == pytest.approx(11 * TRITON_EAGER) and first["timed_by"] == "cuda-graph"
    stops, _ = table(built, "eager and graph-replayed", "Where the eager step stops being launch-bound")
    assert stops == [{"workload": "decode-layer", "case": "context=8192, preset=p", "dtype": "bf16",
                      "triton": "launch-bound up to B=16, not from B=64 on",
                      "vendor": "launch-bound up to B=4, not from B=16 on"}]


def test_decode_table_shows_every_triton_implementation_and_where_each_stops():
    # A launcher and its prepared replay: the same kernels replayed (one graph time), two eager times.
    plain = {1: (1.26e-3, 142e-6), 16: (1.3e-3, 262e-6), 64: (0.66e-3, 623e-6)}
    prepared = {1: (150e-6, 142e-6), 16: (270e-6, 262e-6), 64: (0.63e-3, 623e-6)}
    steps = [step(*t, method="cuda-graph", batch=b) for b, t in plain.items()]
    steps += [step(*t, method="cuda-graph", batch=b, impl="triton-prepared") for b, t in prepared.items()]
    steps += [step(0.5e-3, 160e-6, method="cuda-graph", batch=b, impl="torch", vendor=True) for b in plain]
    built = report.build(h200() + launch_records() + steps)
    rows, _ = table(built, "eager and graph-replayed")
    assert [(r["impl"], r["case"].split()[1]) for r in rows][:3] == [
        ("triton", "batch=1"), ("triton-prepared", "batch=1"), ("torch", "batch=1")]
    by = {(r["impl"], r["case"].split()[1]): r for r in rows}
    assert by["triton", "batch=1"]["launch_bound"] == "yes" and by["triton-prepared", "batch=1"]["launch_bound"] == "no"
    assert by["triton-prepared", "batch=1"]["eager_over_graph"] == pytest.approx(150 / 142)
    stops, _ = table(built, "eager and graph-replayed", "Where the eager step stops being launch-bound")
    assert stops[0]["triton"] == "launch-bound up to B=16, not from B=64 on"
    assert stops[0]["triton-prepared"] == "launch-bound at no batch (B=1-64)"
    assert stops[0]["vendor"] == "launch-bound at every batch (B=1-64)"


@pytest.mark.parametrize("seen, text", [
    ([(1, True), (4, True), (16, False), (64, False)], "launch-bound up to B=4, not from B=16 on"),
    ([(1, True), (4, False), (16, True), (64, False)], "launch-bound up to B=16, not from B=64 on (not at B=4)"),
    ([(1, True), (4, True)], "launch-bound at every batch (B=1-4)"),
    ([(1, False), (4, False)], "launch-bound at no batch (B=1-4)"),
    ([(1, False), (4, True)], "launch-bound at B=4, the largest included"),
])
def test_where_it_stops(seen, text):
    assert decode_view._where_it_stops(seen) == text
