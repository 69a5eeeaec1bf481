"""Property tests of the SIP layer (hypothesis)."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykemi.runtime.sip import (
    MAX_MESSAGE_SIZE,
    Header,
    SipMessage,
    SipParseError,
    gen_to_tag,
    make_reply,
    parse_message,
    parse_uri,
    reply_address,
)
from pykemi.runtime.sip.headers import COMPACT_FORMS, header_key

from .fuzz.fuzz_sip import filled_message, parse_seconds

FIXTURES = Path(__file__).parent / "fixtures" / "sip"
SEEDS = [
    p.read_text(encoding="utf-8").replace("\n", "\r\n").encode()
    for p in sorted(FIXTURES.glob("*.txt"))
]

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)


def _touch(msg: SipMessage) -> None:
    """Run every lazy helper; each may raise SipParseError and nothing else."""
    for attr in (
        "vias",
        "top_via",
        "cseq",
        "from_tag",
        "to_tag",
        "from_uri",
        "to_uri",
        "call_id",
        "contacts",
        "parsed_ruri",
    ):
        try:
            getattr(msg, attr)
        except SipParseError:
            pass
    gen_to_tag(msg) if msg.is_request else None
    reply_address(msg, ("192.0.2.1", 5060))


def _check_roundtrip(msg: SipMessage) -> None:
    again = parse_message(msg.to_bytes())
    assert again.first_line == msg.first_line
    assert [(h.name, h.value) for h in again.headers if h.key != "content-length"] == [
        (h.name, h.value) for h in msg.headers if h.key != "content-length"
    ]
    assert again.body == msg.body


# -- (1) arbitrary input raises SipParseError only, fast --------------------------------------


@settings(max_examples=400, deadline=500)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    _touch(msg)
    _check_roundtrip(msg)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(("insert", "delete", "replace", "special")))
        if op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        else:
            special = [b"\r\n", b"\n", b" ", b":", b";", b",", b'"', b"<", b">", b"[", b"\\", b"@"]
            data[pos:pos] = draw(st.sampled_from(special))
    return bytes(data)


@settings(max_examples=600, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    _touch(msg)
    _check_roundtrip(msg)


def test_pathological_inputs_are_fast() -> None:
    head = b"OPTIONS sip:a@b SIP/2.0\r\n"
    cases = [
        b"\r\n" * (MAX_MESSAGE_SIZE // 2),
        head + b"X: a\r\n" + b" b\r\n" * 9000 + b"\r\n",
        head + b"Via: " + b"SIP/2.0/UDP h," * 4000 + b"\r\n\r\n",
        head + b'Contact: "' + b'\\"' * 20000 + b"\r\n\r\n",
        head + b"Contact: " + b"<" * 30000 + b"\r\n\r\n",
        head + b"X:" + b"\xff" * 60000 + b"\r\n\r\n",
    ]
    for data in cases:
        start = time.perf_counter()
        try:
            msg = parse_message(data)
            _touch(msg)
        except SipParseError:
            pass
        assert time.perf_counter() - start < 1.0


LINEAR_RATIO_MAX = 32


@st.composite
def hostile_shapes(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(header text, filler): a header opened by a delimiter, then a repeated filler (H1)."""
    name = draw(st.sampled_from(["Via", "v", "Contact", "From", "To", "Route", "X-A"]))
    value = draw(st.sampled_from(["SIP/2.0/UDP 1.2.3.4;", "<sip:a@b>;", "sip:a@b;", "", "a "]))
    opener = draw(st.sampled_from(["<", '"', "", "<<", '<"', '"<', ">"]))
    filler = draw(st.text(alphabet=';,<>"\\ a=', min_size=1, max_size=4))
    return (name + ": " + value + opener).encode(), filler.encode()


@settings(max_examples=100, deadline=None)
@given(hostile_shapes())
def test_parse_time_grows_linearly(shape: tuple[bytes, bytes]) -> None:
    # H1 (issue 13): 16x the input costs 16x the time when linear, 256x when quadratic (as
    # before the fix). Allocator, cache and GC effects on 30k+ objects measure up to ~25x, so
    # the bound is 32x: well clear of both.
    small, large = filled_message(*shape, 4096), filled_message(*shape, 65536)

    def ratio() -> float:
        t_small = min(parse_seconds(small) for _ in range(3))
        t_large = min(parse_seconds(large) for _ in range(3))
        return t_large / max(t_small, 1e-5)

    r = ratio()
    if r > LINEAR_RATIO_MAX:
        r = ratio()  # again: one burst of load on the machine is not a finding
    assert r <= LINEAR_RATIO_MAX, f"64 KB costs {r:.0f}x a 4 KB input of the same shape {shape!r}"


# -- (2) generated valid messages round-trip ----------------------------------------------------

safe_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=30
)
raw_text = st.binary(max_size=30).map(lambda b: b.decode("utf-8", "surrogateescape"))


def _wire_form(text: str) -> str:
    # what the parser gives back for this text: adjacent escaped bytes may form UTF-8
    text = text.replace("\r", "").replace("\n", "").strip(" \t")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


values = st.one_of(safe_text, raw_text).map(_wire_form)
header_names = st.one_of(
    tokens.filter(lambda n: header_key(n) != "content-length"),
    st.sampled_from(["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Route", "Record-Route"]),
    st.sampled_from([c for c, full in COMPACT_FORMS.items() if full != "Content-Length"]),
)


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[bytes, SipMessage]:
    if draw(st.booleans()):
        ruri = draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1)
        )
        first = f"{draw(tokens)} {ruri} SIP/2.0"
    else:
        reason = draw(values)
        first = f"SIP/2.0 {draw(st.integers(100, 699))} {reason}"
    headers = draw(st.lists(st.tuples(header_names, values), max_size=15))
    body = draw(st.binary(max_size=200))
    cl_name = draw(st.sampled_from(["Content-Length", "l", "content-length"]))
    cl_pos = draw(st.integers(0, len(headers)))
    headers.insert(cl_pos, (cl_name, str(len(body))))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    lines = [first]
    for name, value in headers:
        sep = draw(st.sampled_from([": ", ":", " : ", ":\t"]))
        a, _, b = value.partition(" ")
        # fold at a single space between non-blank characters: the parser joins the
        # pieces with exactly one space again (whitespace around a fold is folded too)
        if (
            b
            and draw(st.booleans())
            and not a.endswith(("\t", " "))
            and not b.startswith(("\t", " "))
        ):
            value = a + eol + draw(st.sampled_from([" ", "\t", "   "])) + b
        lines.append(name + sep + value)
    raw = (eol.join(lines) + eol + eol).encode("utf-8", "surrogateescape") + body
    return raw, SipMessage(headers=[Header(n, v) for n, v in headers], body=body)


@settings(max_examples=400, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(valid_messages())
def test_valid_messages_roundtrip(case: tuple[bytes, SipMessage]) -> None:
    raw, expected = case
    msg = parse_message(raw)
    assert [(h.name, h.value) for h in msg.headers] == [(h.name, h.value) for h in expected.headers]
    assert msg.body == expected.body
    out = msg.to_bytes()
    again = parse_message(out)
    assert again.first_line == msg.first_line
    assert again.headers == msg.headers
    assert again.body == msg.body
    assert again.to_bytes() == out  # serialisation is a fixed point


# -- (3) URIs: parse -> str -> parse is stable ---------------------------------------------------

USER_CHARS = "abcXYZ019-_.!~*'()&=+$,;?/"
escapes = st.sampled_from(["%20", "%40", "%C3%BC", "%3A"])
users = st.lists(st.one_of(st.sampled_from(list(USER_CHARS)), escapes), min_size=1).map("".join)
hostnames = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10),
    min_size=1,
    max_size=4,
).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
param_chars = "abcdefghijklmnopqrstuvwxyzABC0123456789-_.!~*'()[]/:&+$%"
params = st.dictionaries(
    st.text(alphabet=param_chars, min_size=1, max_size=8),
    st.one_of(st.none(), st.text(alphabet=param_chars, max_size=8)),
    max_size=4,
)


@st.composite
def uri_texts(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip", "sips", "tel"]))
    p = "".join(";" + k if v is None else f";{k}={v}" for k, v in draw(params).items())
    if scheme == "tel":
        return "tel:" + draw(st.text(alphabet="0123456789-+.()*#", min_size=1)) + p
    text = scheme + ":"
    if draw(st.booleans()):
        text += draw(users)
        if draw(st.booleans()):
            text += ":" + draw(st.text(alphabet="abc123&=+$,%", max_size=8))
        text += "@"
    text += draw(st.one_of(hostnames, ipv4, ipv6))
    if draw(st.booleans()):
        text += ":" + str(draw(st.integers(1, 65535)))
    text += p
    if draw(st.booleans()):
        text += "?" + draw(st.text(alphabet="abc=&%20;?:", max_size=12))
    return text


@settings(max_examples=500, deadline=None)
@given(uri_texts())
def test_uri_roundtrip(text: str) -> None:
    uri = parse_uri(text)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), uri_texts().map(lambda t: t[: len(t) // 2] + "@:;[")))
def test_uri_arbitrary_text_stable(text: str) -> None:
    try:
        uri = parse_uri(text)
    except SipParseError:
        return
    again = parse_uri(str(uri))
    assert again == uri and str(again) == str(uri)


# -- (4) replies copy the transaction headers exactly; to-tags are deterministic ----------------

vias = st.lists(
    st.tuples(st.sampled_from(["UDP", "TCP", "TLS"]), st.one_of(hostnames, ipv4, ipv6), tokens),
    min_size=1,
    max_size=4,
).map(lambda vs: [f"SIP/2.0/{t} {h};branch=z9hG4bK{b}" for t, h, b in vs])


@st.composite
def requests(draw: st.DrawFn) -> SipMessage:
    headers = [(draw(st.sampled_from(["Via", "v"])), v) for v in draw(vias)]
    headers += [
        ("From", f"<sip:{draw(tokens)}@example.com>;tag={draw(tokens)}"),
        ("To", f'"{draw(tokens)}" <sip:{draw(tokens)}@example.org>'),
        ("Call-ID", draw(tokens) + "@" + draw(hostnames)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {draw(tokens)}"),
        ("X-Other", draw(tokens)),
    ]
    order = draw(st.permutations(range(len(headers))))
    return SipMessage.request(draw(tokens), "sip:a@example.com", [headers[i] for i in order])


@settings(max_examples=300, deadline=None)
@given(requests(), st.integers(100, 699), st.one_of(st.none(), tokens))
def test_reply_copies_and_tag_deterministic(req: SipMessage, code: int, to_tag: str | None) -> None:
    rep = make_reply(req, code, "Reason Phrase", to_tag=to_tag)
    rep = parse_message(rep.to_bytes())
    assert rep.get_all("Via") == req.get_all("Via")
    assert [h.name for h in rep.headers if h.key == "via"] == [
        h.name for h in req.headers if h.key == "via"
    ]
    for name in ("From", "Call-ID", "CSeq"):
        assert rep.get(name) == req.get(name)
    assert rep.vias == req.vias
    assert rep.from_tag == req.from_tag and rep.cseq == req.cseq
    tag = gen_to_tag(req)
    assert tag == gen_to_tag(parse_message(req.to_bytes())) == gen_to_tag(req.copy())
    if code == 100:
        assert rep.get("To") == req.get("To")
    else:
        assert rep.to_tag == (to_tag if to_tag is not None else tag)
    assert rep.get("X-Other") is None
