"""pykemi: KEMI bindings generator and SIP router runtime.

The code lives in the top-level folders mapped onto this package by setup.py
(ROOTS): ``kemi/`` -> ``pykemi.kemi``, ``codegen/`` -> ``pykemi.codegen``,
``runtime/`` -> ``pykemi.runtime``, ``generated/`` -> ``pykemi.generated``.
"""

from pathlib import Path

__version__ = "0.1.0"


def checkout() -> Path | None:
    """The source tree pykemi runs from (an editable install), or None when it is installed
    from a wheel: the installed files (generated/, the compiled dispatch extension) are then
    read-only for pykemi itself; `kemi generate` needs --out and `kemi build` has nothing
    to do."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "setup.py").is_file() and (root / "spec").is_dir() else None
