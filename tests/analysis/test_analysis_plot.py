"""`report --plot`: the figure holds one encoding per meaning (dtype colour, family marker, Triton
filled and vendor hollow), TFLOP/s and GB/s axes with binary sizes, roofs that start where they
meet the memory roof, a legend of only what is drawn, and a title with GPU, spec entry and date."""
import pytest
from matplotlib.colors import to_rgba

from analysis import plot, report
from analysis.errors import AnalysisError
from analysis.records import Record

MiB, GiB = 1 << 20, 1 << 30
HBM, L2_BW, BF16, FP16 = 4.4e12, 9.0e12, 720e12, 650e12
H200 = {"host": "node0", "interpret": False,
        "gpu": {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-0", "l2_bytes": 60 * MiB,
                "mem_bytes": 143771 * MiB, "sm_count": 132}}


def rec(workload, family, *, impl="triton", vendor=False, dtype="bf16", flops=0, nbytes=0, seconds=1e-3,
        roof="", params=None, day="2026-11-30", moved=None):
    params = dict(params or {"n": nbytes, "f": flops})
    return Record(workload=workload, family=family, impl=impl, vendor=vendor, dtype=dtype, params=params,
                  case=",".join(f"{k}={v}" for k, v in sorted(params.items())), label=str(params), status="ok",
                  view=family, roof=roof, backend="" if vendor else "triton", flops=int(flops), bytes=int(nbytes),
                  moved_bytes=moved, time_s={"p50": seconds, "n": 10},
                  timing={"method": "cuda-graph", "meaningful": True}, verify={"rel_err": 0.0, "tolerance": 1e-3},
                  env=H200, run_id="run-1", timestamp=f"{day}T03:00:00+00:00")


def stream(working_set, bytes_per_s, **kw):
    return rec("stream-copy", "streaming", nbytes=working_set, seconds=working_set / bytes_per_s, roof="memory",
               dtype="fp32", params={"array_bytes": working_set // 2}, **kw)


def gemm(n, flop_per_s, dtype="bf16", **kw):
    flops = 2 * n ** 3
    return rec("gemm-square", "gemm", dtype=dtype, flops=flops, nbytes=3 * n * n * 2, seconds=flops / flop_per_s,
               roof="compute", params={"M": n, "N": n, "K": n}, **kw)


def case(family, workload, flops, nbytes, flop_per_s, **kw):
    return rec(workload, family, flops=flops, nbytes=nbytes, seconds=flops / flop_per_s, **kw)


def ceilings(with_streaming=True):
    out = [gemm(8192, BF16), gemm(8192, BF16 * 0.98, impl="torch.matmul", vendor=True),
           gemm(8192, FP16, dtype="fp16")]
    if with_streaming:
        out += [stream(8 * MiB, L2_BW), stream(8 * MiB, L2_BW * 0.9, impl="torch.copy_", vendor=True),
                stream(4 * GiB, HBM), stream(4 * GiB, HBM * 0.97, impl="torch.copy_", vendor=True)]
    return out


def cases():
    big = 8 * GiB
    return [case("attention", "attention-fwd", 10**13, 1 * GiB, 500e12),
            case("attention", "attention-fwd", 10**13, 1 * GiB, 550e12, impl="sdpa-cudnn", vendor=True),
            case("attention", "attention-fwd", 10**13, 1 * GiB, 450e12, dtype="fp16"),
            case("decode", "decode-attention", big, big, 2e12)]


def flagged():
    return [case("decode", "decode-attention", 8 * GiB, 8 * GiB, 9e12, params={"batch": 1})]  # above the roof


def traced():
    # An intensity sweep: the same kernel at rising FLOPs per byte, two dtypes.
    return [rec("intensity", "intensity", dtype=d, flops=k * GiB, nbytes=GiB, seconds=GiB / HBM * max(1, k / 100),
                roof="traced", params={"k": k}) for d in ("bf16", "fp16") for k in (1, 10, 100, 1000)]


def by_gid(fig, prefix):
    return [line for ax in fig.axes for line in ax.get_lines() if (line.get_gid() or "").startswith(prefix)]


def legend_labels(fig):
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    return labels + [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def roofline_axes(fig):
    return next(ax for ax in fig.axes if ax.get_ylabel() == "TFLOP/s")


def test_axes_are_tflops_and_gbs_with_binary_sizes():
    fig = plot.figure(ceilings() + cases())
    roof = roofline_axes(fig)
    assert "FLOP per byte" in roof.get_xlabel()
    (bf16,) = by_gid(fig, "roof:compute:measured:bf16")
    assert bf16.get_ydata()[0] == pytest.approx(BF16 / 1e12)  # TFLOP/s, not FLOP/s
    (point,) = [p for p in by_gid(fig, "point:attention:bf16:triton")]
    assert point.get_ydata()[0] == pytest.approx(500)
    ws = next(ax for ax in fig.axes if ax.get_ylabel() == "GB/s")
    fig.canvas.draw()
    ticks = [t.get_text() for t in ws.get_xticklabels() if t.get_text()]
    assert any(t.endswith("MiB") for t in ticks) and any(t.endswith("GiB") for t in ticks), ticks
    (line,) = by_gid(fig, "stream:stream-copy:fp32:triton")
    assert max(line.get_ydata()) == pytest.approx(L2_BW / 1e9)  # GB/s


def test_dtype_is_the_colour_of_roofs_and_points_alike():
    fig = plot.figure(ceilings() + cases())
    colour = lambda line: to_rgba(line.get_color())  # noqa: E731
    for dtype in ("bf16", "fp16"):
        (roof,) = by_gid(fig, f"roof:compute:measured:{dtype}")
        points = by_gid(fig, f"point:attention:{dtype}:")
        assert points and all(colour(p) == colour(roof) for p in points)
    assert colour(by_gid(fig, "roof:compute:measured:bf16")[0]) != colour(by_gid(fig, "roof:compute:measured:fp16")[0])


def test_family_is_the_marker_triton_filled_vendor_hollow():
    fig = plot.figure(ceilings() + cases())
    (attention,) = by_gid(fig, "point:attention:bf16:triton")
    (decode,) = by_gid(fig, "point:decode:bf16:triton")
    (vendor,) = by_gid(fig, "point:attention:bf16:vendor")
    assert attention.get_marker() != decode.get_marker()
    assert vendor.get_marker() == attention.get_marker()  # same family, same shape
    assert to_rgba(attention.get_markerfacecolor()) == to_rgba(attention.get_color())
    assert vendor.get_markerfacecolor() == "none"
    labels = legend_labels(fig)
    assert {"attention", "decode", "Triton (filled)", "vendor (hollow)", "bf16", "fp16"} <= set(labels)


def test_compute_roofs_start_where_they_meet_the_memory_roof():
    fig = plot.figure(ceilings() + cases())
    (measured,) = by_gid(fig, "roof:compute:measured:bf16")
    (spec,) = by_gid(fig, "roof:compute:spec:bf16")
    assert measured.get_xdata()[0] == pytest.approx(BF16 / HBM)
    assert spec.get_xdata()[0] == pytest.approx(989.5e12 / 4.8e12)  # H200-SXM spec ridge
    # The memory roof stops at the highest compute roof, not past it.
    (hbm,) = by_gid(fig, "roof:memory:HBM:measured")
    assert hbm.get_ydata()[-1] == pytest.approx(max(line.get_ydata()[0] for line in by_gid(fig, "roof:compute:")))
    # No HBM ceiling measured: the measured roof meets the spec sheet's memory roof, not the left edge.
    fig = plot.figure(ceilings(with_streaming=False) + cases())
    (measured,) = by_gid(fig, "roof:compute:measured:bf16")
    assert measured.get_xdata()[0] == pytest.approx(BF16 / 4.8e12)
    assert not by_gid(fig, "roof:memory:HBM:measured")


def test_legend_holds_only_what_is_drawn():
    labels = legend_labels(plot.figure(ceilings() + cases()))
    assert plot.MARKS["flagged"] not in labels and plot.MARKS["traced"] not in labels
    assert plot.MARKS["overhead"] not in labels  # nothing overhead-bound among these
    fig = plot.figure(ceilings() + cases() + flagged())
    assert plot.MARKS["flagged"] in legend_labels(fig) and by_gid(fig, "flagged:decode:bf16")
    # A GEMM-only file: no family of cases, no working-set panel, no vendor entry beyond what is drawn.
    fig = plot.figure([gemm(8192, BF16)])
    labels = legend_labels(fig)
    assert not {"attention", "decode", "streaming", "Triton (filled)", "vendor (hollow)"} & set(labels)
    assert "bf16" in labels and len([ax for ax in fig.axes if ax.get_visible()]) == 1


def test_title_names_the_gpu_the_spec_entry_and_the_date():
    fig = plot.figure(ceilings() + cases())
    assert fig._suptitle.get_text() == "H200 #0 on node0 against the H200-SXM spec sheet, measured 2026-11-30"
    later = [case("attention", "attention-fwd", 10**13, GiB, 400e12, day="2026-12-02", params={"S": 1})]
    assert "measured 2026-11-30 to 2026-12-02" in plot.figure(ceilings() + later)._suptitle.get_text()
    assert "against the H100-SXM spec sheet" in plot.figure(ceilings() + cases(), spec="H100-SXM")._suptitle.get_text()


def test_traced_records_are_points_per_dtype_joined_by_a_line():
    fig = plot.figure(ceilings() + traced())
    for dtype in ("bf16", "fp16"):
        (line,) = by_gid(fig, f"traced:intensity:triton:{dtype}")
        xs = list(line.get_xdata())
        assert xs == sorted(xs) and len(xs) == 4 and line.get_linestyle() == "-"
        assert to_rgba(line.get_color()) == to_rgba(by_gid(fig, f"roof:compute:measured:{dtype}")[0].get_color())
    assert plot.MARKS["traced"] in legend_labels(fig)


def test_overhead_bound_cases_are_ringed(monkeypatch):
    from analysis import bounds

    fig = plot.figure(ceilings() + cases())
    assert not by_gid(fig, "overhead:") and plot.MARKS["overhead"] not in legend_labels(fig)  # none is
    real = bounds.classify
    monkeypatch.setattr(bounds, "classify", lambda a, r, floors=None: type("B", (), {
        "kind": "overhead" if r.family == "decode" else real(a, r, floors).kind})())
    fig = plot.figure(ceilings() + cases())
    assert by_gid(fig, "overhead:decode:bf16") and not by_gid(fig, "overhead:attention")
    assert plot.MARKS["overhead"] in legend_labels(fig)


def test_png_is_written(tmp_path):
    path = tmp_path / "plots" / "roofline.png"
    text = report.render(ceilings() + cases(), plot=str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert f"Written to {path}" in text


def test_svg_is_written_and_the_same_records_give_the_same_file(tmp_path):
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    plot.roofline_plot(ceilings() + cases(), a, spec="H100-SXM")
    plot.roofline_plot(ceilings() + cases(), b, spec="H100-SXM")
    text = a.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "HBM spec 3.35 TB/s" in text
    assert a.read_bytes() == b.read_bytes()


def test_bad_plot_requests(tmp_path):
    with pytest.raises(AnalysisError, match="must end in .png or .svg"):
        plot.roofline_plot(ceilings(), tmp_path / "roofline.jpg")
    collective = rec("nccl-all-reduce", "collective", impl="torch.distributed", vendor=True, nbytes=1 << 20,
                     params={"op": "all-reduce", "message_bytes": 1 << 20, "world_size": 2})
    collective.view = "collective"
    with pytest.raises(AnalysisError, match="nothing to plot"):
        plot.roofline_plot([collective], tmp_path / "roofline.png")
    assert not (tmp_path / "roofline.png").exists()
