"""pykemi.kemi, the KEMI contract package: a leaf, and the one model of api.json.

The generator and the router both read this package; it must stay importable without
either of them and without the generator's dependencies (a router installed without the
``[codegen]`` extra reads api.json through it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pykemi.kemi import PARAM_TYPES, RET_TYPES, TARGETS, Spec
from pykemi.kemi.model import API_JSON_NOTE

ROOT = Path(__file__).resolve().parent.parent
API_JSON = ROOT / "generated" / "api.json"

FORBIDDEN = ("pykemi.codegen", "pykemi.runtime", "pydantic", "yaml", "jinja2", "black")


def test_importing_kemi_pulls_neither_generator_nor_runtime() -> None:
    """A fresh interpreter that imports pykemi.kemi (every submodule) has loaded none of
    pykemi.codegen, pykemi.runtime, pydantic, yaml, jinja2 or black."""
    code = (
        "import sys, json\n"
        "import pykemi.kemi, pykemi.kemi.model, pykemi.kemi.targets, pykemi.kemi.types\n"
        "import pykemi.kemi.contract, pykemi.kemi.errors\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []


def test_api_json_round_trips_byte_identical() -> None:
    """The committed api.json read into the model and written back is the same bytes,
    and its stamped hash is the model's hash."""
    text = API_JSON.read_text(encoding="utf-8")
    spec, stamped = Spec.load(API_JSON)
    assert spec.api_json() == text
    assert stamped == spec.hash
    assert json.loads(text)["_generated"] == API_JSON_NOTE


def test_model_from_api_json_numbers_exports_in_registration_order() -> None:
    spec, _ = Spec.load(API_JSON)
    assert spec.modules[0].name == "core"
    assert [e.index for e in spec.exports] == list(range(len(spec.exports)))
    for m in spec.modules:
        assert [e.module_index for e in m.exports] == list(range(len(m.exports)))
        assert all(e.module == m.name for e in m.exports)


def test_bad_api_json_names_the_place() -> None:
    doc = json.loads(API_JSON.read_text(encoding="utf-8"))
    doc["modules"][1]["exports"][0]["impl"] = {}
    with pytest.raises(ValueError, match=r"modules\[1\]\.exports\[0\]\.impl"):
        Spec.from_dict(doc)


@pytest.mark.parametrize("lang", sorted(TARGETS))
def test_every_target_spells_every_type(lang: str) -> None:
    t = TARGETS[lang]
    assert set(t.types) == set(PARAM_TYPES) | set(RET_TYPES)
    assert set(t.arg_checks) == set(PARAM_TYPES)
    assert t.engines, "a target language is run by at least one cfgengine"


def test_engine_identifiers_are_unique_across_targets() -> None:
    idents = [ident for t in TARGETS.values() for ident in t.engines]
    assert len(idents) == len(set(idents))


def test_router_and_config_take_their_engines_from_the_targets() -> None:
    """cfgengine identifiers accepted by the config parser and run by the router are exactly
    the Targets' engines, and each names a loadable Engine class."""
    from pykemi.runtime.config.model import KEMI_ENGINES
    from pykemi.runtime.engines.base import Engine
    from pykemi.runtime.router import ENGINES, _import

    idents = {ident for t in TARGETS.values() for ident in t.engines}
    assert set(KEMI_ENGINES) == idents == set(ENGINES)
    for t in TARGETS.values():
        assert issubclass(_import(t.engine_factory), Engine), t.engine_factory


@pytest.mark.parametrize("lang", sorted(TARGETS))
def test_every_target_has_a_generated_shim_per_module(lang: str) -> None:
    """The descriptor's shim folder and suffix are where generated/ has each module's shim
    (Python's are per KSR sub-module: the package's __init__ holds core)."""
    t = TARGETS[lang]
    spec, _ = Spec.load(API_JSON)
    folder = ROOT / "generated" / t.shim_dir
    if lang == "python":
        subs = {t.escape(e.submodule) for e in spec.exports if e.submodule}
        expected = {"__init__", *subs}
    else:
        expected = {m.name for m in spec.modules}
    assert expected <= {p.stem for p in folder.glob("*" + t.suffix)}
