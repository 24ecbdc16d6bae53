"""`python -m suite pages`: the results page of each GPU measured, generated from the committed
results files and a small manifest, so that a page cannot drift from its records.

The manifest (JSON) says where the pages live and names, per GPU, the results files of its
page, what each one is and the command that made it:

    {"pages": "../../docs/results",
     "gpus": {"h200": {"title": "NVIDIA H200 SXM",
                       "files": [{"path": "h200-full.jsonl",
                                  "what": "the full sweep of every workload",
                                  "command": "python -m suite sweep --full",
                                  "plot": true}]}}}

Paths are relative to the manifest. Optional: a GPU's "spec" (the spec entry its reports use,
else the one matched from the records), a file's "plot" (its roofline plot on the page). The
code that made each file (git commit, source digest) and the days it ran are read from its
records, never typed by hand.

Each GPU's page, `<pages>/<gpu>.md`, holds a table of its files, then per file its roofline
plot (`<file>-roofline.png`) where asked and its report in Markdown. The same manifest and
records give the same page, wherever it is written.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from analysis import plot as plotting
from analysis import report
from analysis import roofline as rl
from analysis.errors import AnalysisError
from analysis.records import RecordError, load
from analysis.tables import Col, Section, Table, format_sections

SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
FILE_KEYS = ("path", "what", "command")


@dataclass(frozen=True)
class Entry:
    """One results file of a page, as the manifest states it."""
    path: Path
    what: str
    command: str
    plot: bool = False


@dataclass(frozen=True)
class Page:
    gpu: str  # names the page: <gpu>.md
    title: str
    spec: str | None
    entries: tuple

    @property
    def name(self) -> str:
        return f"{self.gpu}.md"

    @staticmethod
    def plot_name(entry: Entry) -> str:
        return f"{entry.path.stem}-roofline.png"


@dataclass(frozen=True)
class Manifest:
    path: Path
    pages_dir: Path  # where the pages live: their links start there
    pages: tuple


def read_manifest(path) -> Manifest:
    """The pages a manifest asks for; AnalysisError (one line, naming the manifest) on a bad one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise AnalysisError(f"{path}: cannot read the manifest ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise AnalysisError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("pages"), str) or not data["pages"].strip():
        raise AnalysisError(f'{path}: needs "pages", the folder the pages live in (relative to the manifest)')
    gpus = data.get("gpus")
    if not isinstance(gpus, dict) or not gpus:
        raise AnalysisError(f'{path}: needs a "gpus" object naming at least one GPU page')
    pages = tuple(_page(path, gpu, page) for gpu, page in gpus.items())
    plots = [Page.plot_name(e) for p in pages for e in p.entries if e.plot]
    twice = sorted({name for name in plots if plots.count(name) > 1})
    if twice:
        raise AnalysisError(f"{path}: two pages plot a results file named like {twice[0][:-len('-roofline.png')]}: "
                            f"their plots would overwrite each other")
    return Manifest(path, Path(os.path.normpath(path.parent / data["pages"])), pages)


def _page(path: Path, gpu: str, page) -> Page:
    where = f"{path}: gpus.{gpu}"
    if not SLUG.fullmatch(gpu):
        raise AnalysisError(f"{where}: a page name is lower-case letters, digits and '-' (it names the file)")
    files = page.get("files") if isinstance(page, dict) else None
    if not isinstance(files, list) or not files:
        raise AnalysisError(f'{where}: needs a "files" list of results files')
    entries = []
    for i, f in enumerate(files):
        here = f"{where}.files[{i}]"
        if not isinstance(f, dict) or any(not isinstance(f.get(k), str) or not f[k].strip() for k in FILE_KEYS):
            raise AnalysisError(f"{here}: needs {', '.join(repr(k) for k in FILE_KEYS)} as non-empty text")
        results = path.parent / f["path"]
        if not results.is_file():
            raise AnalysisError(f"{here}: results file {f['path']!r} does not exist next to the manifest")
        entries.append(Entry(results, " ".join(f["what"].split()), " ".join(f["command"].split()),
                             f.get("plot") is True))
    stems = [e.path.stem for e in entries]
    if len(set(stems)) != len(stems):
        raise AnalysisError(f"{where}: a results file is listed twice")
    spec = page.get("spec")
    if spec is not None and not isinstance(spec, str):
        raise AnalysisError(f'{where}: "spec" names one spec entry (see `python -m suite specs`)')
    return Page(gpu, str(page.get("title") or gpu), spec, tuple(entries))


def _records(entry: Entry) -> list:
    try:
        records = load(entry.path)
    except RecordError as e:
        raise AnalysisError(str(e)) from None
    if not records:
        raise AnalysisError(f"{entry.path}: holds no records")
    return records


def code_of(records) -> str:
    """The code that made the records: git commit(s) and source digest(s) from their env."""
    commits = rl.distinct(records, lambda r: _short(r.env.get("git_commit")))
    digests = rl.distinct(records, lambda r: r.env.get("source_digest"))
    parts = ([f"git {commits}"] if commits != "?" else []) + ([f"source digest {digests}"] if digests != "?" else [])
    return ", ".join(parts) or "not recorded"


def _short(commit) -> str | None:
    if not isinstance(commit, str) or commit in ("", "?"):
        return None
    head, dirty = (commit[:-len("-dirty")], "-dirty") if commit.endswith("-dirty") else (commit, "")
    return head[:12] + dirty


def _link(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


def render(m: Manifest, page: Page, records: dict) -> str:
    """The Markdown of one page; `records`: each entry's records by its path."""
    out = [f"# Results: {page.title}", "",
           f"Generated by `python -m suite pages` from the results files below and "
           f"`{_link(m.path, m.pages_dir)}`; edit those, not this page.", ""]
    cols = [Col("file", "Results file"), Col("what", "What it is"), Col("code", "Code"),
            Col("records", "Records", "int"), Col("measured", "Measured")]
    rows = [[f"[{e.path.name}]({_link(e.path, m.pages_dir)})", e.what, code_of(records[e.path]),
             len(records[e.path]), plotting.dates(records[e.path])] for e in page.entries]
    out.append(format_sections([Section("Results files", [Table(None, cols, rows)])], "github"))
    for e in page.entries:
        rs = records[e.path]
        what = e.what[:1].upper() + e.what[1:] + ("" if e.what.endswith((".", "!", "?")) else ".")
        out += [f"## {e.path.name}", "", what, "", f"Made by `{e.command}`; "
                f"code: {code_of(rs)}; measured {plotting.dates(rs)}.", ""]
        if e.plot:
            out += [f"![Roofline plot of {e.path.name}]({page.plot_name(e)})", ""]
        # The report's sections sit one level below the file's heading.
        out.append(re.sub(r"^## ", "### ", report.render(rs, fmt="github", spec=page.spec), flags=re.M))
    return "\n".join(out).rstrip() + "\n"


def _load_all(page: Page) -> dict:
    return {e.path: _records(e) for e in page.entries}


def generate(manifest, out_dir=None, *, plots: bool = True) -> list[Path]:
    """Write every page of `manifest` (with `plots`, their roofline plots too) into `out_dir`,
    by default the manifest's pages folder; returns the files written."""
    m = read_manifest(manifest)
    out_dir = Path(out_dir) if out_dir is not None else m.pages_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for page in m.pages:
        records = _load_all(page)
        (out_dir / page.name).write_text(render(m, page, records))
        written.append(out_dir / page.name)
        for e in (e for e in page.entries if plots and e.plot):
            written.append(Path(plotting.roofline_plot(records[e.path], out_dir / page.plot_name(e), spec=page.spec)))
    return written


def stale(manifest) -> list[str]:
    """The pages in the manifest's pages folder that differ from what it gives now (missing ones
    included), then pages there it no longer makes; [] when every page is current."""
    m = read_manifest(manifest)
    wanted = {page.name: render(m, page, _load_all(page)) for page in m.pages}
    there = {p.name for p in m.pages_dir.glob("*.md")} if m.pages_dir.is_dir() else set()
    changed = [name for name, text in sorted(wanted.items())
               if not (m.pages_dir / name).is_file() or (m.pages_dir / name).read_text() != text]
    return changed + sorted(there - set(wanted))
