"""KSR.hdr exports on real parsed messages."""

from __future__ import annotations

from pykemi.runtime.modules import hdr, sl
from pykemi.runtime.sip.message import parse_message

from .modhelpers import INVITE, make_ctx


def names(ctx: object) -> list[str]:
    return [h.name for h in ctx.msg.headers]  # type: ignore[attr-defined]


def test_append_then_get_and_serialise() -> None:
    ctx, _ = make_ctx()
    assert hdr.append(ctx, "X-Hint: abc\r\n") == 1
    assert hdr.get(ctx, "X-Hint") == "abc"
    assert names(ctx)[-1] == "X-Hint"
    again = parse_message(ctx.msg.to_bytes())
    assert again.get("x-hint") == "abc"
    assert again.body == b"v=0\n"


def test_append_several_lines_and_folding() -> None:
    ctx, _ = make_ctx()
    assert hdr.append(ctx, "X-A: 1\r\nX-B: 2\r\n  continued\r\n") == 1
    assert hdr.get(ctx, "X-A") == "1"
    assert hdr.get(ctx, "X-B") == "2 continued"


def test_append_rejects_bad_lines() -> None:
    ctx, _ = make_ctx()
    before = names(ctx)
    assert hdr.append(ctx, "no colon here\r\n") == -1
    assert hdr.append(ctx, "Bad Name: x\r\n") == -1
    assert hdr.insert(ctx, ": x\r\n") == -1
    assert names(ctx) == before


def test_insert_and_positions() -> None:
    ctx, _ = make_ctx()
    assert hdr.insert(ctx, "X-First: 1\r\n") == 1
    assert names(ctx)[0] == "X-First"
    assert hdr.append_after(ctx, "X-After-CSeq: 2\r\n", "CSeq") == 1
    n = names(ctx)
    assert n[n.index("CSeq") + 1] == "X-After-CSeq"
    assert hdr.insert_before(ctx, "X-Before-To: 3\r\n", "t") == 1  # compact name of To
    n = names(ctx)
    assert n[n.index("To") - 1] == "X-Before-To"
    # unknown anchor: after the last / before the first header
    assert hdr.append_after(ctx, "X-End: 4\r\n", "X-Missing") == 1
    assert names(ctx)[-1] == "X-End"
    assert hdr.insert_before(ctx, "X-Top: 5\r\n", "X-Missing") == 1
    assert names(ctx)[0] == "X-Top"
    # the parsed helpers see the change
    assert hdr.insert(ctx, "Via: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKnew\r\n") == 1
    assert ctx.msg.top_via.host == "1.2.3.4"


def test_remove_and_is_present() -> None:
    ctx, _ = make_ctx()
    assert hdr.is_present(ctx, "X-Multi") == 1
    assert hdr.remove(ctx, "x-multi") == 1
    assert hdr.is_present(ctx, "X-Multi") == -1
    assert hdr.get(ctx, "X-Multi") is None
    assert hdr.remove(ctx, "X-Not-There") == 1
    assert hdr.remove(ctx, "v") == 1  # compact form removes every Via
    assert ctx.msg.vias == []
    assert hdr.is_present(ctx, "") == -1


def test_rmappend_rminsert() -> None:
    ctx, _ = make_ctx()
    assert hdr.rmappend(ctx, "User-Agent", "User-Agent: new\r\n") == 1
    assert hdr.get_idx(ctx, "User-Agent", -1) == "new"
    assert ctx.msg.count("User-Agent") == 1
    assert hdr.rminsert(ctx, "X-Multi", "X-Multi: top\r\n") == 1
    assert names(ctx)[0] == "X-Multi"
    assert ctx.msg.count("X-Multi") == 1


def test_get_variants() -> None:
    ctx, _ = make_ctx()
    assert hdr.get(ctx, "X-Multi") == "one"
    assert hdr.gete(ctx, "X-None") == ""
    assert hdr.getw(ctx, "X-None") == "<null>"
    assert hdr.get(ctx, "X-None") is None
    assert hdr.get(ctx, "f") == '"Alice" <sip:alice@atlanta.example.com>;tag=ftag1'
    assert hdr.get_idx(ctx, "X-Multi", 1) == "two"
    assert hdr.get_idx(ctx, "X-Multi", -1) == "three"
    assert hdr.get_idx(ctx, "X-Multi", -3) == "one"
    assert hdr.get_idx(ctx, "X-Multi", -4) is None
    assert hdr.get_idx(ctx, "X-Multi", 3) is None
    assert hdr.gete_idx(ctx, "X-Multi", 7) == ""
    assert hdr.getw_idx(ctx, "X-Multi", 7) == "<null>"
    assert hdr.getw_idx(ctx, "X-Multi", 0) == "one"


def test_append_to_reply_goes_into_the_next_reply() -> None:
    ctx, sent = make_ctx()
    assert hdr.append_to_reply(ctx, "X-R: 1\r\n") == 1
    assert hdr.append_to_reply(ctx, "broken") == -1
    assert hdr.get(ctx, "X-R") is None  # not added to the request
    assert sl.send_reply(ctx, 404, "Not Here") == 1
    [(data, _)] = sent.items
    assert [h.name for h in parse_message(data).headers if h.name.startswith("X-")] == ["X-R"]
    assert b"\r\nX-R: 1\r\n" in data and b"broken" not in data


def test_match_content() -> None:
    ctx, _ = make_ctx()
    mc = hdr.match_content
    assert mc(ctx, "X-Multi", "eq", "ONE", "f") is True
    assert mc(ctx, "X-Multi", "eq", "two", "f") is False
    assert mc(ctx, "X-Multi", "eq", "two", "o") is True
    assert mc(ctx, "X-Multi", "eq", "three", "l") is True
    assert mc(ctx, "X-Multi", "ne", "four", "a") is True
    assert mc(ctx, "X-Multi", "ne", "two", "a") is False
    assert mc(ctx, "User-Agent", "sw", "test", "f") is True
    assert mc(ctx, "User-Agent", "in", "UA/1", "f") is True
    assert mc(ctx, "User-Agent", "in", "zzz", "o") is False
    assert mc(ctx, "X-None", "eq", "x", "a") is False
    assert mc(ctx, "X-Multi", "re", "o.*", "f") is False  # not implemented, as Kamailio
    assert mc(ctx, "X-Multi", "xx", "one", "f") is False
    assert mc(ctx, "X-Multi", "eq", "one", "z") is False


def test_original_bytes_unchanged_by_reads() -> None:
    ctx, _ = make_ctx()
    hdr.get(ctx, "Via")
    hdr.is_present(ctx, "Via")
    assert ctx.msg.to_bytes() == parse_message(INVITE).to_bytes()
