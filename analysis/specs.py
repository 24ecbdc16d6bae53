"""The spec-sheet database: what vendors promise, each figure with its source.

The figures live in specs.json (data, not code). This module loads them,
converts them to base units (bytes, bytes/s, FLOP/s), matches a GPU's reported
name and memory size to an entry, and renders entries for `python -m suite specs`.

Matching works on whole lower-case tokens of the reported name (torch / NVML,
e.g. "NVIDIA H100 80GB HBM3" -> {nvidia, h100, 80gb, hbm3}): an entry matches
when all of its tokens are present, none of its excluded tokens is, and the
reported memory (when known) lies in its GiB range. Whole tokens keep "L4"
from matching "L40S"; exclusions and memory keep the SXM, PCIe and NVL
variants of one chip apart.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.tables import Col, Section, Table, check_format, format_sections

_PATH = Path(__file__).with_name("specs.json")
GiB = 1 << 30
MiB = 1 << 20

# Suite dtype -> figure holding its dense peak. fp32 GEMMs run IEEE fp32 on the
# CUDA cores, so their peak is the non-tensor fp32 figure; tf32 is the tensor one.
DTYPE_FIGURE = {
    "fp64": "fp64_tflops", "fp32": "fp32_tflops", "tf32": "tf32_tflops", "fp16": "fp16_tflops",
    "bf16": "bf16_tflops", "fp8": "fp8_tflops", "int8": "int8_tops",
}
# Display order and units of the figures of an entry.
FIGURES = (
    ("units", "SMs / CUs", ""), ("boost_clock_mhz", "boost clock", "MHz"), ("mem_gb", "memory", "GB"),
    ("mem_bw_gbs", "memory bandwidth", "GB/s"), ("l2_mib", "L2 cache", "MiB"), ("power_w", "power", "W"),
    ("fp64_tflops", "FP64", "TFLOP/s"), ("fp64_tensor_tflops", "FP64 tensor", "TFLOP/s"),
    ("fp32_tflops", "FP32", "TFLOP/s"), ("tf32_tflops", "TF32 tensor", "TFLOP/s"),
    ("fp16_tflops", "FP16 tensor", "TFLOP/s"), ("bf16_tflops", "BF16 tensor", "TFLOP/s"),
    ("fp8_tflops", "FP8 tensor", "TFLOP/s"), ("int8_tops", "INT8 tensor", "TOPS"),
    ("link_bidir_gbs", "interconnect, both directions", "GB/s"),
    ("link_per_direction_gbs", "interconnect, per direction", "GB/s"),
)


@dataclass(frozen=True)
class Figure:
    value: float | None
    source: str  # key into the sources catalogue
    checked: str  # how the figure was confirmed (see specs.json "about")
    note: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Spec:
    key: str
    name: str
    vendor: str
    arch: str
    aliases: tuple[str, ...]
    match_rule: dict
    figures: dict  # figure name -> Figure
    link_name: str
    notes: tuple[str, ...]

    def value(self, figure: str) -> float | None:
        f = self.figures.get(figure)
        return None if f is None else f.value

    def _scaled(self, figure: str, scale: float) -> float | None:
        v = self.value(figure)
        return None if v is None else v * scale

    @property
    def mem_bw(self) -> float | None:
        """Peak memory bandwidth, bytes/s."""
        return self._scaled("mem_bw_gbs", 1e9)

    @property
    def mem_bytes(self) -> float | None:
        return self._scaled("mem_gb", 1e9)

    @property
    def l2_bytes(self) -> float | None:
        return self._scaled("l2_mib", MiB)

    @property
    def power_w(self) -> float | None:
        return self.value("power_w")

    @property
    def link_per_direction(self) -> float | None:
        """Interconnect bytes/s one GPU sends while receiving as much (what busbw measures)."""
        return self._scaled("link_per_direction_gbs", 1e9)

    @property
    def link_bidir(self) -> float | None:
        return self._scaled("link_bidir_gbs", 1e9)

    def flops(self, dtype: str) -> float | None:
        """Dense peak FLOP/s (OP/s for int8) for a suite dtype, or None where the chip has none."""
        figure = DTYPE_FIGURE.get(dtype)
        return self._scaled(figure, 1e12) if figure else None

    def describe_source(self, figure: str) -> tuple[str, str]:
        src = sources().get(self.figures[figure].source, {})
        return src.get("title", "?"), src.get("url", "")


@lru_cache(maxsize=1)
def _load() -> tuple[dict, tuple[Spec, ...]]:
    data = json.loads(_PATH.read_text())
    units = {name: unit for name, _, unit in FIGURES}
    specs = []
    for e in data["gpus"]:
        figures = {name: Figure(f["value"], f["source"], f["checked"], f.get("note", ""),
                                f.get("unit", units.get(name, "")))
                   for name, f in e["figures"].items()}
        specs.append(Spec(e["key"], e["name"], e["vendor"], e["arch"], tuple(e.get("aliases", ())),
                          e["match"], figures, e.get("link_name", ""), tuple(e.get("notes", ()))))
    return data["sources"], tuple(specs)


def sources() -> dict:
    return _load()[0]


def all_specs() -> tuple[Spec, ...]:
    return _load()[1]


def names() -> list[str]:
    return [s.key for s in all_specs()]


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def get(name: str) -> Spec:
    """The entry called `name` (its key or an alias, any case or punctuation)."""
    wanted = _squash(str(name))
    for s in all_specs():
        if wanted in {_squash(s.key), *(_squash(a) for a in s.aliases)}:
            return s
    raise AnalysisError(f"unknown spec {name!r}; valid: {', '.join(names())}")


def tokens(gpu_name: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", gpu_name.lower()))


def match(gpu_name: str, mem_bytes: int | None) -> Spec | None:
    """The entry for a GPU as torch/NVML names it, or None when no entry fits.

    `mem_bytes` (total device memory as reported) separates variants of one
    name; None skips that check.
    """
    if not gpu_name:
        return None
    have = tokens(gpu_name)
    for s in all_specs():
        rule = s.match_rule
        if not set(rule["tokens"]) <= have or have & set(rule.get("exclude", ())):
            continue
        lo, hi = rule.get("mem_gib", (0, float("inf")))
        if mem_bytes is not None and not lo <= mem_bytes / GiB <= hi:
            continue
        return s
    return None


def render(name: str | None = None, fmt: str = "github") -> str:
    """All entries side by side, or one entry with every figure's source."""
    check_format(fmt)
    section = _overview() if name is None else _entry(get(name))
    return format_sections([section], fmt)


def _overview():
    dtypes = ("fp32", "tf32", "fp16", "bf16", "fp8")
    cols = [Col("key", "Key"), Col("name", "Name"), Col("units", "SMs/CUs", "int"), Col("boost", "Boost", "mhz"),
            Col("mem_gb", "Memory GB"), Col("mem_bw", "Mem BW", "bytes_per_s"), Col("l2", "L2", "bytes"),
            Col("power", "Power", "watts"), *(Col(d, d.upper(), "flop_per_s") for d in dtypes),
            Col("link", "Link/direction", "bytes_per_s")]
    rows = [[s.key, s.name, s.value("units"), s.value("boost_clock_mhz"), s.value("mem_gb"), s.mem_bw, s.l2_bytes,
             s.power_w, *(s.flops(d) for d in dtypes), s.link_per_direction] for s in all_specs()]
    notes = ["Dense peaks only (with-sparsity figures halved). FP32 is the non-tensor rate; TF32/FP16/BF16/FP8 are "
             "tensor-core rates with FP32 accumulation. Memory is the marketed decimal size. Link/direction: "
             "interconnect bytes/s one way (half the vendor's bidirectional figure), what nccl-tests' bus "
             "bandwidth measures.",
             "`specs NAME` shows one entry with the source of every figure and how it was checked."]
    return Section("Spec database", [Table(None, cols, rows)], notes)


def _entry(s: Spec):
    cols = [Col("figure", "Figure"), Col("value", "Value"), Col("unit", "Unit"), Col("source", "Source"),
            Col("url", "URL"), Col("checked", "Checked"), Col("note", "Note")]
    rows = []
    for name, label, unit in FIGURES:
        f = s.figures.get(name)
        if f is not None:
            title, url = s.describe_source(name)
            rows.append([label, f.value, f.unit or unit, title, url, f.checked, f.note])
    rule = s.match_rule
    matching = (f"Matches a reported GPU name holding the tokens {', '.join(rule['tokens'])}"
                + (f" and none of {', '.join(rule['exclude'])}" if rule.get("exclude") else "")
                + (f", with {rule['mem_gib'][0]}-{rule['mem_gib'][1]} GiB of memory" if rule.get("mem_gib") else "")
                + ".")
    notes = [f"{s.name}: {s.vendor} {s.arch}; interconnect {s.link_name}.", matching, *s.notes,
             "Checked: 'primary' = the vendor's text was read; 'secondary:KEY' = read in that compilation only; "
             "'derived' = computed from a printed figure; 'device-query' = read from the device; 'unconfirmed' = "
             "could not be confirmed here."]
    return Section(f"Spec {s.key}", [Table(None, cols, rows)], notes)
