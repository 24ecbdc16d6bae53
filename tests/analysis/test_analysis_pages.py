"""`python -m suite pages`: results pages generated from results files and their manifest, the
same every time; stale pages found; a bad manifest is one line and exit status 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import pages
from analysis.errors import AnalysisError
from analysis.records import Record, dump

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "benchmarks" / "results" / "manifest.json"
MiB, GiB = 1 << 20, 1 << 30
ENV = {"host": "node0", "interpret": False, "git_commit": "0123456789abcdef0123-dirty", "source_digest": "feedc0de",
       "gpu": {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-0", "l2_bytes": 60 * MiB, "mem_bytes": 143771 * MiB}}


def rec(workload, family, roof, *, impl="triton", vendor=False, dtype="bf16", flops=0, nbytes=0, seconds=1e-3,
        day="2026-11-30", status="ok", reason=""):
    ok = status == "ok"
    return Record(workload=workload, family=family, impl=impl, vendor=vendor, dtype=dtype, params={"n": nbytes},
                  case=f"n={nbytes}", label=f"n={nbytes}", status=status, reason=reason, view=family, roof=roof,
                  flops=flops, bytes=nbytes, time_s={"p50": seconds, "n": 10} if ok else None,
                  timing={"method": "cuda-graph", "meaningful": True} if ok else None,
                  verify={"rel_err": 0.0, "tolerance": 1e-3} if ok else None, env=ENV, run_id="run-1",
                  timestamp=f"{day}T03:00:00+00:00")


def sweep(day="2026-11-30"):
    flops = 2 * 8192 ** 3
    return [rec("stream-copy", "streaming", "memory", dtype="fp32", nbytes=4 * GiB, seconds=4 * GiB / 4.4e12, day=day),
            rec("stream-copy", "streaming", "memory", dtype="fp32", nbytes=8 * MiB, seconds=8 * MiB / 9e12, day=day),
            rec("gemm-square", "gemm", "compute", flops=flops, nbytes=3 * 8192 ** 2 * 2, seconds=flops / 700e12,
                day=day),
            rec("gemm-square", "gemm", "compute", impl="torch.matmul", vendor=True, flops=flops, nbytes=1,
                status="skipped", reason="a reason\nwith a second line")]


def write(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(dump(r) + "\n" for r in records))
    return path


@pytest.fixture
def site(tmp_path):
    """A results folder with two files and a manifest; pages go to docs/results beside it."""
    results = tmp_path / "benchmarks" / "results"
    write(results / "h200-sweep.jsonl", sweep())
    write(results / "h200-later.jsonl", sweep(day="2026-12-02")[:1])
    manifest = {"pages": "../../docs/results", "gpus": {"h200": {"title": "NVIDIA H200 SXM", "files": [
        {"path": "h200-sweep.jsonl", "what": "a small sweep", "command": "python -m suite sweep --quick", "plot": True},
        {"path": "h200-later.jsonl", "what": "one copy, later", "command": "python -m suite sweep --only stream-copy"},
    ]}}}
    (results / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_a_page_holds_each_file_its_command_code_plot_and_report(site):
    written = pages.generate(site / "benchmarks/results/manifest.json")
    page = site / "docs/results/h200.md"
    assert written == [page, site / "docs/results/h200-sweep-roofline.png"]
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert text.startswith("# Results: NVIDIA H200 SXM\n")
    assert "`../../benchmarks/results/manifest.json`" in text
    assert "[h200-sweep.jsonl](../../benchmarks/results/h200-sweep.jsonl)" in text  # relative to the page
    assert "Made by `python -m suite sweep --quick`; code: git 0123456789ab-dirty, source digest feedc0de" in text
    assert "| a small sweep" in text and "2026-11-30" in text and "measured 2026-12-02" in text
    assert "![Roofline plot of h200-sweep.jsonl](h200-sweep-roofline.png)" in text
    assert text.count("![Roofline") == 1  # the second file asks for no plot
    assert "### H200 #0 on node0: ceilings" in text and "\n## Results file\n" not in text  # sections nested
    assert "with a second line" not in text  # one line per table cell


def test_the_same_inputs_give_the_same_page_wherever_it_is_written(site, tmp_path_factory):
    manifest = site / "benchmarks/results/manifest.json"
    pages.generate(manifest, plots=False)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert pages.generate(manifest, elsewhere, plots=False) == [elsewhere / "h200.md"]
    assert (elsewhere / "h200.md").read_text() == (site / "docs/results/h200.md").read_text()
    assert pages.stale(manifest) == []


def test_stale_names_changed_missing_and_orphaned_pages(site):
    manifest = site / "benchmarks/results/manifest.json"
    assert pages.stale(manifest) == ["h200.md"]  # not generated yet
    pages.generate(manifest, plots=False)
    write(site / "benchmarks/results/h200-later.jsonl", sweep(day="2026-12-03")[:1])  # the records changed
    assert pages.stale(manifest) == ["h200.md"]
    pages.generate(manifest, plots=False)
    (site / "docs/results/old-gpu.md").write_text("# a page no manifest makes\n")
    assert pages.stale(manifest) == ["old-gpu.md"]


def test_cli_writes_pages_and_checks_them(site):
    manifest = _manifest(site, lambda d: d["gpus"]["h200"]["files"][0].update(plot=False))  # plots tested above
    run = lambda *a: subprocess.run([sys.executable, "-m", "suite", "pages", "--manifest", str(manifest), *a],  # noqa: E731
                                    cwd=ROOT, capture_output=True, text=True, timeout=300)
    check = run("--check")
    assert check.returncode == 1 and check.stderr.strip() == (
        "pages out of date: h200.md; regenerate them with: python -m suite pages")
    made = run()
    assert made.returncode == 0, made.stderr
    assert made.stdout.split() == [str(site / "docs/results/h200.md")]
    assert run("--check").returncode == 0
    both = run("--check", "--out", str(site))
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "takes no --out" in both.stderr


def _manifest(site, change):
    path = site / "benchmarks/results/manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


BAD = [
    (lambda d: d.pop("pages"), 'needs "pages"'),
    (lambda d: d.update(gpus={}), 'needs a "gpus" object'),
    (lambda d: d["gpus"].update({"H200 SXM": d["gpus"]["h200"]}), "a page name is lower-case"),
    (lambda d: d["gpus"]["h200"]["files"][0].pop("command"), "gpus.h200.files[0]: needs 'path', 'what', 'command'"),
    (lambda d: d["gpus"]["h200"]["files"][1].update(path="gone.jsonl"), "results file 'gone.jsonl' does not exist"),
    (lambda d: d["gpus"]["h200"]["files"].append(d["gpus"]["h200"]["files"][0]), "listed twice"),
    (lambda d: d["gpus"].update(h100=d["gpus"]["h200"]), "their plots would overwrite each other"),
    (lambda d: d["gpus"]["h200"].update(spec=["H200-SXM"]), '"spec" names one spec entry'),
]


@pytest.mark.parametrize("change, message", BAD)
def test_a_bad_manifest_is_one_line(site, change, message):
    with pytest.raises(AnalysisError) as e:
        pages.generate(_manifest(site, change))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (site / "docs").exists()


def test_unreadable_inputs_are_one_line_and_exit_2(site):
    manifest = site / "benchmarks/results/manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])  # a cut manifest
    with pytest.raises(AnalysisError, match=r"manifest.json: not valid JSON \(line 1"):
        pages.read_manifest(manifest)
    manifest.write_text(text)
    results = site / "benchmarks/results/h200-sweep.jsonl"
    results.write_text(results.read_text()[:200])  # a cut results file
    with pytest.raises(AnalysisError, match=r"h200-sweep.jsonl:1: malformed record"):
        pages.generate(manifest)
    with pytest.raises(AnalysisError, match="cannot read the manifest"):
        pages.read_manifest(site / "missing.json")
    p = subprocess.run([sys.executable, "-m", "suite", "pages", "--manifest", str(manifest)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr


@pytest.mark.skipif(not COMMITTED.exists(), reason="no committed results manifest (benchmarks/results/manifest.json)")
def test_committed_pages_are_what_the_committed_results_give(tmp_path):
    """Regenerated from the committed results files, the committed pages show no difference."""
    m = pages.read_manifest(COMMITTED)
    made = pages.generate(COMMITTED, tmp_path, plots=False)
    committed = sorted(p.name for p in m.pages_dir.glob("*.md"))
    assert sorted(p.name for p in made) == committed
    for p in made:
        assert p.read_text() == (m.pages_dir / p.name).read_text(), f"{p.name} differs: run python -m suite pages"
