"""pykemi: KEMI bindings generator and SIP router runtime.

The code lives in the top-level folders mapped onto this package by
pyproject.toml: ``codegen/`` -> ``pykemi.codegen``, ``runtime/`` ->
``pykemi.runtime``, ``generated/`` -> ``pykemi.generated``.
"""

__version__ = "0.1.0"
