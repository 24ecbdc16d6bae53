"""`report --plot FILE.png|svg`: the log-log roofline of each GPU in a results file, and beside
it, where the file holds streaming records, the working-set curve (bandwidth against working
set, the L2 size marked), which shows the L2 and HBM plateaus the memory roofs are read from.

One encoding per meaning, in every panel:
- colour: the dtype, for compute roofs and for cases alike (memory roofs have no dtype: HBM
  black, L2 grey);
- marker shape: the workload family;
- fill: Triton filled, vendor hollow;
- line style: a measured roof solid, the spec sheet's dashed; in the working-set panel, one
  dash pattern per streaming kernel;
- a black cross: a figure above a roof the hardware cannot beat (not a result); a grey ring:
  a case whose time the host's launches set (analysis.bounds).
A roof starts where it meets the memory roof, as a roofline is the lower of the two; records
that trace a roofline of their own (an intensity sweep) are points joined by a line. Legends
hold only what is drawn.

matplotlib is imported here only, and only through its object API (no pyplot state), so
reports without a plot never load it.
"""
from __future__ import annotations

from pathlib import Path

from analysis import bounds
from analysis import roofline as rl
from analysis.errors import AnalysisError
from analysis.records import recorded_at
from analysis.tables import fmt_bytes

SUFFIXES = (".png", ".svg")
DTYPE_COLOURS = {"fp64": "tab:gray", "fp32": "tab:red", "tf32": "tab:orange", "fp16": "tab:green",
                 "bf16": "tab:blue", "fp8": "tab:purple", "int8": "tab:brown"}
OTHER_COLOURS = ("tab:pink", "tab:olive", "tab:cyan")  # dtypes outside the table above, in order
FAMILY_MARKERS = ("o", "s", "^", "D", "v", "P", "*", "h")  # families in sorted order
KERNEL_DASHES = ("-", (0, (6, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (6, 2, 1, 2, 1, 2)), (0, (12, 3)),
                 (0, (3, 3)), (0, (12, 2, 3, 2)))
HBM_COLOUR, L2_COLOUR = "black", "0.55"
TFLOP, GB = 1e12, 1e9

# The encodings in one sentence, for a report that names the plot it wrote.
ENCODING = ("log-log roofline per GPU, measured roofs solid and spec roofs dashed, each compute roof from where it "
            "meets the memory roof; cases coloured by dtype as their roofs, shaped by family, Triton filled and "
            "vendor hollow; black crosses sit above a roof (not results).")
# What the legend says for each kind of mark, in the order it lists them.
MARKS = {"measured": "measured roof", "spec": "spec-sheet roof", "triton": "Triton (filled)",
         "vendor": "vendor (hollow)", "traced": "intensity sweep (joined)",
         "overhead": "overhead-bound: the host's launches set the time", "flagged": "above a roof: not a result"}


def roofline_plot(records, path, *, spec: str | None = None) -> str:
    """Draw the roofline of every GPU of `records` into `path` (.png or .svg); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise AnalysisError(f"plot file {str(path)!r} must end in {' or '.join(SUFFIXES)}")
    fig = figure(records, spec=spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    # No creation date and fixed SVG ids: the same records give the same file.
    metadata = {"Date": None} if path.suffix.lower() == ".svg" else {}
    with matplotlib.rc_context({"svg.hashsalt": "roofline"}):
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=metadata)
    return str(path)


def figure(records, *, spec: str | None = None):
    """The plot of `records` as a matplotlib Figure: per GPU, the roofline and (with streaming
    records) the working-set curve."""
    rl.check_records(records)
    groups = rl.by_gpu([r for r in records if r.view != "collective"])
    if not groups:
        raise AnalysisError("nothing to plot: no per-GPU records (collectives have no roofline)")
    analyses = [rl.analyze(rs, spec) for rs in groups.values()]
    from matplotlib.figure import Figure

    streaming = [[r for r in a.records if r.roof == "memory" and r.meaningful and id(r) not in a.excluded]
                 for a in analyses]
    ncols = 2 if any(streaming) else 1
    # Laid out when drawn (constrained layout), so building the figure costs no rendering.
    fig = Figure(figsize=(8 * ncols, 6.5 * len(analyses)), layout="constrained")
    axes = fig.subplots(len(analyses), ncols, squeeze=False)
    families = sorted({r.family for a in analyses for r in a.records if r.meaningful})
    style = _Style(families, sorted({r.dtype for a in analyses for r in a.records}, key=rl.dtype_rank))
    for row, a, stream in zip(axes, analyses, streaming):
        _roofline(row[0], a, style)
        if ncols == 2:
            _working_set(row[1], a, stream, style)
    handles = style.handles()
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False, fontsize=8)
    fig.suptitle(title(analyses), fontsize=12)
    return fig


def title(analyses) -> str:
    """'H200 #0 on vm against the H200-SXM spec sheet, measured 2026-11-30' (per GPU, joined)."""
    gpus = "; ".join(f"{a.label} against the {a.spec.key} spec sheet" if a.spec else f"{a.label} (no spec entry)"
                     for a in analyses)
    return f"{gpus}, measured {dates([r for a in analyses for r in a.records])}"


def dates(records) -> str:
    """The day, or first and last day, the records were measured (their timestamps, UTC)."""
    days = sorted({_day(r.timestamp) for r in records} - {None})
    if not days:
        return "on an unrecorded date"
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def _day(timestamp: str) -> str | None:
    when = recorded_at(timestamp)
    return when.strftime("%Y-%m-%d") if when else None


class _Style:
    """The encodings (dtype colour, family marker) and the record of what was drawn, so the legend
    holds only that."""

    def __init__(self, families, dtypes):
        self.marker = {f: FAMILY_MARKERS[i % len(FAMILY_MARKERS)] for i, f in enumerate(families)}
        others = iter(OTHER_COLOURS * len(dtypes))
        self.colour = {d: DTYPE_COLOURS.get(d) or next(others) for d in dtypes}
        self.drawn_dtypes: list = []
        self.drawn_families: list = []
        self.drawn_marks: set = set()

    def dtype(self, d: str) -> str:
        if d not in self.drawn_dtypes:
            self.drawn_dtypes.append(d)
        return self.colour.get(d, "black")

    def family(self, f: str) -> str:
        if f not in self.drawn_families:
            self.drawn_families.append(f)
        return self.marker.get(f, "o")

    def point(self, r) -> dict:
        """Line2D keywords for one case: dtype colour, family marker, Triton filled, vendor hollow."""
        colour, marker = self.dtype(r.dtype), self.family(r.family)
        self.drawn_marks.add("vendor" if r.vendor else "triton")
        return dict(marker=marker, color=colour, mec=colour, mfc="none" if r.vendor else colour, mew=1.2)

    def handles(self) -> list:
        from matplotlib.lines import Line2D

        out = [Line2D([], [], color=self.colour[d], lw=3, label=d)
               for d in sorted(self.drawn_dtypes, key=rl.dtype_rank)]
        out += [Line2D([], [], ls="", marker=self.marker[f], color="0.35", label=f) for f in self.drawn_families]
        shapes = {"measured": dict(color="black", lw=2), "spec": dict(color="black", lw=1.2, ls="--"),
                  "triton": dict(ls="", marker="o", color="0.35"),
                  "vendor": dict(ls="", marker="o", color="0.35", mfc="none"),
                  "traced": dict(marker="o", color="0.35", ms=4),
                  "overhead": dict(ls="", marker="o", ms=11, mfc="none", mec="0.45", mew=1.5),
                  "flagged": dict(ls="", marker="x", color="black", ms=7)}
        out += [Line2D([], [], label=label, **shapes[mark]) for mark, label in MARKS.items()
                if mark in self.drawn_marks]
        return out


def _roofline(ax, a: rl.GpuAnalysis, style: _Style) -> None:
    s = a.spec
    excluded = a.excluded
    traced = [r for r in a.records if r.roof == "traced" and r.meaningful and id(r) not in excluded
              and r.flops and rl.counted_bytes(r)]
    flagged = [r for r, _ in a.flagged if r.flops and rl.counted_bytes(r) and r.flop_per_s]
    dtypes = sorted({*a.compute, *(p.record.dtype for p in a.placements), *(r.dtype for r in traced)},
                    key=rl.dtype_rank)
    xs = [p.intensity for p in a.placements] + [r.flops / rl.counted_bytes(r) for r in traced + flagged]
    xs += [x for d in dtypes for x in a.ridge(d) if x]
    lo, hi = (min(xs) / 4, max(xs) * 4) if xs else (0.1, 1e4)
    lo, hi = min(lo, 0.1), max(hi, 1e3)

    hbm = a.hbm.value if a.hbm else None
    spec_bw = s.mem_bw if s else None
    tops = []  # the compute roofs drawn: a memory roof stops where it meets the highest
    for d in dtypes:
        c, peak = a.compute.get(d), s.flops(d) if s else None
        if c:
            # Measured compute roof from where it meets the measured memory roof (the spec one,
            # where the file measured none); with neither, there is nothing it could meet.
            bw = hbm or spec_bw
            _segment(ax, c.value / bw if bw else lo, hi, c.value, color=style.dtype(d), lw=2,
                     label=f"{d} measured {c.value / TFLOP:,.0f} TFLOP/s", gid=f"roof:compute:measured:{d}")
            style.drawn_marks.add("measured")
            tops.append(c.value)
        if peak:
            _segment(ax, peak / spec_bw if spec_bw else lo, hi, peak, color=style.dtype(d), lw=1.2, ls="--",
                     label=f"{d} spec {peak / TFLOP:,.0f} TFLOP/s", gid=f"roof:compute:spec:{d}")
            style.drawn_marks.add("spec")
            tops.append(peak)
    top = max(tops) if tops else None
    for name, bw, ls, colour in (("HBM measured", hbm, "-", HBM_COLOUR),
                                 ("L2 measured", a.l2.value if a.l2 else None, "-", L2_COLOUR),
                                 ("HBM spec", spec_bw, "--", HBM_COLOUR)):
        if bw:
            end = min(hi, top / bw) if top else hi
            ax.plot([lo, end], [lo * bw / TFLOP, end * bw / TFLOP], ls=ls, color=colour, lw=2 if ls == "-" else 1.2,
                    label=f"{name} {bw / 1e12:.2f} TB/s", gid=f"roof:memory:{name.replace(' ', ':')}")
            style.drawn_marks.add("measured" if ls == "-" else "spec")

    floors = bounds.launch_floors(a.records)
    for p in a.placements:
        r = p.record
        ax.plot([p.intensity], [p.achieved / TFLOP], ls="", ms=6, alpha=0.85,
                gid=f"point:{r.family}:{r.dtype}:{'vendor' if r.vendor else 'triton'}", **style.point(r))
        if bounds.classify(a, r, floors).kind == "overhead":
            ax.plot([p.intensity], [p.achieved / TFLOP], ls="", marker="o", ms=11, mfc="none", mec="0.45", mew=1.5,
                    gid=f"overhead:{r.family}:{r.dtype}")
            style.drawn_marks.add("overhead")
    sweeps: dict = {}
    for r in traced:
        sweeps.setdefault((r.workload, r.impl, r.dtype), []).append(r)
    for (workload, impl, dtype), rs in sorted(sweeps.items()):
        rs.sort(key=lambda r: r.flops / rl.counted_bytes(r))
        ax.plot([r.flops / rl.counted_bytes(r) for r in rs], [r.flop_per_s / TFLOP for r in rs], ls="-", lw=1,
                ms=4, gid=f"traced:{workload}:{impl}:{dtype}", **style.point(rs[0]))
        style.drawn_marks.add("traced")
    for r in flagged:
        ax.plot([r.flops / rl.counted_bytes(r)], [r.flop_per_s / TFLOP], ls="", marker="x", ms=7, color="black",
                gid=f"flagged:{r.family}:{r.dtype}")
        style.drawn_marks.add("flagged")

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    ax.set_ylabel("TFLOP/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{a.label}: roofline" + (f" against {s.key}" if s else " (no spec entry)"), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7, frameon=False)  # above the memory roof, where no case can sit
    else:
        ax.text(0.5, 0.5, "no meaningful measurement: no roof", transform=ax.transAxes, ha="center")


def _segment(ax, x0: float, x1: float, flops: float, **kw) -> None:
    """A horizontal compute roof from x0 to x1 (FLOP/s given, drawn in TFLOP/s)."""
    ax.plot([x0, x1], [flops / TFLOP, flops / TFLOP], **kw)


def _working_set(ax, a: rl.GpuAnalysis, records, style: _Style) -> None:
    """GB/s against working set per streaming kernel and dtype."""
    if not records:
        ax.set_visible(False)
        return
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator

    kernels = sorted({r.workload for r in records})
    dash = {k: KERNEL_DASHES[i % len(KERNEL_DASHES)] for i, k in enumerate(kernels)}
    for workload, dtype, vendor in sorted({(r.workload, r.dtype, r.vendor) for r in records}, key=str):
        rs = sorted((r for r in records if (r.workload, r.dtype, r.vendor) == (workload, dtype, vendor)),
                    key=lambda r: r.bytes)
        ax.plot([r.bytes for r in rs], [r.bytes_per_s / GB for r in rs], ls=dash[workload], lw=1.1, ms=3.5,
                gid=f"stream:{workload}:{dtype}:{'vendor' if vendor else 'triton'}", **style.point(rs[0]))
    for name, bw, ls, colour in (("HBM measured", a.hbm.value if a.hbm else None, "-", HBM_COLOUR),
                                 ("L2 measured", a.l2.value if a.l2 else None, "-", L2_COLOUR),
                                 ("HBM spec", a.spec.mem_bw if a.spec else None, "--", HBM_COLOUR)):
        if bw:
            ax.axhline(bw / GB, color=colour, ls=ls, lw=1.5 if ls == "-" else 1.2, gid=f"ceiling:{name}")
            # Spec labels above their line, measured ones below: the two HBM lines lie close.
            ax.annotate(f"{name} {bw / 1e12:.2f} TB/s", (0.01, bw / GB), xycoords=("axes fraction", "data"),
                        va="bottom" if ls == "--" else "top", fontsize=7, color=colour)
            style.drawn_marks.add("measured" if ls == "-" else "spec")
    if a.l2_bytes:
        ax.axvline(a.l2_bytes, color=L2_COLOUR, ls=":", lw=1.2, gid="l2-size")
        ax.annotate(f" L2 {fmt_bytes(a.l2_bytes)}", (a.l2_bytes, 0.02), xycoords=("data", "axes fraction"),
                    fontsize=7, color="0.35")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: size_label(x)))
    ax.set_xlabel("working set of one call (bytes read + written)")
    ax.set_ylabel("GB/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{a.label}: streaming bandwidth by working set", fontsize=10)
    ax.legend(handles=[Line2D([], [], color="0.3", ls=dash[k], label=k) for k in kernels], loc="lower right",
              fontsize=7, frameon=False, title="kernel", title_fontsize=7)


def size_label(n: float) -> str:
    """A tick's byte count: '512 KiB', '64 MiB', '4 GiB'."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n:g} B"
