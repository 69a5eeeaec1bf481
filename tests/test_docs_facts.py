"""Facts the hand-written docs state, checked against the code that makes them true.

Each test reads the sentence or table from docs/ and runs or looks up what it describes,
so the page cannot drift from the code.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from bench import report
from pykemi.runtime.config.globals import KNOWN_GLOBALS

from .enginehelpers import in_process
from .harness import kemi

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _table_first_column(page: str, header: str) -> list[str]:
    """The backquoted first cells of the Markdown table whose header row is ``header``."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    start = lines.index(header) + 2  # header, |---| row
    names = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        names.append(line.split("|")[1].strip().strip("`"))
    return names


def test_configuration_lists_every_pykemi_parameter() -> None:
    """configuration.md's table of pykemi's own kemi.* parameters is the config reader's list
    (kemi.*_callback are Kamailio's, described in callbacks.md)."""
    documented = _table_first_column("configuration.md", "| parameter | meaning |")
    own = [n for n in KNOWN_GLOBALS if n.startswith("kemi.") and not n.endswith("_callback")]
    assert sorted(documented) == sorted(own)


def test_index_names_modules_pykemi_lacks(tmp_path: Path) -> None:
    """docs/index.md: a module of Kamailio that pykemi lacks is reported by name at config
    reading, and the module list it links to (generated/docs/index.md) does not list it."""
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    lacking = re.search(r"\(no `(\w+)`,\s+`(\w+)`,\s+`(\w+)`, \.\.\. yet\)", text)
    assert lacking and "[module list](api/index.md)" in text, text[:800]
    listed = (ROOT / "generated" / "docs" / "index.md").read_text(encoding="utf-8")
    (tmp_path / "k.lua").write_text("function ksr_request_route()\nend\n")
    for name in lacking.groups():
        assert f"[{name}]({name}.md)" not in listed
        (tmp_path / "k.cfg").write_text(
            f'listen=udp:127.0.0.1:5060\nloadmodule "{name}.so"\nloadmodule "app_lua.so"\n'
            'modparam("app_lua", "load", "k.lua")\ncfgengine "lua"\n'
        )
        out = kemi("check", str(tmp_path / "k.cfg"))
        assert f"k.cfg:2: module '{name}'" in out.stdout + out.stderr, out


def test_xval_null_example_is_null(tmp_path: Path) -> None:
    """The null example of callbacks.md's return-type table, and its unset-$var remark, run."""
    text = (DOCS / "callbacks.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `xval` |"))
    null_call = re.search(r"e\.g\. `(KSR\.pv\.get\(\"[^`]+\"\))`", row)
    zero_var = re.search(r"an unset `(\$var\(\w+\))` is `0`", row)
    assert null_call and zero_var, row
    script = (
        "function ksr_request_route()\n"
        f"  KSR.info('null=' .. type({null_call.group(1)}) .. '\\n')\n"
        f"  KSR.info('var=' .. tostring(KSR.pv.get('{zero_var.group(1)}')) .. '\\n')\n"
        "end\n"
    )
    with in_process(tmp_path, "lua", script) as r:
        r.handle()
        assert "null=nil\n" in r.text and "var=0\n" in r.text, r.text


def test_benchmarks_page_names_a_commit_of_this_repository() -> None:
    """docs/benchmarks.md says which commit its figures came from, and that commit exists."""
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    found = re.search(r"measured at commit `([0-9a-f]{7,40})`", text)
    assert found, "docs/benchmarks.md does not name the commit its figures came from"
    if (ROOT / ".git").exists():
        rc = subprocess.run(
            ["git", "cat-file", "-e", f"{found.group(1)}^{{commit}}"], cwd=ROOT, check=False
        ).returncode
        assert rc == 0, f"commit {found.group(1)} is not in this repository"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_bench_stamps_the_commit_it_measured(tmp_path: Path) -> None:
    """bench.run stamps a run with commit_stamp(): HEAD, '-dirty' when tracked files differ."""
    assert report.commit_stamp(tmp_path) == "?"  # not a checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "--short=12", "HEAD")
    (tmp_path / "untracked").write_text("x")  # not part of what is measured
    assert report.commit_stamp(tmp_path) == head
    (tmp_path / "f").write_text("2")
    assert report.commit_stamp(tmp_path) == head + "-dirty"


def test_bench_docs_page_is_the_report_of_its_run() -> None:
    """docs/benchmarks.md is exactly what bench.report renders from the run it names, so its
    figures and its commit come from that run."""
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    run = re.search(r"those of `(bench/results/[\w-]+\.json)`", text)
    assert run, "docs/benchmarks.md does not name its results file"
    res = json.loads((ROOT / run.group(1)).read_text(encoding="utf-8"))
    assert text == report.docs_page(res, "benchmarks.png")
    assert f"measured at commit `{res['machine']['commit']}`" in text
