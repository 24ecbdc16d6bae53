"""The spec database: every figure sourced, dense, and SKUs matched without confusing variants."""
import csv
import io

import pytest

from analysis import specs
from analysis.errors import AnalysisError

MiB, GiB = 1 << 20, 1 << 30
REQUIRED = ("H100-SXM", "H100-PCIe", "H100-NVL", "H200-SXM", "A100-SXM-80GB", "A100-PCIe-40GB", "L40S", "L4",
            "B200", "RTX-4090", "MI300X")


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
    ("NVIDIA GB200", 189471),
    ("NVIDIA GeForce RTX 4090 D", 24564),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", 16376),
    ("NVIDIA Tesla T4", 15360),
    ("", None),
])
def test_variants_and_unknown_gpus_do_not_match(name, mem_mib):
    assert specs.match(name, mem_mib * MiB if mem_mib else None) is None


def test_each_reported_name_matches_exactly_one_entry():
    names = ["NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA L4",
             "NVIDIA L40S", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB"]
    for name in names:
        hits = [s.key for s in specs.all_specs() if set(s.match_rule["tokens"]) <= specs.tokens(name)
                and not specs.tokens(name) & set(s.match_rule.get("exclude", ()))]
        assert len(hits) == 1, (name, hits)


def test_database_covers_the_required_skus_with_sourced_figures():
    keys = specs.names()
    assert set(REQUIRED) <= set(keys) and len(keys) == len(set(keys))
    sources = specs.sources()
    for s in specs.all_specs():
        for name in ("units", "mem_gb", "mem_bw_gbs", "power_w", "fp32_tflops", "bf16_tflops", "link_bidir_gbs"):
            assert s.value(name), (s.key, name)
        for name, f in s.figures.items():
            assert f.source in sources, (s.key, name, f.source)
            kind, _, detail = f.checked.partition(":")
            assert kind in ("primary", "secondary", "derived", "device-query", "unconfirmed"), (s.key, name)
            if kind == "secondary":
                assert detail in sources, (s.key, name, detail)
        for src in sources.values():
            assert src["title"] and src["url"]


def test_peaks_are_dense_and_consistent():
    for s in specs.all_specs():
        bf16, fp16, tf32, fp8 = (s.flops(d) for d in ("bf16", "fp16", "tf32", "fp8"))
        assert bf16 == fp16, s.key
        assert tf32 <= bf16 / 2 * 1.02, s.key  # tf32 runs at most half the 16-bit rate (datasheets round)
        if fp8:
            assert fp8 == pytest.approx(2 * bf16, rel=0.02), s.key  # L40S prints 733 beside 362.05
        # Per-direction link bandwidth is half the headline (both directions added).
        assert s.link_per_direction == pytest.approx(s.link_bidir / 2), s.key
    h200 = specs.get("H200")
    assert h200.flops("bf16") == pytest.approx(989.5e12)  # never the 1,979 with-sparsity figure
    assert h200.mem_bw == pytest.approx(4.8e12) and h200.l2_bytes == 60 * MiB
    assert h200.link_per_direction == pytest.approx(450e9)


def test_get_accepts_keys_and_aliases_and_lists_valid_names():
    assert specs.get("h200-sxm").key == "H200-SXM"
    assert specs.get("H100 PCIe").key == "H100-PCIe"
    assert specs.get("a100-sxm4-80gb").key == "A100-SXM-80GB"
    with pytest.raises(AnalysisError) as e:
        specs.get("H300")
    message = str(e.value)
    assert "\n" not in message and "H300" in message and all(k in message for k in REQUIRED)


def test_render_lists_all_and_shows_one_with_sources():
    listing = specs.render()
    assert all(k in listing for k in REQUIRED) and listing.startswith("## Spec database")
    one = specs.render("H200", fmt="plain")
    assert "4800" in one and "https://" in one and "secondary:" in one and "|" not in one
    rows = list(csv.reader(io.StringIO(specs.render("MI300X", fmt="csv"))))
    header = next(r for r in rows if r and r[0] == "figure")
    assert header == ["figure", "value", "unit", "source", "url", "checked", "note"]
    with pytest.raises(AnalysisError, match="unknown format"):
        specs.render(fmt="html")
