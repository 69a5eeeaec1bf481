"""Bad specs: each fixture under tests/fixtures/badspec/ must fail with its golden message.

One fixture per error kind (in the style of SWIG's ``Examples/test-suite/errors``):
``NAME.yaml`` (or a folder ``NAME/`` of several ``*.yaml`` files, for errors that
span files) is loaded with ``load_spec(files, root=tests/fixtures/badspec)`` and
``str(SpecErrors)`` must equal ``NAME.err`` exactly (one ``file:line: field:
message`` per line, plus a final newline).

Updating the goldens after an intended change of a message::

    PYKEMI_UPDATE_GOLDENS=1 python3 -m pytest tests/test_codegen_spec_errors.py

rewrites every ``.err`` file from the current output (the tests then pass);
review the diff by eye before committing: every message must name the file, the
line and the field, and say what is allowed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pykemi.codegen.spec import load_spec
from pykemi.kemi.errors import SpecError, SpecErrors

ROOT = Path(__file__).resolve().parent.parent
BADSPEC = Path(__file__).resolve().parent / "fixtures" / "badspec"
UPDATE = os.environ.get("PYKEMI_UPDATE_GOLDENS") == "1"

# every error kind that must have a fixture (a missing one fails test_every_kind_has_a_fixture)
KINDS: dict[str, str] = {
    "unknown_top_key": "misspelled top-level key",
    "unknown_export_key": "unknown key in an export",
    "too_many_params": "more than SR_KEMI_PARAMS_MAX (6) parameters",
    "unknown_param_type": "parameter type that is not int or str (float)",
    "unknown_return_type": "return type outside int, bool, xval, none, long",
    "duplicate_export": "same submodule.name in two spec files",
    "invalid_export_name": "export name that is not an identifier (9abc)",
    "invalid_param_name": "parameter name with a dash",
    "reserved_word_clash": "'end' escapes to 'end_' in Lua and Ruby, clashing with 'end_'",
    "duplicate_param": "two parameters with the same name",
    "impl_both": "impl with both python and c",
    "impl_neither": "impl with neither python nor c",
    "invalid_python_impl": "python impl that is not module.path:function",
    "yaml_syntax": "YAML syntax error",
    "empty": "empty spec file",
    "submodule_x": "engine-reserved sub-module x",
    "duplicate_key": "the same YAML key twice in one mapping",
}

LINE = re.compile(r"^(?P<file>[\w./-]+\.yaml):(?P<line>\d+): (?P<rest>.+)$")


def _cases() -> list[str]:
    names = {p.stem for p in BADSPEC.glob("*.yaml")}
    names |= {p.name for p in BADSPEC.iterdir() if p.is_dir() and any(p.glob("*.yaml"))}
    return sorted(names)


def _files(name: str) -> list[Path]:
    folder = BADSPEC / name
    if folder.is_dir():
        return sorted(folder.glob("*.yaml"))
    return [BADSPEC / f"{name}.yaml"]


def _load_errors(files: list[Path]) -> SpecErrors:
    with pytest.raises(SpecErrors) as info:
        load_spec(files, root=BADSPEC)
    return info.value


def _errors_of(name: str) -> SpecErrors:
    return _load_errors(_files(name))


def test_every_kind_has_a_fixture() -> None:
    missing = sorted(set(KINDS) - set(_cases()))
    assert not missing, f"bad-spec fixtures missing for: {missing}"
    unlisted = sorted(set(_cases()) - set(KINDS))
    assert not unlisted, f"fixtures without an entry in KINDS: {unlisted}"
    orphans = sorted({p.stem for p in BADSPEC.glob("*.err")} - set(_cases()))
    assert not orphans, f"goldens without a fixture: {orphans}"


@pytest.mark.parametrize("name", _cases())
def test_bad_spec_golden(name: str) -> None:
    text = str(_errors_of(name)) + "\n"
    golden = BADSPEC / f"{name}.err"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"{golden.name} missing; run with PYKEMI_UPDATE_GOLDENS=1 and review"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", _cases())
def test_bad_spec_message_shape(name: str) -> None:
    """Each message names an existing fixture file and a line inside it."""
    errors = _errors_of(name).errors
    assert errors
    for err in errors:
        assert isinstance(err, SpecError)
        match = LINE.match(str(err))
        assert match, f"not 'file:line: ...': {err}"
        path = BADSPEC / match["file"]
        assert path.is_file(), f"{err}: names a file that is not the fixture"
        n_lines = max(1, len(path.read_text(encoding="utf-8").splitlines()))
        assert 1 <= int(match["line"]) <= n_lines, f"{err}: line outside the file"
        assert err.message.strip(), f"{err}: empty message"


def test_errors_are_sorted_and_one_per_line() -> None:
    """SpecErrors prints each error on its own line, ordered by file and line."""
    err = _errors_of("reserved_word_clash")
    lines = str(err).splitlines()
    assert len(lines) == len(err.errors) == 2
    assert lines == sorted(lines)


def test_all_bad_files_at_once_report_each_file() -> None:
    """Loading several bad files reports the per-file (YAML and model) errors of all of them."""
    names = ["unknown_top_key", "yaml_syntax", "empty", "unknown_param_type"]
    files = [p for n in names for p in _files(n)]
    text = str(_load_errors(files))
    for n in names:
        assert (BADSPEC / f"{n}.err").read_text(encoding="utf-8").strip() in text


def test_cli_reports_invalid_spec() -> None:
    """``kemi generate --check -q --spec DIR`` exits 2 and prints the errors (paths from the
    root), even when quiet."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pykemi.codegen.cli",
            "--check",
            "-q",  # no progress lines: stderr is exactly the errors
            "--spec",
            str(BADSPEC / "duplicate_export"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    golden = (BADSPEC / "duplicate_export.err").read_text(encoding="utf-8")
    prefix = "tests/fixtures/badspec/"
    expected = golden.replace("duplicate_export/", prefix + "duplicate_export/")
    assert proc.stderr == "kemi generate: invalid spec\n" + expected
