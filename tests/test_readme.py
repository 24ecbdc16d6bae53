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
    assert sample.replace("4,667", "4,700") not in printed + "\n"
