"""The workload registry: every workload is one declaration.

A `Workload` states, side by side, its name and family, its cases for the
quick, full and interpreter sweeps, how to build inputs for a case, its
implementations (the Triton kernel and the vendor paths a user would reach for
instead), a float64 reference, and the exact FLOPs and minimum bytes of a case.
The CLI, the sweep and the records read this registry; nothing lists workloads
twice.

Conventions an implementation follows:
- `Impl.prepare(inputs)` returns a zero-argument closure over prepared inputs;
  calling it runs the implementation once and returns its output. Timing code
  never knows what it times.
- Where the workload's inputs hold an output buffer under the key "out", the
  runner poisons it (NaN) before the verification call, so unwritten elements
  fail the check.
- `prepare` or the closure may raise `Skip("reason")` when the implementation
  cannot run this case (a backend that rejects the shape): that is a recorded
  skip, not a failure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

Params = Mapping[str, Any]
Inputs = dict  # workload-defined; may hold "out" (a tensor or tuple of tensors) to poison

SWEEP_MODES = ("quick", "full", "interpret")


class Skip(Exception):
    """Raised by a workload or implementation that cannot run a case; the reason is recorded."""


ROLES = ("fused", "naive")
ROOFS = ("", "memory", "compute", "traced")


@dataclass(frozen=True)
class Impl:
    name: str  # e.g. "triton", "torch", "sdpa-cudnn"
    vendor: bool  # True for the path a user would use instead (torch / cuBLAS / SDPA)
    prepare: Callable[[Inputs], Callable[[], Any]]
    # Kernel configuration actually used (e.g. the autotuner's choice), asked
    # after the verification call; None when there is nothing to report.
    config: Callable[[Inputs], dict | None] | None = None
    # Dtypes this implementation runs; None means all the workload's dtypes.
    dtypes: tuple[str, ...] | None = None
    # "fused", or "naive" when it moves intermediates through memory (attention's scores).
    role: str = "fused"
    # What runs it: "triton", or the library behind a vendor path ("cuBLAS", "cuDNN", ...).
    backend: str = "triton"
    # Kernel launches of one call (the host's share of a call is counted in launches), as a
    # number or (params, dtype) -> number; None where it is not known.
    launches: int | Callable[[Params, str], int] | None = None

    def launches_for(self, params: Params, dtype: str) -> int | None:
        return self.launches(params, dtype) if callable(self.launches) else self.launches


@dataclass(frozen=True)
class Workload:
    name: str
    family: str
    description: str
    dtypes: tuple[str, ...]
    cases: Mapping[str, Sequence[Params]]  # keys: SWEEP_MODES
    make_inputs: Callable[[Params, str, Any, Any], Inputs]  # (params, dtype, device, generator)
    impls: tuple[Impl, ...]
    reference: Callable[[Inputs, Params, str], Any]  # float64 expected output (or a part of it)
    flops: Callable[[Params, str], int]
    bytes: Callable[[Params, str], int]  # the minimum: each input read once, each output written once
    # Bytes an implementation really moves when it differs from the minimum
    # (naive attention's score round trips); (params, dtype, impl name) -> bytes or None.
    moved_bytes: Callable[[Params, str, str], int | None] | None = None
    # Selects from an implementation's output the part the reference covers
    # (a big case may be checked on a slice); identity by default.
    check_view: Callable[[Any, Params], Any] | None = None
    # Why a case cannot run at all (needs more memory than the GPU has, ...), or None.
    skip: Callable[[Params, str, Any], str | None] | None = None
    # Label shown in tables for a case; defaults to "k=v" pairs.
    label: Callable[[Params], str] | None = None
    # Rotate among several input sets so the working set exceeds this many
    # times the L2 (memory-bound workloads measured against DRAM). 0 = one set.
    rotate_past_l2: float = 0.0
    # Per-dtype tolerance overrides of suite.dtypes (each must say why in the declaration).
    tolerance: Mapping[str, float] = field(default_factory=dict)
    # How the report tables this workload's records (a view of analysis.views); the family's
    # name when empty.
    view: str = ""
    # Dtypes of the quick sweep, where it runs fewer than `dtypes` (a map in a minute needs
    # each family's ceilings once, not every dtype of every case); None: all of them.
    quick_dtypes: tuple[str, ...] | None = None
    # "memory" or "compute": the workload's records set that measured ceiling (streaming sets
    # the memory roofs, GEMMs the compute roofs); "traced": its records trace a roofline of their
    # own (the intensity sweep) and are neither ceilings nor placed; "": its cases are placed
    # under the roofs.
    roof: str = ""

    @property
    def view_name(self) -> str:
        return self.view or self.family

    def case_label(self, params: Params) -> str:
        return self.label(params) if self.label else case_id(params)

    def dtypes_for(self, mode: str) -> tuple[str, ...]:
        return self.quick_dtypes if mode == "quick" and self.quick_dtypes else self.dtypes

    def impls_for(self, dtype: str) -> list[Impl]:
        return [i for i in self.impls if i.dtypes is None or dtype in i.dtypes]


def case_id(params: Params) -> str:
    """Canonical, order-independent key of a case (used for --resume and joins)."""
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


_REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    if workload.name in _REGISTRY:
        raise ValueError(f"workload {workload.name!r} registered twice")
    if workload.roof not in ROOFS:
        raise ValueError(f"workload {workload.name!r}: roof {workload.roof!r} is not one of {ROOFS}")
    bad = [i.name for i in workload.impls if i.role not in ROLES]
    if bad:
        raise ValueError(f"workload {workload.name!r}: implementation(s) {bad} have a role outside {ROLES}")
    if workload.quick_dtypes and not set(workload.quick_dtypes) <= set(workload.dtypes):
        raise ValueError(f"workload {workload.name!r}: quick dtypes {workload.quick_dtypes} not among {workload.dtypes}")
    missing = set(SWEEP_MODES) - set(workload.cases)
    if missing:
        raise ValueError(f"workload {workload.name!r} has no cases for {sorted(missing)}")
    # The full sweep supersedes the quick one: a full results file must hold
    # every case a quick run measures.
    full_ids = {case_id(p) for p in workload.cases["full"]}
    not_full = [case_id(p) for p in workload.cases["quick"] if case_id(p) not in full_ids]
    if not_full:
        raise ValueError(f"workload {workload.name!r}: quick cases missing from its full cases: {not_full}")
    _REGISTRY[workload.name] = workload
    return workload


def registered() -> dict[str, Workload]:
    """The workloads registered so far (importing `suite.workloads` registers them all)."""
    return dict(_REGISTRY)
