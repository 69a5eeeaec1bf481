"""The C host API's send_reply: a C module's ``ksr_host->send_reply`` replies through the
sender its Registry was given (the router gives sl's, which goes through tm when the request
has a transaction). cdispatch, below the modules, imports none of them: runtime/modules/sl.py
reaches it only through the Router."""

from __future__ import annotations

from pathlib import Path

from pykemi.codegen.render import environment
from pykemi.codegen.spec import load_spec
from pykemi.codegen.targets.c import emit_exports
from pykemi.runtime import cbuild
from pykemi.runtime.core.context import CURRENT
from pykemi.runtime.dispatch import Api, Registry
from pykemi.runtime.modules.sl import send_reply

from .modhelpers import make_ctx

SPEC = """\
module: hostreply
summary: Replies from C through the host API.
exports:
  - name: reply
    ret: int
    params:
      - {name: code, type: int, doc: status code}
      - {name: reason, type: str, doc: reason phrase}
    summary: ksr_host->send_reply(code, reason).
    impl: {c: ksr_hostreply_reply}
"""

C_SOURCE = """\
#include "kemi.h"

int ksr_hostreply_reply(sip_msg_t *msg, int code, str *reason)
{
\treturn ksr_host->send_reply(msg, code, reason->s, reason->len);
}
"""


def _build(tmp_path: Path) -> tuple[Api, object]:
    """The module's sr_kemi_t table (as `kemi generate` renders it) compiled with its C source
    by runtime/cbuild.py."""
    (tmp_path / "hostreply.yaml").write_text(SPEC, encoding="utf-8")
    spec = load_spec([tmp_path / "hostreply.yaml"])
    exports_c = tmp_path / "hostreply_kemi_exports.c"
    exports_c.write_text(emit_exports(spec, environment(), exports_c.name), encoding="utf-8")
    source = tmp_path / "hostreply.c"
    source.write_text(C_SOURCE, encoding="utf-8")
    lib_path = tmp_path / cbuild.library_name("_kemi_test_hostreply")
    cbuild.compile_module("_kemi_test_hostreply", [exports_c, source], lib_path)
    return Api(spec), cbuild.load_module("_kemi_test_hostreply", lib_path)


def test_c_module_replies_through_the_registrys_sender(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    api, module = _build(tmp_path)
    registry = Registry(Api.load().merged(api), send_reply=send_reply)
    registry.c_libs = [module]
    for name in ("core", "sl", "hostreply"):
        registry.load_module(name)
    invoke = registry.view("str")[registry.find("hostreply.reply")]
    ctx, sent = make_ctx()
    CURRENT.ctx = ctx
    try:
        rc = invoke(404, "Not Here")
    finally:
        CURRENT.ctx = None
    assert rc == 1
    assert len(sent.items) == 1
    data, _addr = sent.items[0]
    assert data.startswith(b"SIP/2.0 404 Not Here\r\n"), data[:80]
    assert b"\r\nCall-ID: " in data
