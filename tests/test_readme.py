"""The README is a product page: short, and its sample of output is what the report prints."""
import re
from pathlib import Path

from analysis import report
from analysis.records import load

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_stays_a_page():
    assert len(README.splitlines()) <= 320


def test_the_sample_output_is_the_committed_reports_own_text():
    section = README[README.index("## What it prints"):]
    command = re.search(r"`python -m suite report (\S+) --format plain`", section)
    sample = re.search(r"```\n(.*?)```", section, re.S).group(1)
    assert command and len(sample.splitlines()) > 10
    printed = report.render(load(ROOT / command.group(1)), fmt="plain")
    assert sample in printed + "\n"


def test_a_sample_edited_by_hand_fails():
    section = README[README.index("## What it prints"):]
    sample = re.search(r"```\n(.*?)```", section, re.S).group(1)
    printed = report.render(load(ROOT / "benchmarks/results/h200/full.jsonl"), fmt="plain")
    assert "4,667" in sample  # the HBM ceiling, so the edit below changes the sample
    assert sample.replace("4,667", "4,700") not in printed + "\n"


# Names the README uses for files of one's own, in its examples; every other *.jsonl it names is a
# committed results file.
EXAMPLES = {"a.jsonl", "b.jsonl", "results/quick.jsonl"}


def _unlisted(text: str) -> tuple[set[str], set[str]]:
    """(results files the text names, those of them not in the manifest): by path under
    benchmarks/results/, or by a bare file name that a listed file has."""
    import json

    manifest = json.loads((ROOT / "benchmarks/results/manifest.json").read_text())
    listed = {f["path"] for page in manifest["gpus"].values() for f in page["files"]}
    names = set(re.findall(r"[A-Za-z0-9_./-]*\.jsonl", text)) - EXAMPLES
    named = {n.removeprefix("benchmarks/results/") for n in names}
    found = {n for n in named if n in listed or any(p.endswith("/" + n) for p in listed)}
    return named, named - found


def test_every_results_file_the_readme_names_is_committed_and_in_the_manifest():
    named, unlisted = _unlisted(README)
    assert {"h200/full.jsonl", "launch.jsonl", "energy.jsonl"} <= named
    assert not unlisted, unlisted
    import json

    listed = [f["path"] for page in json.loads((ROOT / "benchmarks/results/manifest.json").read_text())["gpus"].values()
              for f in page["files"]]
    assert all((ROOT / "benchmarks/results" / p).is_file() for p in listed)


def test_a_readme_naming_an_uncommitted_results_file_fails():
    _, unlisted = _unlisted(README + "\nsee quick-warm-nosetle.jsonl and benchmarks/results/h200/nowhere.jsonl\n")
    assert unlisted == {"quick-warm-nosetle.jsonl", "h200/nowhere.jsonl"}
