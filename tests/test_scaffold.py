"""``kemi new-module``: name checks, the files it writes, and docs/writing-a-module.md run
as a new user would (every ```sh block marked ``# test: run``, in a fresh venv)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pykemi.cli import main

from .test_extensions import make_venv

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "writing-a-module.md"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Hello", "invalid module name 'Hello': use lower-case letters"),
        ("1x", "invalid module name '1x'"),
        ("sl", "'sl' is a built-in pykemi module"),
        ("pv", "KSR.pv already exists in pykemi"),
        ("info", "KSR.info already exists in pykemi"),
        ("x", "reserved word"),
        ("class", "reserved word"),
        ("end", "reserved in"),
    ],
)
def test_bad_names(
    name: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-module", name, "--dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_existing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-module", "demo", "--dir", str(tmp_path)]) == 0
    assert main(["new-module", "demo", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("impl", ["python", "c"])
def test_files(impl: str, tmp_path: Path) -> None:
    assert main(["new-module", "demo", "--impl", impl, "--dir", str(tmp_path)]) == 0
    root = tmp_path / "pykemi-demo"
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    impl_file = "pykemi_demo/demo.c" if impl == "c" else "pykemi_demo/impl.py"
    assert names == sorted(
        [".gitignore", "README.md", "pyproject.toml", "pykemi_demo/__init__.py",
         "pykemi_demo/spec/demo.yaml", "tests/test_demo.py", impl_file]
    )  # fmt: skip
    for py in root.rglob("*.py"):
        ast.parse(py.read_text(), str(py))  # the skeleton compiles
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."pykemi.modules"]\ndemo = "pykemi_demo:module_info"' in pyproject
    # the spec validates with pykemi's own loader
    from pykemi.codegen.spec import load_spec

    spec = load_spec([root / "pykemi_demo" / "spec" / "demo.yaml"])
    (e,) = spec.exports
    assert (e.qualname, e.ret, e.impl_kind) == ("demo.hello", "xval", impl)
    assert [p.name for p in spec.modules[0].params] == ["exclaim"]
    assert (
        yaml.safe_load((root / "pykemi_demo" / "spec" / "demo.yaml").read_text())["module"]
        == "demo"
    )
    # module_info() points at existing files
    sys.path.insert(0, str(root))
    try:
        import importlib

        mod = importlib.import_module("pykemi_demo")
        info = mod.module_info()
        assert all(Path(p).is_file() for p in [*info["specs"], *info.get("c_sources", [])])
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("pykemi_demo", None)


def doc_blocks(text: str) -> list[str]:
    """The ```sh blocks whose first line is ``# test: run``, in page order."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
    return [b for b in blocks if b.lstrip().startswith("# test: run")]


def test_doc_has_runnable_blocks() -> None:
    blocks = doc_blocks(DOC.read_text())
    joined = "\n".join(blocks)
    assert len(blocks) >= 6
    for command in ("kemi new-module greet --impl python", "kemi new-module geo --impl c",
                    "kemi generate --extension", "pytest", "kemi check"):  # fmt: skip
        assert command in joined


def test_writing_a_module_page_as_a_new_user(tmp_path: Path) -> None:
    """Runs exactly the page's commands: scaffold both kinds, add a function, test, check."""
    venv = make_venv(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    script = "set -euo pipefail\n" + "\n".join(doc_blocks(DOC.read_text()))
    proc = subprocess.run(
        ["bash", "-c", script], cwd=work, env=venv.env, capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "greet.cfg: ok" in out
    assert re.search(r"^3 passed", out, flags=re.M), out[-3000:]  # greet: hello x2 + shout
    assert out.count(" passed") >= 2
    # the C module was compiled into the cache, not into the package or the repository
    assert list((tmp_path / "cache" / "modules" / "geo" / "build").glob("_pykemi_ext_geo_*.so"))
    assert not (ROOT / "generated" / "lua" / "greet.lua").exists()
