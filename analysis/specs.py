"""The spec-sheet database: what vendors promise, each figure with where it is printed.

The figures live in specs.json (data, not code). This module loads and checks
them, converts them to base units (bytes, bytes/s, FLOP/s), matches a GPU's
reported name and memory size to an entry, and renders entries for
`python -m suite specs`.

Provenance, as a reader needs it: every figure names its source (a public
document: title, publisher, revision as printed, an http(s) URL, and how its
text was confirmed) and says where in that document it is printed and what is
printed there; `derived` says how the stored value follows from the printed one
(a with-sparsity tensor figure halved, a per-board figure divided by 8); a
figure no public document could confirm says why in `unconfirmed` and holds no
value. Loading refuses a database that breaks these rules, so a figure without a
source, or a source a user cannot open, never reaches a report.

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
# What a source is: the vendor's own document, the vendor's document hosted elsewhere,
# a third party's reproduction of a vendor table, a third party's summary, a published device query.
SOURCE_KINDS = ("vendor", "copy", "reproduction", "compilation", "measurement")
_SOURCE_FIELDS = {"title", "publisher", "revision", "url", "kind", "confirmed"}
_FIGURE_FIELDS = {"value", "source", "printed", "derived", "unconfirmed", "note", "unit"}
_URL = re.compile(r"https?://[^\s/]+\.[^\s/]+\S*")


@dataclass(frozen=True)
class Figure:
    value: float | None
    source: str  # key into the sources catalogue
    printed: str = ""  # where in the source the figure is printed, and what is printed there
    derived: str = ""  # how the stored value follows from what is printed
    unconfirmed: str = ""  # why no public document confirms the figure (its value is then None)
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


def _text(d: dict, field: str, where: str, required: bool = True) -> str:
    v = d.get(field, "")
    if not isinstance(v, str) or (required and not v.strip()):
        raise AnalysisError(f"spec database: {where} needs a non-empty text '{field}'")
    return v


def _check_url(url: str, where: str) -> None:
    if not _URL.fullmatch(url):
        raise AnalysisError(f"spec database: {where} has {url!r}, not an http(s) URL a reader can open")


def _parse_sources(raw) -> dict:
    if not isinstance(raw, dict) or not raw:
        raise AnalysisError("spec database: 'sources' must map keys to documents")
    for key, s in raw.items():
        where = f"source {key!r}"
        if not isinstance(s, dict):
            raise AnalysisError(f"spec database: {where} is not an object")
        unknown = set(s) - _SOURCE_FIELDS - {"read_in"}
        if unknown:
            raise AnalysisError(f"spec database: {where} has unknown fields {sorted(unknown)}; "
                                f"valid: {', '.join(sorted(_SOURCE_FIELDS | {'read_in'}))}")
        for field in sorted(_SOURCE_FIELDS):
            _text(s, field, where)
        _check_url(s["url"], f"{where} 'url'")
        if "read_in" in s:
            _check_url(_text(s, "read_in", where), f"{where} 'read_in'")
        if s["kind"] not in SOURCE_KINDS:
            raise AnalysisError(f"spec database: {where} has kind {s['kind']!r}; valid: {', '.join(SOURCE_KINDS)}")
    return raw


def _parse_figure(name: str, f, where: str, sources: dict, default_unit: str) -> Figure:
    where = f"{where} figure {name!r}"
    if not isinstance(f, dict):
        raise AnalysisError(f"spec database: {where} is not an object")
    unknown = set(f) - _FIGURE_FIELDS
    if unknown:
        raise AnalysisError(f"spec database: {where} has unknown fields {sorted(unknown)}; "
                            f"valid: {', '.join(sorted(_FIGURE_FIELDS))}")
    source = f.get("source")
    if source not in sources:
        raise AnalysisError(f"spec database: {where} names source {source!r}, not in the sources catalogue")
    value = f.get("value", "missing")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise AnalysisError(f"spec database: {where} has value {value!r}; a positive number or null")
    texts = {k: _text(f, k, where, required=False) for k in ("printed", "derived", "unconfirmed", "note", "unit")}
    if value is not None and not texts["printed"].strip():
        raise AnalysisError(f"spec database: {where} does not say where its source prints it ('printed')")
    if value is not None and texts["unconfirmed"]:
        raise AnalysisError(f"spec database: {where} is unconfirmed yet holds a value; leave it null")
    if value is None and not (texts["unconfirmed"] or texts["note"]):
        raise AnalysisError(f"spec database: {where} holds no value and does not say why ('unconfirmed' or 'note')")
    return Figure(value, source, texts["printed"], texts["derived"], texts["unconfirmed"], texts["note"],
                  texts["unit"] or default_unit)


def parse(data) -> tuple[dict, tuple[Spec, ...]]:
    """The sources and entries of a spec database (specs.json's content), checked.

    Raises AnalysisError, naming the entry and figure, when a figure names no
    known source, does not say where it is printed, or a source is not an
    http(s) URL: provenance is part of the data, so bad provenance is bad input.
    """
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
        raise AnalysisError("spec database: expected an object with 'sources' and a list 'gpus'")
    srcs = _parse_sources(data.get("sources"))
    units = {name: unit for name, _, unit in FIGURES}
    specs, seen = [], set()
    for e in data["gpus"]:
        key = e.get("key") if isinstance(e, dict) else None
        if not isinstance(key, str) or not key or key in seen:
            raise AnalysisError(f"spec database: entry key {key!r} is missing or repeated")
        seen.add(key)
        figures = e.get("figures")
        if not isinstance(figures, dict):
            raise AnalysisError(f"spec database: entry {key!r} has no 'figures' object")
        unknown = set(figures) - set(units)
        if unknown:
            raise AnalysisError(f"spec database: entry {key!r} has unknown figures {sorted(unknown)}; "
                                f"valid: {', '.join(units)}")
        parsed = {name: _parse_figure(name, f, f"entry {key!r}", srcs, units[name]) for name, f in figures.items()}
        specs.append(Spec(key, e["name"], e["vendor"], e["arch"], tuple(e.get("aliases", ())), e["match"], parsed,
                          e.get("link_name", ""), tuple(e.get("notes", ()))))
    return srcs, tuple(specs)


@lru_cache(maxsize=1)
def _load() -> tuple[dict, tuple[Spec, ...]]:
    try:
        data = json.loads(_PATH.read_text())
    except json.JSONDecodeError as e:
        raise AnalysisError(f"spec database {_PATH.name} is not valid JSON: {e}") from None
    return parse(data)


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
    """All entries side by side, or one entry with where every figure is printed."""
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
             "bandwidth measures. An empty cell is a figure no public document confirmed.",
             "`specs NAME` shows one entry: the document each figure is printed in, where and what it prints, how "
             "the stored value was derived, and each document's title, revision and URL."]
    return Section("Spec database", [Table(None, cols, rows)], notes)


def _entry(s: Spec):
    cols = [Col("figure", "Figure"), Col("value", "Value"), Col("unit", "Unit"), Col("source", "Source"),
            Col("printed", "Printed there"), Col("derived", "Derived"), Col("unconfirmed", "Not confirmed"),
            Col("note", "Note")]
    rows, used = [], []
    for name, label, unit in FIGURES:
        f = s.figures.get(name)
        if f is not None:
            rows.append([label, f.value, f.unit or unit, f.source, f.printed, f.derived, f.unconfirmed, f.note])
            if f.source not in used:
                used.append(f.source)
    rule = s.match_rule
    matching = (f"Matches a reported GPU name holding the tokens {', '.join(rule['tokens'])}"
                + (f" and none of {', '.join(rule['exclude'])}" if rule.get("exclude") else "")
                + (f", with {rule['mem_gib'][0]}-{rule['mem_gib'][1]} GiB of memory" if rule.get("mem_gib") else "")
                + ".")
    catalogue = sources()
    cited = [f"Source {k}: {_describe(catalogue[k])}" for k in used]
    notes = [f"{s.name}: {s.vendor} {s.arch}; interconnect {s.link_name}.", matching, *s.notes, *cited]
    return Section(f"Spec {s.key}", [Table(None, cols, rows)], notes)


def _describe(src: dict) -> str:
    read_in = f" Read in: {src['read_in']}" if src.get("read_in") else ""
    return (f"{src['title']}. {src['publisher']}; revision: {src['revision']}; {src['kind']}. {src['url']} "
            f"- {src['confirmed']}{read_in}")
