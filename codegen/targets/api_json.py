"""api.json: the model itself, as data (the runtime's api_list, the docs and tests read it)."""

from __future__ import annotations

import jinja2

from ...kemi.model import Spec


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    return {"api.json": spec.api_json()}
