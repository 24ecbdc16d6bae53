"""How each kind of record is tabled: a workload's declaration names its view, its records
carry that name, and the report hands each GPU's records to the view's section builder.

Adding a view: a module here with a `sections(analysis, records)` function, and one line in
VIEWS. Views are listed in the order the report shows them.
"""
from __future__ import annotations

from analysis.views import attention, decode, gemm, overhead, streaming
from analysis.views import counters
from analysis.views import sustain
from analysis.views import intensity

# view name -> sections(a: GpuAnalysis, records of that view) -> list[Section]
VIEWS = {
    "streaming": streaming.sections,
    "gemm": gemm.cases,
    "gemm-search": gemm.search,
    "gemm-skinny": gemm.skinny,
    "intensity": intensity.sections,
    "attention": attention.sections,
    "decode": decode.sections,
    "sustain": sustain.sections,
    "overhead": overhead.sections,
    "counters": counters.sections,
}
# Records of these views are not per-GPU: the report tables them apart.
GLOBAL_VIEWS = ("collective",)
