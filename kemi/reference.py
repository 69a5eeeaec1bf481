"""What Kamailio 5.6 exports to KEMI, per loadable module (data about Kamailio, no code of it).

``kamailio-5.6-exports.json`` beside this file lists, for each module folder of Kamailio
5.6.3's source (``core`` for src/core), the ``KSR`` functions its export tables declare,
without the ``KSR.`` prefix (``sl.send_reply``, ``info``). The runtime names from it the
functions a module it accepts without implementing lacks; the generator's coverage page
compares it with the specs. tests/test_param_effects.py checks it against the full
reference in tests/fixtures/kamailio/.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

REFERENCE = Path(__file__).resolve().parent / "kamailio-5.6-exports.json"
VERSION = "5.6.3"


@cache
def kamailio_exports() -> dict[str, tuple[str, ...]]:
    """``{module: ("sl.send_reply", ...)}`` for every Kamailio 5.6 module with KEMI exports."""
    doc = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return {m: tuple(names) for m, names in doc["modules"].items()}


def module_exports(module: str) -> tuple[str, ...]:
    """``KSR.<name>`` of what Kamailio 5.6's module ``module`` exports (none: ``()``)."""
    return tuple(f"KSR.{n}" for n in kamailio_exports().get(module, ()))
