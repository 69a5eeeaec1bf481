"""The import graph of pykemi.runtime, read from the sources (AST), not from sys.modules.

Every import counts, at module level and inside functions (a function-level import is a
cycle waiting for its first call): runtime has no import cycle, never imports the
generator (pykemi.codegen), and imports inside functions only optional heavy third-party
packages, so a router that does not use them never loads them. Imports under
``if TYPE_CHECKING:`` do not run and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
PACKAGE = "pykemi.runtime"

# Imported where they are used, so a router that does not need them never loads them.
LAZY_ALLOWED = {
    "quickjs": "app_jsdt's interpreter",
    "squirrel": "app_sqlang's interpreter",
    "_squirrel": "app_sqlang: the Squirrel C API for the native closure",
    "redis": "the Redis usrloc store (db_url redis://)",
    "psycopg": "probing for the PostgreSQL driver",
    # the SQL layer imports SQLAlchemy (~140 ms, tens of MB) at module level: loaded by
    # `kemi db` and by a SQL db_url only
    "pykemi.runtime.db": "the SQL layer, for `kemi db`",
    "pykemi.runtime.usrloc.dbstore": "usrloc on the SQL layer, for a SQL db_url",
}


def _lazy_ok(target: str) -> bool:
    return any(target == name or target.startswith(name + ".") for name in LAZY_ALLOWED)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a module of pykemi.runtime resolved to its file)
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNTIME).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


MODULES = {module_name(p): p for p in sorted(RUNTIME.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    """(import node, inside a def or class) for every import that runs."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _walk(other, in_function)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        yield from _walk(child, in_function or nested)


def _resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name ``from <level dots><module>`` refers to."""
    if node.level == 0:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(name: str, path: Path, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = _resolve(name, path, node)
    # `from pkg import sub` imports the module pkg.sub when there is one
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return subs or [base]


def imports() -> list[Import]:
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in _walk(tree, False):
            for target in _targets(name, path, node):
                found.append(Import(name, target, node.lineno, in_function))  # type: ignore[attr-defined]
    return found


ALL = imports()


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(ROOT)}:{imp.line} imports {imp.target}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_runtime_has_no_import_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for imp in ALL:
        if imp.target in MODULES and imp.target != imp.source:
            edges.setdefault(imp.source, set()).add(imp.target)
    cycles = _cycles(edges)
    described = [
        " <-> ".join(c)
        + "".join(f"\n    {_where(i)}" for i in ALL if i.source in c and i.target in c)
        for c in cycles
    ]
    assert not cycles, "import cycles in runtime/:\n" + "\n".join(described)


def test_runtime_never_imports_codegen() -> None:
    bad = [_where(i) for i in ALL if i.target.split(".")[:2] == ["pykemi", "codegen"]]
    assert not bad, "the router imports the generator:\n" + "\n".join(bad)


def test_function_level_imports_only_of_optional_heavy_packages() -> None:
    bad = [_where(i) for i in ALL if i.in_function and not _lazy_ok(i.target)]
    assert not bad, f"imports inside functions ({len(bad)}):\n" + "\n".join(bad)


@pytest.mark.parametrize("name", sorted(LAZY_ALLOWED))
def test_lazy_allow_list_is_current(name: str) -> None:
    """Every allow-listed package is still imported inside a function somewhere."""
    assert any(
        i.in_function and (i.target == name or i.target.startswith(name + ".")) for i in ALL
    ), f"{name} is no longer imported lazily: drop it from LAZY_ALLOWED"


# ---- one import style inside the package (issue 17) -------------------------------------------

PACKAGE_FOLDERS = ("runtime", "codegen", "kemi", "pykemi")
# run by path by setup.py's cffi_modules, where relative imports cannot work (it imports none)
RUN_BY_PATH = {"runtime/dispatch_build.py"}


def _absolute_package_imports(path: Path) -> Iterator[int]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "pykemi" or node.module.startswith("pykemi."):
                yield node.lineno
        elif isinstance(node, ast.Import):
            if any(a.name == "pykemi" or a.name.startswith("pykemi.") for a in node.names):
                yield node.lineno


def test_package_imports_itself_relatively() -> None:
    # the folders are mapped onto pykemi.* at install: relative imports are the ones that tools
    # and editors reading the checkout can follow
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in PACKAGE_FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "scaffold_templates" not in path.parts and str(path.relative_to(ROOT)) not in RUN_BY_PATH
        for line in _absolute_package_imports(path)
    ]
    assert not found, "absolute pykemi imports inside the package: " + ", ".join(found)
