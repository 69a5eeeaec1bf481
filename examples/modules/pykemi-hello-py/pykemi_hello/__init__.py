"""KSR.hello: an example out-of-tree pykemi module implemented in Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def module_info() -> dict[str, Any]:
    """What pykemi needs to load the module (entry point group ``pykemi.modules``)."""
    return {
        "name": "hello",
        "specs": [HERE / "spec" / "hello.yaml"],
        "python_package": "pykemi_hello",
    }
