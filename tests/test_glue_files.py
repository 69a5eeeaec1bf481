"""Code in another language lives in a file of that language (runtime/engines/*.lua, .js, .nut,
.rb, .c, .h), where linters and editors see it, never in a Python string."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
ENGINES = RUNTIME / "engines"
MAX_LINES = 5  # a longer string constant (not a docstring) is a program

# Python source generated per arity and exec'd (one callback per KSR call shape)
ALLOWED = {("engines/ruby.py", "_CALL_TEMPLATE")}

GLUE = [
    "lua_runner.lua",
    "js_prelude.js",
    "sqlang_prelude.nut",
    "sqlang_closure.c",
    "sqlang_closure.h",
    "ruby_prelude.rb",
    "ruby_cdef.h",
    "ruby_module.c",
    "ruby_glue.c",
    "ruby_glue.h",
]


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _long_strings(path: Path) -> list[tuple[str, int]]:
    """(assigned name, line) of every long string constant that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docs = _docstrings(tree)
    names = {
        id(node.value): target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    return [
        (names.get(id(node), "?"), node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.count("\n") > MAX_LINES
        and id(node) not in docs
    ]


def test_no_program_in_a_python_string() -> None:
    bad = [
        f"runtime/{rel}:{line} ({name})"
        for path in sorted(RUNTIME.rglob("*.py"))
        for name, line in _long_strings(path)
        if ((rel := path.relative_to(RUNTIME).as_posix()), name) not in ALLOWED
    ]
    assert not bad, "move these into a file of their language beside the code:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", GLUE)
def test_glue_file_is_beside_its_engine(name: str) -> None:
    text = (ENGINES / name).read_text(encoding="utf-8")
    assert text.strip(), f"runtime/engines/{name} is empty"
