"""KSR.textops and KSR.textopsx on real parsed messages."""

from __future__ import annotations

import time

from pykemi.runtime.core.pv import get_pv
from pykemi.runtime.modules import textops as t
from pykemi.runtime.modules import textopsx as tx
from pykemi.runtime.sip.message import parse_message

from .modhelpers import INVITE, REPLY, crlf, make_ctx

SDP = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"
)


def with_body(body: str, ctype: str = "application/sdp") -> bytes:
    return crlf(f"""INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKb1
From: <sip:alice@atlanta.example.com>;tag=f1
To: <sip:bob@example.com>
Call-ID: c-body
CSeq: 1 INVITE
Content-Type: {ctype}
Privacy: id;header
Supported: path, 100rel
Content-Length: {len(body.encode())}

{body}""")


def reparsed(ctx: object) -> object:
    return parse_message(ctx.msg.to_bytes())  # type: ignore[attr-defined]


def test_search_family() -> None:
    ctx, _ = make_ctx()
    assert t.search(ctx, "^invite sip:bob") == 1  # case-insensitive, first line included
    assert t.search(ctx, "X-Nothing") == -1
    assert t.search(ctx, "[[:digit:]]{3} INVITE") == 1  # POSIX class
    assert t.search(ctx, "(unclosed") == -1  # bad regex: error, no exception
    assert t.search_body(ctx, "^v=0") == 1
    assert t.search_hf(ctx, "X-Multi", "^two$", "a") == 1
    assert t.search_hf(ctx, "X-Multi", "^two$", "f") == -1
    assert t.search_hf(ctx, "X-Multi", "three", "l") == 1
    assert t.search_hf(ctx, "f", "alice", "a") == 1  # compact name
    assert t.search_str(ctx, "sip:alice@x", "ALICE@") == 1
    assert t.is_present_hf(ctx, "User-Agent") == 1
    assert t.is_present_hf(ctx, "m") == 1  # Contact, compact
    assert t.is_present_hf(ctx, "X-None") == -1
    assert t.is_present_hf_re(ctx, "^x-mul") == 1
    assert t.is_present_hf_re(ctx, "^P-") == -1


def test_search_append() -> None:
    ctx, _ = make_ctx()
    assert t.search_append(ctx, "test-ua/1.0", " (patched)") == 1
    assert ctx.msg.get("User-Agent") == "test-ua/1.0 (patched)"
    assert t.search_append_body(ctx, "v=0", "\r\ns=x") == 1
    assert ctx.msg.body == b"v=0\r\ns=x\n"
    assert int(str(reparsed(ctx).get("content-length"))) == len(ctx.msg.body)  # type: ignore


def test_remove_functions() -> None:
    ctx, _ = make_ctx()
    assert t.remove_hf(ctx, "X-Multi") == 1 and not ctx.msg.has("X-Multi")
    assert t.remove_hf(ctx, "X-Multi") == 1  # Kamailio's KEMI remove_hf: 1 when none, too
    ctx, _ = make_ctx()
    assert t.remove_hf_idx(ctx, "X-Multi", -1) == 1
    assert ctx.msg.get_all("X-Multi") == ["one", "two"]
    assert t.remove_hf_idx(ctx, "X-Multi", 5) == 2  # ki_remove_hf_idx: past the end
    assert t.remove_hf_re(ctx, "^x-") == 1 and not ctx.msg.has("X-Multi")
    assert t.remove_hf_re(ctx, "^x-") == -1
    ctx, _ = make_ctx()
    assert t.remove_hf_exp(ctx, "^(x-|user-)", "^user") == 3
    assert ctx.msg.has("User-Agent")
    ctx, _ = make_ctx()
    assert t.remove_hf_match(ctx, "X-Multi", "eq", "two") == 1
    assert t.remove_hf_match(ctx, "X-Multi", "in", "hre") == 1
    assert t.remove_hf_match(ctx, "X-Multi", "re", "^o") == 1
    assert t.remove_hf_match(ctx, "X-Multi", "ne", "x") == -1
    assert t.remove_hf_match(ctx, "X-Multi", "bad", "x") == -1


def test_replace_family() -> None:
    ctx, _ = make_ctx()
    assert t.replace(ctx, "X-Multi: t", "X-Multi: T") == 1
    assert ctx.msg.get_all("X-Multi") == ["one", "Two", "three"]
    assert t.replace_all(ctx, "^X-Multi", "X-Other") == 1
    assert ctx.msg.count("X-Other") == 3
    assert t.replace(ctx, "INVITE sip", "BYE sip") == -1  # the first line is not searched
    assert t.replace_str(ctx, "X-Other", "X-Third", "f") == 1
    assert ctx.msg.count("X-Third") == 1
    assert t.replace_hdrs_str(ctx, "X-Other", "X-Fourth", "a") == 1
    assert ctx.msg.count("X-Fourth") == 2
    assert t.replace_hdrs(ctx, "test-ua", "ua") == 1
    assert ctx.msg.get("User-Agent") == "ua/1.0"
    assert t.replace_str(ctx, "x", "y", "z") == -1  # bad mode
    assert t.replace(ctx, "(", "x") == -1


def test_body_replacements_keep_content_length() -> None:
    ctx, _ = make_ctx(with_body(SDP))
    assert t.replace_body(ctx, "10\\.0\\.0\\.1", "192.0.2.55") == 1
    assert ctx.msg.body.count(b"192.0.2.55") == 1
    assert t.replace_body_all(ctx, "10\\.0\\.0\\.1", "192.0.2.55") == 1
    assert b"10.0.0.1" not in ctx.msg.body
    assert t.replace_body_str(ctx, "RTP/AVP", "RTP/SAVP", "a") == 1
    out = reparsed(ctx)
    assert out.body == ctx.msg.body  # type: ignore[attr-defined]
    assert t.replace_body_atonce(ctx, "^.+$", "") == 1
    assert ctx.msg.body == b""
    assert t.has_body(ctx) == -1


def test_replace_growing_body_through_whole_message() -> None:
    ctx, _ = make_ctx()
    assert t.replace_all(ctx, "v=0", "v=0\r\nx=a much longer body line") == 1
    assert ctx.msg.body == b"v=0\r\nx=a much longer body line\n"
    out = parse_message(ctx.msg.to_bytes())
    assert out.body == ctx.msg.body


def test_subst_family() -> None:
    ctx, _ = make_ctx()
    assert t.subst(ctx, "/^User-Agent: (.*)$/User-Agent: x-\\1/") == 1
    assert ctx.msg.get("User-Agent") == "x-test-ua/1.0"
    assert t.subst(ctx, "/^X-Multi: (.*)$/X-Multi: [\\1]/g") == 1
    assert ctx.msg.get_all("X-Multi") == ["[one]", "[two]", "[three]"]
    assert t.subst(ctx, "/nomatch/x/") == -1
    assert t.subst(ctx, "/bad(/x/") == -1
    assert t.subst(ctx, "/a/b/q") == -1  # unknown flag
    assert t.subst(ctx, "x") == -1
    assert t.subst_uri(ctx, "/^sip:bob@(.*)$/sip:carol@\\1/") == 1
    assert ctx.ruri == "sip:carol@example.com:5070;transport=udp"
    assert t.subst_user(ctx, "/carol/dave/") == 1
    assert ctx.ruri == "sip:dave@example.com:5070;transport=udp"
    assert t.subst_user(ctx, "/^(.*)$/$fU-\\1/") == 1  # PVs in the replacement
    assert ctx.ruri == "sip:alice-dave@example.com:5070;transport=udp"
    assert t.subst_uri(ctx, "/.*/not a uri/") == -1
    assert t.subst_body(ctx, "/V=(.)/v=\\1\\1/i") == 1
    assert ctx.msg.body == b"v=00\n"
    assert t.subst_hf(ctx, "X-Multi", "/\\[(.*)\\]/\\1/", "l") == 1
    assert ctx.msg.get_all("X-Multi") == ["[one]", "[two]", "three"]
    assert t.subst_hf(ctx, "X-Multi", "/\\[(.*)\\]/\\1/", "a") == 1
    assert ctx.msg.get_all("X-Multi") == ["one", "two", "three"]


def test_set_body_and_reply_body() -> None:
    ctx, _ = make_ctx()
    assert t.set_body(ctx, "hello", "text/plain") == 1
    out = reparsed(ctx)
    assert out.body == b"hello" and out.get("content-type") == "text/plain"  # type: ignore
    assert t.set_body(ctx, "", "text/plain") == -1
    assert t.has_body(ctx) == 1
    assert t.has_body_type(ctx, "text/plain") == 1
    assert t.has_body_type(ctx, "text/*") == 1
    assert t.has_body_type(ctx, "application/sdp") == -1
    assert t.set_reply_body(ctx, "oops", "text/plain") == 1  # the reply: test_noop_exports


def test_multipart_bodies() -> None:
    ctx, _ = make_ctx(with_body(SDP))
    assert t.append_body_part_cd(ctx, "7e 0d", "application/isup", "signal;handling=required") == 1
    ctype = ctx.msg.get("Content-Type")
    assert ctype == 'multipart/mixed;boundary="unique-boundary-1"'
    assert ctx.msg.get("Mime-Version") == "1.0"
    body = ctx.msg.body.decode()
    assert body.startswith("--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\nv=0")
    assert body.endswith("--unique-boundary-1--\r\n")
    assert "Content-Disposition: signal;handling=required\r\n\r\n7e 0d\r\n" in body
    assert t.get_body_part(ctx, "application/sdp", "$var(sdp)") == 1
    assert get_pv(ctx, "$var(sdp)") == SDP
    assert t.get_body_part_raw(ctx, "application/isup", "$var(raw)") == 1
    assert str(get_pv(ctx, "$var(raw)")).startswith("--unique-boundary-1\r\nContent-Type: app")
    assert t.append_body_part_hex(ctx, "6b 61 6d", "text/x-k") == 1
    assert t.get_body_part(ctx, "text/x-k", "$var(k)") == 1 and get_pv(ctx, "$var(k)") == "kam"
    assert t.remove_body_part(ctx, "application/isup") == 1
    assert t.remove_body_part(ctx, "application/isup") == -1
    assert t.is_audio_on_hold(ctx) == 2
    assert t.filter_body(ctx, "application/sdp") == 1
    assert ctx.msg.body.decode() == SDP
    assert parse_message(ctx.msg.to_bytes()).body == SDP.encode()
    assert t.append_body_part_hex(ctx, "zz", "text/plain") == -1


def test_set_body_multipart_variants() -> None:
    ctx, _ = make_ctx()
    assert t.set_body_multipart(ctx, "text", "text/plain", "delim") == 1
    assert ctx.msg.body == b"--delim\r\nContent-Type: text/plain\r\n\r\ntext\r\n--delim--\r\n"
    ctx, _ = make_ctx(with_body(SDP))
    assert t.set_body_multipart_mode(ctx) == 1
    assert t.get_body_part(ctx, "application/sdp", "$var(x)") == 1
    ctx, _ = make_ctx(with_body(SDP))
    assert t.set_body_multipart_boundary(ctx, "b1") == 1 and b"--b1--" in ctx.msg.body
    assert t.set_body_multipart_content(ctx, "x", "text/plain") == 1


def test_is_audio_on_hold_rfc2543() -> None:
    sdp = SDP.replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0").replace("a=sendonly\r\n", "")
    ctx, _ = make_ctx(with_body(sdp))
    assert t.is_audio_on_hold(ctx) == 1
    ctx, _ = make_ctx(with_body(SDP.replace("a=sendonly\r\n", "")))
    assert t.is_audio_on_hold(ctx) == -1


def test_string_helpers() -> None:
    ctx, _ = make_ctx(with_body(SDP))
    assert t.is_privacy(ctx, "id") == 1
    assert t.is_privacy(ctx, "user") == -1
    assert t.is_privacy(ctx, "bogus") == -1
    assert t.in_list(ctx, "fi", "dk,fi,no", ",") == 1
    assert t.in_list(ctx, "f", "dk,fi,no", ",") == -1
    assert t.in_list(ctx, "fi", "dk,fi", ",,") == -1
    assert t.in_list_prefix(ctx, "final", "dk,fi,no", ",") == 1
    assert t.cmp_str(ctx, "a", "a") == 1 and t.cmp_str(ctx, "a", "A") == -1
    assert t.cmp_istr(ctx, "a", "A") == 1
    assert t.starts_with(ctx, "+358123", "+358") == 1
    assert t.ends_with(ctx, "12348800", "8800") == 1 and t.ends_with(ctx, "1", "2") == -2
    assert t.str_find(ctx, "abcdef", "cd") == 3 and t.str_find(ctx, "abc", "X") == -1
    assert t.str_ifind(ctx, "abcdef", "CD") == 3
    assert t.regex_substring(ctx, "___ abc123def ___", "([a-z]*)([0-9]+)", 1, 3, "$var(r)") == 1
    assert get_pv(ctx, "$var(r)") == "abc"
    assert t.regex_substring(ctx, "abc", "([0-9]+)", 1, 2, "$var(r)") == -1
    assert t.regex_substring(ctx, "abc", "(a)", 3, 2, "$var(r)") == -1


# ---- textopsx -------------------------------------------------------------------------------


def test_textopsx_buffer_status_body() -> None:
    ctx, _ = make_ctx()
    assert tx.msg_apply_changes(ctx) == 1
    new = INVITE.decode().replace("X-Multi: one", "X-New: yes")
    assert tx.msg_set_buffer(ctx, new) == 1
    assert ctx.msg.get("X-New") == "yes"
    assert tx.msg_set_buffer(ctx, REPLY.decode()) == -1  # a request stays a request
    assert tx.msg_set_buffer(ctx, "garbage") == -1
    assert tx.remove_body(ctx) == 1 and ctx.msg.body == b""
    rctx, _ = make_ctx(REPLY)
    assert tx.change_reply_status(rctx, 183, "Progress") == 1
    assert rctx.msg.to_bytes().startswith(b"SIP/2.0 183 Progress\r\n")
    assert tx.change_reply_status(rctx, 200, "OK") == -1  # class of 1xx kept
    assert tx.change_reply_status_code(rctx, 181) == 1 and rctx.msg.status == 181
    assert tx.change_reply_status(ctx, 404, "x") == -1  # not a reply


def test_textopsx_keep_and_fnmatch() -> None:
    ctx, _ = make_ctx()
    assert tx.keep_hf_re(ctx, "^User-") == 1
    names = [h.key for h in ctx.msg.headers]
    assert "user-agent" in names and "x-multi" not in names and "via" in names
    assert tx.keep_hf(ctx) == 1
    assert "user-agent" not in [h.key for h in ctx.msg.headers]
    assert tx.fnmatch(ctx, "123456", "123*") == 1
    assert tx.fnmatch(ctx, "ABC", "abc") == -1
    assert tx.fnmatch_ex(ctx, "ABC", "a?c", "i") == 1


def test_textopsx_hf_values() -> None:
    ctx, _ = make_ctx(with_body(SDP))
    assert tx.hf_value_exists(ctx, "Supported", "100rel") == 1
    assert tx.include_hf_value(ctx, "Supported", "timer") == 1
    assert ctx.msg.get("Supported") == "path, 100rel, timer"
    assert tx.exclude_hf_value(ctx, "Supported", "100rel") == 1
    assert ctx.msg.get("Supported") == "path, timer"
    assert tx.append_hf_value(ctx, "Supported[1]", "gruu") == 1
    assert ctx.msg.get("Supported") == "path, gruu, timer"
    assert tx.insert_hf_value(ctx, "Supported[-1]", "norefersub") == 1
    assert ctx.msg.get("Supported") == "path, gruu, norefersub, timer"
    assert tx.remove_hf_value(ctx, "Supported[2]") == 1
    assert ctx.msg.get("Supported") == "path, norefersub, timer"
    assert tx.assign_hf_value(ctx, "Supported[-1]", "outbound") == 1
    assert ctx.msg.get("Supported") == "path, norefersub, outbound"
    assert tx.append_hf_value(ctx, "X-Foo", "a;b=1") == 1
    assert tx.assign_hf_value(ctx, "X-Foo.b", "2") == 1
    assert ctx.msg.get("X-Foo") == "a;b=2"
    assert tx.assign_hf_value(ctx, "X-Foo.lr", "") == 1
    assert ctx.msg.get("X-Foo") == "a;b=2;lr"
    assert tx.remove_hf_value(ctx, "X-Foo.b") == 1
    assert ctx.msg.get("X-Foo") == "a;lr"
    assert tx.remove_hf_value(ctx, "X-Foo[*]") == 1
    assert not ctx.msg.has("X-Foo")
    assert tx.remove_hf_value(ctx, "X-Foo") == -1
    assert tx.assign_hf_value(ctx, "bad name[", "x") == -1


def test_textopsx_header_spec_parsing_is_linear() -> None:
    """A long NAME then blanks (no valid spec) is refused at once, not in quadratic time."""
    ctx, _ = make_ctx()
    start = time.monotonic()
    assert tx.assign_hf_value(ctx, "a" * 32000 + " " * 32000 + "#", "x") == -1
    assert time.monotonic() - start < 0.5


def test_textopsx_hf_value2() -> None:
    ctx, _ = make_ctx()
    assert tx.assign_hf_value2(ctx, "Proxy-Authorization.realm", '"other"') == 1
    value = str(ctx.msg.get("Proxy-Authorization"))
    assert value.startswith('Digest username="alice", realm="other"')
    assert tx.remove_hf_value2(ctx, "Proxy-Authorization.nonce", "") == 1
    assert "nonce" not in str(ctx.msg.get("Proxy-Authorization"))
    assert tx.remove_hf_value2(ctx, "Proxy-Authorization", "") == 1
    assert not ctx.msg.has("Proxy-Authorization")


def test_textopsx_hf_iterator() -> None:
    ctx, _ = make_ctx()
    assert tx.hf_iterator_start(ctx, "i") == 1
    seen = []
    while tx.hf_iterator_next(ctx, "i") > 0:
        name = tx.hf_iterator_hname(ctx, "i")
        seen.append(name)
        if name == "X-Multi" and tx.hf_iterator_hbody(ctx, "i") == "two":
            assert tx.hf_iterator_rm(ctx, "i") == 1
        if name == "User-Agent":
            assert tx.hf_iterator_append(ctx, "i", "X-After: 1\r\n") == 1
            assert tx.hf_iterator_insert(ctx, "i", "X-Before: 1\r\n") == 1
    assert seen.count("X-Multi") == 3 and "X-After" in seen
    assert ctx.msg.get_all("X-Multi") == ["one", "three"]
    names = [h.name for h in ctx.msg.headers]
    ua = names.index("User-Agent")
    assert names[ua - 1] == "X-Before" and names[ua + 1] == "X-After"
    assert tx.hf_iterator_hname(ctx, "i") is None
    assert tx.hf_iterator_end(ctx, "i") == 1
    assert tx.hf_iterator_next(ctx, "i") == -1  # ended
    for n in "abcd":
        assert tx.hf_iterator_start(ctx, n) == 1
    assert tx.hf_iterator_start(ctx, "e") == -1  # max 4
    assert tx.hf_iterator_next(ctx, "a") == 1 and tx.hf_iterator_next(ctx, "a") == 1
    assert tx.hf_iterator_prev(ctx, "a") == 1
    assert tx.hf_iterator_hname(ctx, "a") == "Via"


def test_textopsx_bl_iterator() -> None:
    ctx, _ = make_ctx(with_body(SDP))
    assert tx.bl_iterator_start(ctx, "b") == 1
    lines = []
    while tx.bl_iterator_next(ctx, "b") > 0:
        line = str(tx.bl_iterator_value(ctx, "b"))
        lines.append(line)
        if line.startswith("a=sendonly"):
            assert tx.bl_iterator_rm(ctx, "b") == 1
        if line.startswith("s="):
            assert tx.bl_iterator_append(ctx, "b", "i=info\r\n") == 1
            assert tx.bl_iterator_insert(ctx, "b", "x=before\r\n") == 1
    assert lines[0] == "v=0\r\n" and "i=info\r\n" in lines
    body = ctx.msg.body.decode()
    assert "a=sendonly" not in body and "x=before\r\ns=-\r\ni=info\r\n" in body
    assert tx.bl_iterator_end(ctx, "b") == 1
    assert tx.bl_iterator_value(ctx, "b") is None
