"""The spec database: each SKU held to its spec sheet, every figure dense and sourced, variants kept apart."""
import copy
import csv
import io
import json
import re
from pathlib import Path

import pytest

from analysis import specs
from analysis.errors import AnalysisError

MiB, GiB = 1 << 20, 1 << 30
RAW_TEXT = Path(specs.__file__).with_name("specs.json").read_text()
RAW = json.loads(RAW_TEXT)
HALF = "half the printed with-sparsity figure"

# Each SKU's memory bandwidth (GB/s), dense BF16 and dense FP32 (TFLOP/s), and the public document printing all
# three. Where the document prints a tensor figure with sparsity only, the dense one is half of it: the H100 SXM's
# printed 1,979 is 989.5 here. The B200 is the HGX B200 column (7.7 TB/s, 75); 8 TB/s and 80 are GB200's.
SHEET = [
    ("H100-SXM", 3350, 989.5, 67, "https://www.nvidia.com/en-us/data-center/h100/"),
    ("H100-PCIe", 2000, 756.5, 51, "https://archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100.html"),
    ("H100-NVL", 3900, 835.5, 60, "https://www.nvidia.com/en-us/data-center/h100/"),
    ("H200-SXM", 4800, 989.5, 67, "https://www.nvidia.com/en-us/data-center/h200/"),
    ("A100-SXM-80GB", 2039, 312, 19.5, "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
                                       "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
    ("A100-PCIe-40GB", 1555, 312, 19.5, "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
                                        "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
    ("L40S", 864, 362.05, 91.6, "https://www.mullet.se/product.html?product_id=355414"),
    ("L4", 300, 121, 30.3, "https://www.nvidia.com/en-us/data-center/l4/"),
    ("B200", 7700, 2250, 75, "https://dam-cdn.nvd.orangelogic.com/AssetLink/y441155802qub41q118b2852i557jem5.pdf"),
    ("GB200", 8000, 2500, 80, "https://dam-cdn.nvd.orangelogic.com/AssetLink/y441155802qub41q118b2852i557jem5.pdf"),
    ("RTX-4090", 1008, 165.2, 82.6, "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/"
                                    "nvidia-ada-gpu-architecture.pdf"),
    ("MI300X", 5300, 1307.4, 163.4, "https://rocm.docs.amd.com/en/docs-6.2.2/conceptual/gpu-arch/mi300.html"),
]
REQUIRED = ("H100-SXM", "H100-PCIe", "H100-NVL", "H200-SXM", "A100-SXM-80GB", "A100-PCIe-40GB", "L40S", "L4",
            "B200", "RTX-4090", "MI300X")


def against_sheet(sources: dict, entries) -> list[str]:
    """Where a database differs from SHEET: a missing SKU, a figure not exactly the sheet's, or another source."""
    by_key = {s.key: s for s in entries}
    problems = [f"{key}: not in the database" for key, *_ in SHEET if key not in by_key]
    for key, bw, bf16, fp32, url in SHEET:
        for figure, want in (("mem_bw_gbs", bw), ("bf16_tflops", bf16), ("fp32_tflops", fp32)):
            f = by_key[key].figures.get(figure) if key in by_key else None
            if f is None:
                continue
            if f.value != want:
                problems.append(f"{key} {figure}: {f.value} != {want}")
            if sources[f.source]["url"] != url:
                problems.append(f"{key} {figure}: printed in {sources[f.source]['url']}, not {url}")
    return problems


def planted(key: str, figure: str, **fields) -> dict:
    """A copy of the database with fields of one figure replaced (None removes a field)."""
    data = copy.deepcopy(RAW)
    entry = next(e for e in data["gpus"] if e["key"] == key)
    for k, v in fields.items():
        if v is None:
            entry["figures"][figure].pop(k, None)
        else:
            entry["figures"][figure][k] = v
    return data


def printed_number(f: specs.Figure) -> float:
    """The number a figure's source prints (the last one in 'printed'), in the figure's units (TFLOP/s, TOPS)."""
    text = f.printed.split(":")[-1]
    number = float(re.findall(r"\d[\d,]*(?:\.\d+)?", text)[-1].replace(",", ""))
    return number * 1000 if re.search(r"\bP(FLOPS|OPS)\b", text) else number


def halving_problems(entries) -> list[str]:
    """Figures claiming to halve a with-sparsity figure that are not half of it, and with-sparsity figures
    (marked '*' or 'with sparsity', no dense figure printed beside) stored unhalved."""
    out = []
    for s in entries:
        for name, f in s.figures.items():
            if f.value is None:
                continue
            marked = "*" in f.printed or "sparsity" in f.printed
            beside = "|" in f.printed.split(":")[-1]
            if f.derived == HALF and printed_number(f) != pytest.approx(2 * f.value):
                out.append(f"{s.key} {name}: {f.value} is not half of {printed_number(f)}")
            if marked and not beside and f.derived != HALF:
                out.append(f"{s.key} {name}: a with-sparsity figure stored as printed")
    return out


def test_each_sku_matches_its_spec_sheet():
    srcs, entries = specs.parse(RAW)
    assert against_sheet(srcs, entries) == []
    assert {key for key, *_ in SHEET} == set(specs.names())  # every entry is held to the sheet


@pytest.mark.parametrize("key, figure, value, problem", [
    ("H100-SXM", "bf16_tflops", 1979, "H100-SXM bf16_tflops: 1979 != 989.5"),  # the with-sparsity figure
    ("H200-SXM", "bf16_tflops", 1979, "H200-SXM bf16_tflops: 1979 != 989.5"),
    ("B200", "mem_bw_gbs", 8000, "B200 mem_bw_gbs: 8000 != 7700"),  # GB200's figure on the HGX B200
    ("B200", "fp32_tflops", 80, "B200 fp32_tflops: 80 != 75"),
])
def test_a_wrong_figure_fails_the_sheet(key, figure, value, problem):
    assert against_sheet(*specs.parse(planted(key, figure, value=value))) == [problem]


def test_a_figure_from_another_document_fails_the_sheet():
    problems = against_sheet(*specs.parse(planted("B200", "mem_bw_gbs", source="nv-h200-page")))
    assert problems == ["B200 mem_bw_gbs: printed in https://www.nvidia.com/en-us/data-center/h200/, not "
                        "https://dam-cdn.nvd.orangelogic.com/AssetLink/y441155802qub41q118b2852i557jem5.pdf"]


def test_with_sparsity_figures_are_halved():
    assert halving_problems(specs.all_specs()) == []
    # A with-sparsity figure kept as printed is caught whether or not it claims to be halved.
    unhalved = planted("H100-SXM", "bf16_tflops", value=1979)
    assert halving_problems(specs.parse(unhalved)[1]) == ["H100-SXM bf16_tflops: 1979 is not half of 1979.0"]
    unclaimed = planted("L4", "bf16_tflops", value=242, derived=None)
    assert halving_problems(specs.parse(unclaimed)[1]) == ["L4 bf16_tflops: a with-sparsity figure stored as printed"]


def test_every_figure_names_a_public_source_and_where_it_is_printed():
    srcs = specs.sources()
    assert "file:" not in RAW_TEXT and "/work/" not in RAW_TEXT and "checked" not in RAW_TEXT
    for src in srcs.values():
        assert re.match(r"https?://", src["url"]) and src["title"] and src["revision"] and src["confirmed"]
        assert src["kind"] in specs.SOURCE_KINDS
        assert re.match(r"https?://", src.get("read_in", "https://"))
    cited = set()
    for s in specs.all_specs():
        for name, f in s.figures.items():
            assert f.source in srcs, (s.key, name)
            assert f.printed if f.value is not None else (f.unconfirmed or f.note), (s.key, name)
            cited.add(f.source)
    assert cited == set(srcs)  # no source kept that no figure cites


@pytest.mark.parametrize("change, message", [
    (lambda d: d["sources"]["nv-h200-page"].update(url="file:///home/notes/h200.md"), "not an http(s) URL"),
    (lambda d: d["sources"]["nv-h200-page"].update(read_in="/tmp/h200.pdf"), "not an http(s) URL"),
    (lambda d: d["sources"]["nv-h200-page"].update(kind="rumour"), "kind 'rumour'; valid: vendor"),
    (lambda d: d["sources"]["nv-h200-page"].pop("revision"), "needs a non-empty text 'revision'"),
    (lambda d: d["gpus"][3]["figures"]["mem_bw_gbs"].pop("source"), "names source None"),
    (lambda d: d["gpus"][3]["figures"]["mem_bw_gbs"].update(source="a-blog"), "names source 'a-blog'"),
    (lambda d: d["gpus"][3]["figures"]["mem_bw_gbs"].pop("printed"), "does not say where its source prints it"),
    (lambda d: d["gpus"][3]["figures"]["mem_bw_gbs"].update(checked="primary"), "unknown fields ['checked']"),
    (lambda d: d["gpus"][3]["figures"]["mem_bw_gbs"].update(unconfirmed="a guess"), "unconfirmed yet holds a value"),
    (lambda d: d["gpus"][3]["figures"]["units"].pop("unconfirmed"), "holds no value and does not say why"),
    (lambda d: d["gpus"][3]["figures"]["mem_bw_gbs"].update(value="4.8 TB/s"), "a positive number or null"),
    (lambda d: d["gpus"][3]["figures"].update(mem_bw_tbs={"value": 4.8}), "unknown figures ['mem_bw_tbs']"),
    (lambda d: d["gpus"].append(copy.deepcopy(d["gpus"][0])), "entry key 'H100-SXM' is missing or repeated"),
    (lambda d: d.pop("gpus"), "expected an object with 'sources' and a list 'gpus'"),  # a cut file
    (lambda d: d["sources"].clear(), "'sources' must map keys to documents"),
])
def test_bad_provenance_is_refused_in_one_line(change, message):
    data = copy.deepcopy(RAW)
    assert data["gpus"][3]["key"] == "H200-SXM"
    change(data)
    with pytest.raises(AnalysisError, match=re.escape(message)) as e:
        specs.parse(data)
    assert "\n" not in str(e.value) and str(e.value).startswith("spec database")


@pytest.mark.parametrize("name, mem_mib, key", [
    ("NVIDIA H200", 143771, "H200-SXM"),
    ("NVIDIA H100 80GB HBM3", 81559, "H100-SXM"),
    ("NVIDIA H100 PCIe", 81559, "H100-PCIe"),
    ("NVIDIA H100 NVL", 95830, "H100-NVL"),
    ("NVIDIA A100-SXM4-80GB", 81920, "A100-SXM-80GB"),
    ("NVIDIA A100-PCIE-40GB", 40960, "A100-PCIe-40GB"),
    ("NVIDIA L40S", 46068, "L40S"),
    ("NVIDIA L4", 23034, "L4"),
    ("NVIDIA B200", 183359, "B200"),
    ("NVIDIA GB200", 189471, "GB200"),  # its own entry: never the HGX B200's figures
    ("NVIDIA GeForce RTX 4090", 24564, "RTX-4090"),
    ("AMD Instinct MI300X", 196592, "MI300X"),
])
def test_reported_names_match_their_entry(name, mem_mib, key):
    assert specs.match(name, mem_mib * MiB).key == key
    assert specs.match(name, None).key == key  # the name alone already decides these


@pytest.mark.parametrize("name, mem_mib", [
    ("NVIDIA H200 NVL", 143771),  # another SKU of the same chip
    ("NVIDIA A100-SXM4-40GB", 40960),  # the 40 GB SXM card is not the 80 GB entry
    ("NVIDIA A100 80GB PCIe", 81920),  # nor the 40 GB PCIe entry
    ("NVIDIA H100 80GB HBM3", 97871),  # an H100 SXM with 94 GB is not the 80 GB entry
    ("NVIDIA L40", 46068),  # L4 and L40S must not match by prefix
    ("NVIDIA GB300", 284208),
    ("NVIDIA GeForce RTX 4090 D", 24564),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", 16376),
    ("NVIDIA Tesla T4", 15360),
    ("", None),
])
def test_variants_and_unknown_gpus_do_not_match(name, mem_mib):
    assert specs.match(name, mem_mib * MiB if mem_mib else None) is None


def test_each_reported_name_matches_exactly_one_entry():
    names = ["NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA L4",
             "NVIDIA L40S", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "NVIDIA B200", "NVIDIA GB200"]
    for name in names:
        hits = [s.key for s in specs.all_specs() if set(s.match_rule["tokens"]) <= specs.tokens(name)
                and not specs.tokens(name) & set(s.match_rule.get("exclude", ()))]
        assert len(hits) == 1, (name, hits)


def test_peaks_are_dense_and_consistent():
    assert set(REQUIRED) <= set(specs.names())
    for s in specs.all_specs():
        bf16, fp16, tf32, fp8 = (s.flops(d) for d in ("bf16", "fp16", "tf32", "fp8"))
        assert bf16 == fp16, s.key
        if tf32:
            assert tf32 <= bf16 / 2 * 1.02, s.key  # tf32 runs at most half the 16-bit rate (datasheets round)
        if fp8:
            assert fp8 == pytest.approx(2 * bf16, rel=0.02), s.key  # L40S prints 733 beside 362.05
        if s.link_bidir:  # per direction is half the headline (both directions added)
            assert s.link_per_direction == pytest.approx(s.link_bidir / 2), s.key
    h200 = specs.get("H200")
    assert h200.flops("bf16") == pytest.approx(989.5e12) and h200.mem_bw == pytest.approx(4.8e12)
    assert h200.link_per_direction == pytest.approx(450e9) and h200.l2_bytes is None  # NVIDIA prints no L2 size
    assert specs.get("H100-SXM").l2_bytes == 50 * MiB and specs.get("B200").l2_bytes == 126.5 * MiB


def test_get_accepts_keys_and_aliases_and_lists_valid_names():
    assert specs.get("h200-sxm").key == "H200-SXM"
    assert specs.get("H100 PCIe").key == "H100-PCIe"
    assert specs.get("a100-sxm4-80gb").key == "A100-SXM-80GB"
    assert specs.get("HGX B200").key == "B200" and specs.get("gb200").key == "GB200"
    with pytest.raises(AnalysisError) as e:
        specs.get("H300")
    message = str(e.value)
    assert "\n" not in message and "H300" in message and all(k in message for k in REQUIRED)


def test_render_lists_all_and_shows_one_with_where_each_figure_is_printed():
    listing = specs.render()
    assert all(k in listing for k in REQUIRED) and listing.startswith("## Spec database")
    one = specs.render("B200", fmt="plain")
    assert one.startswith("Spec B200\n=") and "7700" in one
    assert "nv-blackwell-datasheet" in one and "4204213" in one and "pytorch/ao/pull/4002" in one
    rows = list(csv.reader(io.StringIO(specs.render("MI300X", fmt="csv"))))
    header = next(r for r in rows if r and r[0] == "figure")
    assert header == ["figure", "value", "unit", "source", "printed", "derived", "unconfirmed", "note"]
    bf16 = next(r for r in rows if r and r[0] == "BF16 tensor")
    assert bf16[1:5] == ["1307.4", "TFLOP/s", "amd-rocm-mi300", "table 'Peak-performance capabilities of the "
                                                                "MI300X', 'Matrix BF16': 1307.4"]
    with pytest.raises(AnalysisError, match="unknown format"):
        specs.render(fmt="html")
