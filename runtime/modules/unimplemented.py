"""Exports pykemi declares but cannot honour yet: said at start-up.

Their spec says so (an export's description containing :data:`NOT_IMPLEMENTED`), which is
also what their API page shows. A script relying on one must not run differently in
silence: when the script file calls such an export of a loaded module, the start-up
warnings (``kemi check`` prints them) name it with the spec's text. Marking a later module's
export the same way is enough. (Modparams say it with their spec's ``effect`` field:
runtime/config/modparams.py warns about each one a config sets.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...kemi.contract import CORE_MODULE
from ...kemi.model import NOT_IMPLEMENTED


def _first_call(text: str, name: str) -> int:
    """Line (1-based) where ``name`` is first called as ``<something>.name``; 0 if never."""
    m = re.search(rf"\.{re.escape(name)}\b", text)
    return text.count("\n", 0, m.start()) + 1 if m else 0


def script_warnings(router: Any) -> Iterator[str]:
    """One line per marked export the script file calls (loaded modules and the core)."""
    script: Path | None = getattr(router.engine, "script", None)
    if script is None:
        return
    try:
        text = script.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for module in dict.fromkeys((CORE_MODULE, *router.registry.bases)):
        spec = router.api.modules.get(module)
        for e in spec.exports if spec is not None else ():
            if NOT_IMPLEMENTED in e.description:
                line = _first_call(text, e.name)
                if line:
                    yield f"{script}:{line}: {e.ksr_name} is called: {e.description}"


def startup_warnings(router: Any) -> list[str]:
    """What the Router adds to its start-up warnings (``kemi check`` prints them)."""
    return list(script_warnings(router))
