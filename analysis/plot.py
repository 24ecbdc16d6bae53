"""`report --plot FILE.png|svg`: the log-log roofline of each GPU in a results file,
and beside it, where the file holds streaming records, the working-set curve
(bandwidth against working set, with the L2 size marked), which shows the L2
plateau and the HBM plateau the memory roofs are read from.

Spec roofs are dashed, measured roofs solid (HBM black, L2 grey, one colour
per dtype for the compute ceilings); each case sits at (intensity, achieved
FLOP/s), coloured by family, a circle for Triton and a triangle for the
vendor path; figures flagged above a roof are red crosses. matplotlib is
imported here only, with the Agg backend, so reports without a plot never
load it.
"""
from __future__ import annotations

from pathlib import Path

from analysis import roofline as rl
from analysis.errors import AnalysisError

SUFFIXES = (".png", ".svg")
FAMILY_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                  "tab:cyan")
DTYPE_COLOURS = {"fp32": "tab:red", "tf32": "tab:orange", "fp16": "tab:green", "bf16": "tab:blue",
                 "fp8": "tab:purple", "int8": "tab:brown", "fp64": "tab:gray"}


def roofline_plot(records, path, *, spec: str | None = None) -> str:
    """Draw the roofline of every GPU of `records` into `path` (.png or .svg); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise AnalysisError(f"plot file {str(path)!r} must end in {' or '.join(SUFFIXES)}")
    rl.check_records(records)
    groups = rl.by_gpu([r for r in records if r.view != "collective"])
    if not groups:
        raise AnalysisError("nothing to plot: no per-GPU records (collectives have no roofline)")
    analyses = [rl.analyze(rs, spec) for rs in groups.values()]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    streaming = [[r for r in a.records if r.roof == "memory" and r.meaningful and id(r) not in a.excluded]
                 for a in analyses]
    ncols = 2 if any(streaming) else 1
    fig, axes = plt.subplots(len(analyses), ncols, figsize=(8 * ncols, 6 * len(analyses)), squeeze=False)
    families = sorted({p.record.family for a in analyses for p in a.placements})
    colour = {f: FAMILY_COLOURS[i % len(FAMILY_COLOURS)] for i, f in enumerate(families)}
    for row, a, stream in zip(axes, analyses, streaming):
        _draw(row[0], a, colour)
        if ncols == 2:
            _draw_working_set(row[1], a, stream)
    handles = [Line2D([], [], color="black", lw=2, label="measured roof"),
               Line2D([], [], color="black", lw=1.5, ls="--", label="spec roof"),
               Line2D([], [], ls="", marker="o", color="gray", label="Triton"),
               Line2D([], [], ls="", marker="^", color="gray", label="vendor"),
               Line2D([], [], ls="", marker="x", color="red", label="flagged above a roof")]
    handles += [Line2D([], [], ls="", marker="s", color=colour[f], label=f) for f in families]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False)
    fig.tight_layout(rect=(0, 0.06 if len(analyses) == 1 else 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def _draw_working_set(ax, a: rl.GpuAnalysis, records) -> None:
    """GB/s against working set per streaming kernel and dtype: Triton solid, vendor dashed."""
    if not records:
        ax.set_visible(False)
        return
    import matplotlib

    kernels = sorted({(r.workload, r.dtype) for r in records})
    palette = matplotlib.colormaps["tab20"]  # 20 distinct colours: 6 kernels x 2-3 dtypes fit
    for i, (workload, dtype) in enumerate(kernels):
        hue = palette(i % 20)
        for vendor, style in ((False, "-"), (True, "--")):
            pts = sorted((r.bytes, r.bytes_per_s) for r in records
                         if (r.workload, r.dtype, r.vendor) == (workload, dtype, vendor))
            if pts:
                ax.plot([x for x, _ in pts], [y / 1e9 for _, y in pts], ls=style, marker=".", color=hue, lw=1.2,
                        label=f"{workload} {dtype}" if not vendor else None)
    if a.l2_bytes:
        ax.axvline(a.l2_bytes, color="0.5", ls=":", lw=1.2)
        ax.text(a.l2_bytes, ax.get_ylim()[0], " L2", color="0.4", va="bottom", fontsize=8)
    if a.spec and a.spec.mem_bw:
        ax.axhline(a.spec.mem_bw / 1e9, color="black", ls="--", lw=1.2)
        ax.text(ax.get_xlim()[0], a.spec.mem_bw / 1e9, f" HBM spec {a.spec.mem_bw / 1e12:.2f} TB/s",
                va="bottom", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("working set of one call (bytes read + written)")
    ax.set_ylabel("GB/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{a.label}: streaming bandwidth by working set (Triton solid, vendor dashed)", fontsize=10)
    ax.legend(loc="lower right", fontsize=7, frameon=False, ncol=2)


def _draw(ax, a: rl.GpuAnalysis, colour: dict) -> None:
    s = a.spec
    dtypes = sorted({*a.compute, *(p.record.dtype for p in a.placements)}, key=rl.dtype_rank)
    xs = [p.intensity for p in a.placements] + [r.flops / rl.counted_bytes(r) for r, _ in a.flagged
                                                if r.flops and rl.counted_bytes(r)]
    for d in dtypes:
        xs += [x for x in a.ridge(d) if x]
    lo, hi = (min(xs) / 4, max(xs) * 4) if xs else (0.1, 1e4)
    lo, hi = min(lo, 0.1), max(hi, 1e3)

    peaks = []
    for d in dtypes:
        c, peak, hue = a.compute.get(d), s.flops(d) if s else None, DTYPE_COLOURS.get(d, "black")
        if c:
            ax.hlines(c.value, c.value / a.hbm.value if a.hbm else lo, hi, colors=hue, lw=2,
                      label=f"{d} measured {c.value / 1e12:.0f} TFLOP/s")
            peaks.append(c.value)
        if peak:
            ax.hlines(peak, peak / s.mem_bw if s.mem_bw else lo, hi, colors=hue, lw=1.2, ls="--",
                      label=f"{d} spec {peak / 1e12:.0f} TFLOP/s")
            peaks.append(peak)
    top = max(peaks) if peaks else None
    for name, bw, style, grey in (("HBM measured", a.hbm.value if a.hbm else None, "-", "black"),
                                  ("L2 measured", a.l2.value if a.l2 else None, "-", "0.6"),
                                  ("HBM spec", s.mem_bw if s else None, "--", "black")):
        if bw:
            end = min(hi, top / bw) if top else hi
            ax.plot([lo, end], [lo * bw, end * bw], ls=style, color=grey, lw=2 if style == "-" else 1.2,
                    label=f"{name} {bw / 1e12:.2f} TB/s")
    for p in a.placements:
        ax.plot(p.intensity, p.achieved, ls="", marker="^" if p.record.vendor else "o", ms=5, alpha=0.8,
                color=colour.get(p.record.family, "gray"))
    for r, _ in a.flagged:
        if r.flops and rl.counted_bytes(r):
            ax.plot(r.flops / rl.counted_bytes(r), r.flop_per_s, ls="", marker="x", ms=7, color="red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    ax.set_ylabel("FLOP/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{a.label}" + (f" against the {s.key} spec sheet" if s else " (no spec entry)"), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7, frameon=False)  # above the memory roof, where no case can sit
    else:
        ax.text(0.5, 0.5, "no meaningful measurement: no roof", transform=ax.transAxes, ha="center")
