"""KSR.hello_c: an example out-of-tree pykemi module implemented in C."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def module_info() -> dict[str, Any]:
    """What pykemi needs to load the module (entry point group ``pykemi.modules``)."""
    return {
        "name": "hello_c",
        "specs": [HERE / "spec" / "hello_c.yaml"],
        "c_sources": [HERE / "hello_c.c"],
        "python_package": "pykemi_hello_c",
    }
