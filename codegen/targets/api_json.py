"""api.json: the model itself, as data (the runtime's api_list, the docs and tests read it)."""

from __future__ import annotations

import json

import jinja2

from ..models import Spec


def emit(spec: Spec, env: jinja2.Environment) -> dict[str, str]:
    doc = {
        "_generated": "by pykemi.codegen from spec/*.yaml; do not edit",
        "spec_hash": spec.hash,
        **spec.to_dict(),
    }
    return {"api.json": json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n"}
