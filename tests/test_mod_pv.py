"""Pseudo-variable engine (runtime/core/pv.py) and KSR.pv exports."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pykemi.runtime.core.pv import format_pv, get_pv, is_valid_pv, parse_format, set_pv
from pykemi.runtime.modules import core
from pykemi.runtime.modules import pv as kpv

from .modhelpers import INVITE, REPLY, make_ctx, request

EXPECTED = {
    "$ru": "sip:bob@example.com:5070;transport=udp",
    "$rU": "bob",
    "$rd": "example.com",
    "$rp": "5070",
    "$rz": "sip",
    "$ou": "sip:bob@example.com:5070;transport=udp",
    "$du": None,
    "$fu": "sip:alice@atlanta.example.com",
    "$fU": "alice",
    "$fd": "atlanta.example.com",
    "$fn": "Alice",
    "$ft": "ftag1",
    "$tu": "sip:bob@example.com",
    "$tU": "bob",
    "$td": "example.com",
    "$tn": None,
    "$tt": None,
    "$ci": "cid-1@10.0.0.1",
    "$cs": "101",
    "$rm": "INVITE",
    "$rs": None,
    "$rr": None,
    "$rv": "SIP/2.0",
    "$si": "192.0.2.7",
    "$sp": 6000,
    "$su": "sip:192.0.2.7:6000",
    "$Ri": "127.0.0.1",
    "$Rp": 5060,
    "$pr": "udp",
    "$proto": "udp",
    "$ua": "test-ua/1.0",
    "$ct": "<sip:alice@10.0.0.1:5062>",
    "$cT": "application/sdp",
    "$cl": 4,
    "$rb": "v=0\n",
    "$au": "alice",
    "$ar": "atlanta.example.com",
    "$mt": 1,
    "$mf": 0,
    "$bf": 0,
    "$sf": 0,
    "$hdr(X-Multi)": "one",
    "$hdr(x-multi)": "one",
    "$(hdr(X-Multi)[1])": "two",
    "$(hdr(X-Multi)[-1])": "three",
    "$(hdr(X-Multi)[*])": "one,two,three",
    "$(hdr(X-Multi)[5])": None,
    "$hdr(v)": "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc123;rport",
    "$hdr(X-None)": None,
    "$hdrc(X-Multi)": 3,
    "$hdrc(X-None)": 0,
    "$var(never)": 0,
    "$shv(never)": 0,
    "$avp(never)": None,
    "$null": None,
}


@pytest.mark.parametrize(("name", "value"), sorted(EXPECTED.items()))
def test_get_every_variable(name: str, value: object) -> None:
    ctx, _ = make_ctx()
    assert get_pv(ctx, name) == value
    assert type(get_pv(ctx, name)) is type(value)


def test_message_buffer_and_length() -> None:
    ctx, _ = make_ctx()
    mb = get_pv(ctx, "$mb")
    assert isinstance(mb, str) and mb.startswith("INVITE sip:bob@")
    assert get_pv(ctx, "$ml") == len(ctx.msg.to_bytes())


def test_time_and_process_values() -> None:
    ctx, _ = make_ctx()
    assert isinstance(get_pv(ctx, "$Ts"), int)
    assert isinstance(get_pv(ctx, "$TS"), int)
    assert isinstance(get_pv(ctx, "$Tf"), str)
    assert get_pv(ctx, "$pp") == os.getpid()
    assert get_pv(ctx, "$env(PATH)") == os.environ["PATH"]


def test_reply_variables() -> None:
    ctx, _ = make_ctx(REPLY)
    assert get_pv(ctx, "$rs") == 180
    assert get_pv(ctx, "$rr") == "Ringing"
    assert get_pv(ctx, "$rm") == "INVITE"  # CSeq method
    assert get_pv(ctx, "$ru") is None
    assert get_pv(ctx, "$rU") is None
    assert get_pv(ctx, "$tt") == "ttag9"
    assert get_pv(ctx, "$mt") == 2


def test_default_port_and_missing_user() -> None:
    ctx, _ = make_ctx(request("OPTIONS", "sip:example.com"))
    assert get_pv(ctx, "$rp") == "5060"
    assert get_pv(ctx, "$rU") is None
    ctx, _ = make_ctx(request("OPTIONS", "sips:example.com"))
    assert get_pv(ctx, "$rp") == "5061"
    assert get_pv(ctx, "$rz") == "sips"


def test_invalid_names() -> None:
    ctx, _ = make_ctx()
    for name in (
        "",
        "ru",
        "$",
        "$bogus",
        "$var",
        "$var()",
        "$ru(x)",
        "$(ru",
        "$hdr(X)[1]",
        "$(hdr(X)[a])",
    ):
        assert not is_valid_pv(name)
        assert get_pv(ctx, name) is None
        assert set_pv(ctx, name, 1) is False
    assert is_valid_pv("$(hdr(Via)[0])")
    assert is_valid_pv("$var(a.b_c)")


def test_set_ruri_parts() -> None:
    ctx, _ = make_ctx()
    assert set_pv(ctx, "$rU", "carol")
    assert ctx.new_uri == "sip:carol@example.com:5070;transport=udp"
    assert ctx.ruri == ctx.new_uri
    assert set_pv(ctx, "$rd", "10.1.1.1")
    assert set_pv(ctx, "$rp", "5080")
    assert get_pv(ctx, "$ru") == "sip:carol@10.1.1.1:5080;transport=udp"
    assert set_pv(ctx, "$rp", None)
    assert get_pv(ctx, "$rp") == "5060"
    assert set_pv(ctx, "$rU", None)
    assert get_pv(ctx, "$ru") == "sip:10.1.1.1;transport=udp"
    assert set_pv(ctx, "$ru", "sip:dave@d.example")
    assert get_pv(ctx, "$rU") == "dave"
    assert get_pv(ctx, "$ou") == "sip:bob@example.com:5070;transport=udp"
    assert ctx.msg.ruri == "sip:bob@example.com:5070;transport=udp"  # original kept
    assert set_pv(ctx, "$ru", "not a uri") is False
    assert set_pv(ctx, "$ru", None) is False
    assert set_pv(ctx, "$rd", "") is False


def test_set_du() -> None:
    ctx, _ = make_ctx()
    assert set_pv(ctx, "$du", "sip:10.0.0.5:5090")
    assert ctx.dst_uri == "sip:10.0.0.5:5090"
    assert get_pv(ctx, "$du") == "sip:10.0.0.5:5090"
    assert set_pv(ctx, "$du", None)
    assert ctx.dst_uri is None


def test_var_shv_avp() -> None:
    ctx, _ = make_ctx()
    assert set_pv(ctx, "$var(a)", 5)
    assert get_pv(ctx, "$var(a)") == 5
    assert set_pv(ctx, "$var(a)", "txt")
    assert get_pv(ctx, "$var(a)") == "txt"
    assert set_pv(ctx, "$var(a)", None)
    assert get_pv(ctx, "$var(a)") == 0
    # $var lives in the process: a new message of the same worker sees it
    set_pv(ctx, "$var(keep)", "x")
    ctx2, _ = make_ctx(proc=ctx.proc)
    assert get_pv(ctx2, "$var(keep)") == "x"
    assert set_pv(ctx, "$shv(s)", 7) and get_pv(ctx2, "$shv(s)") == 7
    # AVPs are per message and stack (newest first)
    assert set_pv(ctx, "$avp(x)", 1) and set_pv(ctx, "$avp(x)", "two")
    assert get_pv(ctx, "$avp(x)") == "two"
    assert get_pv(ctx, "$(avp(x)[1])") == 1
    assert get_pv(ctx2, "$avp(x)") is None
    assert set_pv(ctx, "$avp(x)", None)
    assert get_pv(ctx, "$avp(x)") is None


def test_flags_settable() -> None:
    ctx, _ = make_ctx()
    assert set_pv(ctx, "$mf", 5) and get_pv(ctx, "$mf") == 5
    assert [core.isflagset(ctx, f) for f in range(4)] == [True, False, True, False]
    assert set_pv(ctx, "$bf", 2) and get_pv(ctx, "$bf") == 2
    assert [core.isbflagset(ctx, f) for f in range(3)] == [False, True, False]


def test_read_only() -> None:
    ctx, _ = make_ctx()
    assert set_pv(ctx, "$ci", "x") is False
    assert set_pv(ctx, "$hdr(X-Multi)", "x") is False


def test_format() -> None:
    ctx, _ = make_ctx()
    set_pv(ctx, "$var(n)", 3)
    out = format_pv(ctx, "$rm $ru from $si:$sp n=$var(n) via=$(hdr(Via)[1]) t=$tt $$ \\$ci\n")
    assert out == (
        "INVITE sip:bob@example.com:5070;transport=udp from 192.0.2.7:6000 n=3 "
        "via=SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKold t=<null> $ $ci\n"
    )
    assert format_pv(ctx, "cost $5 and $bogus") == "cost $5 and $bogus"
    assert format_pv(ctx, "$ru.x") == "sip:bob@example.com:5070;transport=udp.x"
    assert format_pv(ctx, "") == ""


@given(st.text(alphabet=st.characters(blacklist_characters="$\\"), max_size=50))
def test_format_plain_text_unchanged(text: str) -> None:
    ctx, _ = make_ctx()
    assert format_pv(ctx, text) == text
    assert parse_format(text) == ((text,) if text else ())


@given(st.text(max_size=40))
def test_format_never_raises(fmt: str) -> None:
    ctx, _ = make_ctx()
    assert isinstance(format_pv(ctx, fmt), str)


# ---- KSR.pv exports -----------------------------------------------------------------------


def test_ksr_pv_get_variants() -> None:
    ctx, _ = make_ctx()
    assert kpv.get(ctx, "$rU") == "bob"
    assert kpv.get(ctx, "$avp(none)") is None
    assert kpv.gete(ctx, "$avp(none)") == ""
    assert kpv.getw(ctx, "$avp(none)") == "<null>"
    assert kpv.geti(ctx, "$avp(none)") == 0
    assert kpv.geti(ctx, "$cs") == 101
    assert kpv.geti(ctx, "$sp") == 6000
    assert kpv.geti(ctx, "$rU") == 0
    assert kpv.getvn(ctx, "$avp(none)", 9) == 9
    assert kpv.getvs(ctx, "$avp(none)", "dflt") == "dflt"
    assert kpv.getvs(ctx, "$rU", "dflt") == "bob"
    assert kpv.get(ctx, "$bad") is None
    assert kpv.getvn(ctx, "$bad", 4) == 4
    assert kpv.is_null(ctx, "$bad") is True


def test_ksr_pv_set_unset() -> None:
    ctx, _ = make_ctx()
    assert kpv.seti(ctx, "$var(i)", 12) is True
    assert kpv.get(ctx, "$var(i)") == 12
    assert kpv.sets(ctx, "$var(s)", "abc") is True
    assert kpv.get(ctx, "$var(s)") == "abc"
    assert kpv.is_null(ctx, "$avp(a)") is True
    assert kpv.sets(ctx, "$avp(a)", "v")
    assert kpv.is_null(ctx, "$avp(a)") is False
    assert kpv.unset(ctx, "$avp(a)") is True
    assert kpv.is_null(ctx, "$avp(a)") is True
    assert kpv.seti(ctx, "$ci", 1) is False
    assert kpv.sets(ctx, "$du", "sip:1.2.3.4")
    assert kpv.unset(ctx, "$du") and ctx.dst_uri is None


@pytest.mark.parametrize(
    ("text", "value"), [("12", 12), ("-3", -3), ("+4", 4), ("12abc", 0), ("", 0), ("abc", 0)]
)
def test_str2sint(text: str, value: int) -> None:
    assert kpv.str2sint(text) == value


def test_unparseable_ruri_gives_null() -> None:
    ctx, _ = make_ctx(INVITE)
    ctx.new_uri = "garbage"
    assert get_pv(ctx, "$rU") is None
    assert get_pv(ctx, "$ru") == "garbage"
