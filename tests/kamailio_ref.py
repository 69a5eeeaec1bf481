"""The Kamailio 5.6 reference facts committed under tests/fixtures/kamailio/ (one loader)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

REF_DIR = Path(__file__).resolve().parent / "fixtures" / "kamailio"


@cache
def api_list(*, rtpengine: bool = False) -> list[dict[str, Any]]:
    """Kamailio 5.6.3's `app_lua.api_list` exports (plus rtpengine's when asked)."""
    ref: list[dict[str, Any]] = json.loads((REF_DIR / "kamailio-5.6-api-list.json").read_text())
    if rtpengine:
        supplement = REF_DIR / "kamailio-5.6-api-list.rtpengine-supplement.json"
        ref = ref + json.loads(supplement.read_text())
    return ref


@cache
def kemi_exports() -> list[dict[str, Any]]:
    """Every KEMI export table entry in Kamailio 5.6.3's source (all modules, loaded or not)."""
    doc: dict[str, Any] = json.loads((REF_DIR / "kamailio-5.6-kemi-exports.json").read_text())
    exports: list[dict[str, Any]] = doc["exports"]
    return exports


def module_exports(module: str) -> list[str]:
    """``KSR.<sub>.<name>`` of the exports of Kamailio's loadable module ``module``."""
    prefix = "src/core/" if module == "core" else f"src/modules/{module}/"
    return sorted(
        {
            "KSR." + (f"{e['module']}.{e['name']}" if e["module"] else e["name"])
            for e in kemi_exports()
            if e["file"].startswith(prefix)
        }
    )
