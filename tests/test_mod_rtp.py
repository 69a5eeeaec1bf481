"""KSR.rtpproxy / KSR.rtpengine: every export exists, logs "no RTP proxy available", returns -1."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykemi.runtime.core import log as klog
from pykemi.runtime.modules import rtpengine, rtpproxy

from .kamailio_ref import api_list
from .modhelpers import INVITE, make_ctx


def _exports(module: str) -> list[tuple[str, list[str]]]:
    import yaml

    spec = yaml.safe_load((Path(__file__).parent.parent / "spec" / f"{module}.yaml").read_text())
    return [(e["name"], [p["type"] for p in e["params"]]) for e in spec["exports"]]


@pytest.mark.parametrize("module", [rtpproxy, rtpengine])
def test_every_export_returns_minus_one(module: object, monkeypatch: pytest.MonkeyPatch) -> None:
    logged: list[str] = []
    monkeypatch.setattr(klog, "err", lambda text, origin="core": logged.append(text))
    ctx, sent = make_ctx(INVITE)
    name = module.__name__.rsplit(".", 1)[1]  # type: ignore[attr-defined]
    for fn_name, types in _exports(name):
        args = [1 if t == "int" else "co" for t in types]
        rc = getattr(module, fn_name)(ctx, *args)
        if fn_name.startswith("set_"):
            assert rc == 1
        else:
            assert rc == -1, fn_name
    assert logged and all("no RTP proxy available" in t for t in logged)
    assert not sent.items and ctx.msg.body == b"v=0\n"  # SDP untouched


def test_exports_match_kamailio_reference() -> None:
    ref = api_list(rtpengine=True)
    for module in ("rtpproxy", "rtpengine"):
        theirs = [(e["name"], e["params"]) for e in ref if e["module"] == module]
        assert _exports(module) == theirs
