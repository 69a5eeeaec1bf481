"""auth + auth_db: digest challenges, nonces, end-to-end checks against SQLite (and a Lua route)."""

from __future__ import annotations

import io
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pykemi.runtime.config import parse_config_text
from pykemi.runtime.config.modparams import spec_defaults
from pykemi.runtime.core.context import MsgContext, ProcessState
from pykemi.runtime.core.log import LOG
from pykemi.runtime.core.pv import get_pv
from pykemi.runtime.db import admin
from pykemi.runtime.modules import auth, auth_db, sl
from pykemi.runtime.router import Router
from pykemi.runtime.sip.message import SipMessage, parse_message

from . import harness
from .kamailio_ref import api_list
from .modhelpers import crlf, make_ctx

REALM = "example.com"


def md5(text: str) -> str:
    return admin.md5_hex(text)


def request(method: str = "INVITE", extra: str = "", user: str = "alice") -> bytes:
    ruri = "sip:example.com" if method == "REGISTER" else "sip:bob@example.com"
    to = f"sip:{user}@example.com" if method == "REGISTER" else "sip:bob@example.com"
    return crlf(f"""{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK{method.lower()}1;rport
From: <sip:{user}@example.com>;tag=f1
To: <{to}>
Call-ID: c-{method}@10.0.0.1
CSeq: 1 {method}
Contact: <sip:{user}@10.0.0.1:5062>
Max-Forwards: 70
{extra}Content-Length: 0

""")


def client_credentials(
    challenge: str,
    username: str,
    password: str,
    method: str,
    uri: str,
    hdr: str,
    *,
    ha1: str | None = None,
    cnonce: str = "0a4f113b",
    nc: str = "00000001",
) -> str:
    """What a UA answers to a challenge header value (RFC 2617 3.2.2)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce, qop = params["realm"], params["nonce"], params.get("qop", "")
    h1 = ha1 or md5(f"{username}:{realm}:{password}")
    h2 = md5(f"{method}:{uri}")
    if qop:
        resp = md5(f"{h1}:{nonce}:{nc}:{cnonce}:{qop}:{h2}")
        tail = f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
    else:
        resp = md5(f"{h1}:{nonce}:{h2}")
        tail = ""
    return (
        f'{hdr}: Digest username="{username}", realm="{realm}", nonce="{nonce}", '
        f'uri="{uri}", response="{resp}", algorithm=MD5{tail}\n'
    )


def challenge_of(sent: list[tuple[bytes, tuple[str, int]]]) -> tuple[SipMessage, str]:
    assert len(sent) == 1
    rpl = parse_message(sent[0][0])
    value = rpl.get("WWW-Authenticate") or rpl.get("Proxy-Authenticate")
    assert value is not None
    return rpl, value


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path}/auth.db"
    admin.init_db(url, ["subscriber"])
    admin.add_user(url, "alice", REALM, "secret", plaintext=True)  # for calculate_ha1=1
    return url


def proc_with(db_url: str, **auth_db_params: object) -> ProcessState:
    proc = ProcessState(listen=[("udp", "127.0.0.1", 5060)])
    params = dict(
        spec_defaults("auth_db"), db_url=db_url, calculate_ha1=1, password_column="password"
    )
    params.update(auth_db_params)
    proc.extra["modparams.auth_db"] = params
    proc.extra["modparams.auth"] = dict(spec_defaults("auth"), secret="s3cr3t")
    return proc


def ctx_for(
    raw: bytes, proc: ProcessState
) -> tuple[MsgContext, list[tuple[bytes, tuple[str, int]]]]:
    ctx, sent = make_ctx(raw, proc=proc)
    return ctx, sent.items


def authorize(
    proc: ProcessState, method: str, password: str, user: str = "alice", **kw: str
) -> MsgContext:
    """Challenge, then a request answering it like a UA."""
    ctx, sent = ctx_for(request(method, user=user), proc)
    assert auth.auth_challenge(ctx, REALM, 1) == 1
    _rpl, chal = challenge_of(sent)
    hdr = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
    uri = "sip:example.com" if method == "REGISTER" else "sip:bob@example.com"
    creds = client_credentials(chal, kw.pop("username", user), password, method, uri, hdr, **kw)
    ctx2, _ = ctx_for(request(method, creds, user=user), proc)
    return ctx2


# ---- digest primitives ------------------------------------------------------------------------


def test_rfc2617_example_response() -> None:
    h = SipMessage.request("GET", "/dir/index.html").headers  # any Header object will do
    cred = auth.Credentials(
        header=h[0] if h else None,  # type: ignore[arg-type]
        username="Mufasa",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri="/dir/index.html",
        response="6629fae49393a05397450978507c4ef1",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    ha1 = auth.calc_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    assert auth.calc_response("MD5", ha1, cred, "GET") == "6629fae49393a05397450978507c4ef1"


def test_parse_digest() -> None:
    got = auth.parse_digest('Digest username="a\\"b", realm="r", nonce=n1, qop=auth, nc=00000001')
    assert got == {"username": 'a"b', "realm": "r", "nonce": "n1", "qop": "auth", "nc": "00000001"}
    assert auth.parse_digest("Basic dXNlcjpwdw==") is None
    assert auth.parse_digest('Digest username="x", ,,') is None


def test_nonce_valid_stale_forged() -> None:
    proc = ProcessState()
    proc.extra["modparams.auth"] = dict(spec_defaults("auth"), secret="k", nonce_expire=30)
    auth.nonce_tables(proc).up_since = 0  # nonces made "before the start" are stale
    n = auth.new_nonce(proc, now=1000)
    assert len(n) == 32
    assert auth.check_nonce(proc, n, now=1010) == auth.NONCE_OK
    assert auth.check_nonce(proc, n, now=1031) == auth.NONCE_STALE
    assert auth.check_nonce(proc, n, now=990) == auth.NONCE_STALE  # from the future
    auth.nonce_tables(proc).up_since = 1005
    assert auth.check_nonce(proc, n, now=1010) == auth.NONCE_STALE  # made before a restart
    forged = n[:-4] + ("AAAA" if n[-4:] != "AAAA" else "BBBB")
    assert auth.check_nonce(proc, forged, now=1010) == auth.NONCE_INVALID
    assert auth.check_nonce(proc, "not base64!", now=1010) == auth.NONCE_INVALID
    other = ProcessState()
    other.extra["modparams.auth"] = dict(spec_defaults("auth"), secret="other")
    assert auth.check_nonce(other, n, now=1010) == auth.NONCE_INVALID


def test_nonce_tables_slots_are_reused_and_old_nonces_refused() -> None:
    from pykemi.runtime.modules.auth_nonce import Check, NonceTables

    t = NonceTables(pools=1, nc_size=8, otn_size=8)  # 8 nonces tracked
    ids = [t.issue(rank=3) for _ in range(9)]  # the 9th reuses the 1st one's slots
    (first, flags), (last, _) = ids[0], ids[-1]
    assert t.check_nc(first, flags & 0x3F, 1, update=True) == Check.GONE
    assert t.check_otn(first, 0, update=True) == Check.GONE
    assert t.check_nc(last, 0, 1, update=True) == Check.OK
    assert t.check_nc(last, 0, 1, update=True) == Check.REPLAY
    assert t.check_nc(last, 0, 256, update=True) == Check.GONE  # nc above 255: re-challenge
    assert t.check_otn(last, 0, update=False) == Check.OK
    assert t.check_otn(last, 0, update=True) == Check.OK
    assert t.check_otn(last, 0, update=True) == Check.REPLAY
    assert t.check_nc(last, 5, 2, update=False) == Check.GONE  # a pool we do not have
    with pytest.raises(ValueError, match="too big"):
        NonceTables(pools=1, nc_size=1 << 24, otn_size=0)


# ---- challenges ---------------------------------------------------------------------------------


def test_challenge_register_401_and_invite_407(db_url: str) -> None:
    proc = proc_with(db_url)
    ctx, sent = ctx_for(request("REGISTER"), proc)
    assert auth.auth_challenge(ctx, REALM, 0) == 1
    rpl, value = challenge_of(sent)
    assert (rpl.status, rpl.reason) == (401, "Unauthorized")
    assert re.fullmatch(
        r'Digest realm="example\.com", nonce="[A-Za-z0-9+/=]{32}", algorithm=MD5', value
    )
    # the challenge header is not left for later replies
    assert sl.send_reply(ctx, 500, "Later") == 1
    assert parse_message(sent[-1][0]).get("WWW-Authenticate") is None
    ctx, sent = ctx_for(request("INVITE"), proc)
    assert auth.auth_challenge(ctx, REALM, 1 | 16) == 1
    rpl, value = challenge_of(sent)
    assert (rpl.status, rpl.reason) == (407, "Proxy Authentication Required")
    assert rpl.has("Proxy-Authenticate")
    assert value.endswith('", qop="auth", stale=true, algorithm=MD5')
    ctx, sent = ctx_for(request("INVITE"), proc)
    assert auth.auth_challenge(ctx, REALM, 2) == 1
    assert 'qop="auth-int"' in challenge_of(sent)[1]


def test_realm_prefix_and_header_names(db_url: str) -> None:
    proc = proc_with(db_url)
    proc.extra["modparams.auth"].update(realm_prefix="sip.", www_challenge_header="X-Chal")
    ctx, sent = ctx_for(request("REGISTER"), proc)
    auth.auth_challenge(ctx, "sip.example.com", 0)
    rpl = parse_message(sent[0][0])
    assert (rpl.get("X-Chal") or "").startswith('Digest realm="example.com"')


# ---- auth_db end to end ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_auth_check_success_then_consume(db_url: str, method: str) -> None:
    proc = proc_with(db_url)
    ctx = authorize(proc, method, "secret")
    hdr = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
    assert auth.has_credentials(ctx, REALM) == 1 and auth.has_credentials(ctx, "other") == -1
    assert auth_db.auth_check(ctx, REALM, "subscriber", 1) == auth.AUTH_OK
    assert auth.consume_credentials(ctx) == 1
    assert not ctx.msg.has(hdr) and auth.consume_credentials(ctx) == -1


def test_auth_check_failures(db_url: str) -> None:
    proc = proc_with(db_url)
    assert auth_db.auth_check(authorize(proc, "INVITE", "wrong"), REALM, "subscriber", 1) == -2
    assert auth.consume_credentials(authorize(proc, "INVITE", "wrong")) == -1
    ctx = authorize(proc, "INVITE", "secret", user="mallory")
    assert auth_db.auth_check(ctx, REALM, "subscriber", 0) == auth.AUTH_USER_UNKNOWN
    ctx, _ = ctx_for(request("INVITE"), proc)
    assert auth_db.auth_check(ctx, REALM, "subscriber", 1) == auth.AUTH_NO_CREDENTIALS
    # credentials for another realm are not ours
    assert (
        auth_db.auth_check(authorize(proc, "INVITE", "secret"), "other.org", "subscriber", 0) == -5
    )
    # alice's credentials on a request From bob: fine without checks, -8 with flag 1
    ctx, sent = ctx_for(request("INVITE", user="bob"), proc)
    auth.auth_challenge(ctx, REALM, 0)
    creds = client_credentials(challenge_of(sent)[1], "alice", "secret", "INVITE",
                               "sip:bob@example.com", "Proxy-Authorization")  # fmt: skip
    ctx = ctx_for(request("INVITE", creds, user="bob"), proc)[0]
    assert auth_db.auth_check(ctx, REALM, "subscriber", 0) == auth.AUTH_OK
    ctx = ctx_for(request("INVITE", creds, user="bob"), proc)[0]
    assert auth_db.auth_check(ctx, REALM, "subscriber", 1) == auth.AUTH_USER_MISMATCH
    ctx = ctx_for(request("INVITE", creds, user="bob"), proc)[0]
    assert auth_db.auth_check(ctx, REALM, "subscriber", 1 | 2) == auth.AUTH_OK  # skip INVITE
    # ACK and CANCEL are always authenticated
    assert auth_db.auth_check(ctx_for(request("ACK"), proc)[0], REALM, "subscriber", 1) == 1
    assert auth_db.auth_check(ctx, "", "subscriber", 1) == -1
    assert auth_db.auth_check(ctx, REALM, "", 1) == -1


def test_stale_and_forged_nonces(db_url: str) -> None:
    proc = proc_with(db_url)
    old = auth.new_nonce(proc, now=1_000_000)  # long expired
    chal = f'Digest realm="{REALM}", nonce="{old}"'
    creds = client_credentials(chal, "alice", "secret", "INVITE", "sip:bob@example.com",
                               "Proxy-Authorization")  # fmt: skip
    ctx = ctx_for(request("INVITE", creds), proc)[0]
    assert auth_db.auth_check(ctx, REALM, "subscriber", 1) == auth.AUTH_STALE_NONCE
    forged = 'Digest realm="example.com", nonce="' + "A" * 32 + '"'
    creds = client_credentials(forged, "alice", "secret", "INVITE", "sip:bob@example.com",
                               "Proxy-Authorization")  # fmt: skip
    assert (
        auth_db.auth_check(ctx_for(request("INVITE", creds), proc)[0], REALM, "subscriber", 1) == -1
    )
    # malformed credentials (no response) are an error, not a wrong password
    bad = 'Proxy-Authorization: Digest username="alice", realm="example.com", nonce="x", uri="u"\n'
    assert (
        auth_db.auth_check(ctx_for(request("INVITE", bad), proc)[0], REALM, "subscriber", 1) == -1
    )


def test_ha1_columns_and_use_domain(db_url: str) -> None:
    # calculate_ha1=0: HA1 from "ha1", or "ha1b" when the username is user@domain
    proc = proc_with(db_url, calculate_ha1=0, password_column="ha1", use_domain=1)
    assert auth_db.auth_check(authorize(proc, "REGISTER", "secret"), REALM, "subscriber", 1) == 1
    ctx = authorize(proc, "REGISTER", "secret", username="alice@example.com")
    assert auth_db.auth_check(ctx, REALM, "subscriber", 1) == 1
    assert auth_db.auth_check(authorize(proc, "REGISTER", "bad"), REALM, "subscriber", 1) == -2
    # use_domain: the realm (no domain in the username) selects the row
    admin.add_user(db_url, "alice", "other.org", "otherpw")
    ctx, sent = ctx_for(request("REGISTER"), proc)
    auth.auth_challenge(ctx, "other.org", 0)
    creds = client_credentials(challenge_of(sent)[1], "alice", "otherpw", "REGISTER",
                               "sip:example.com", "Authorization")  # fmt: skip
    assert auth_db.auth_check(ctx_for(request("REGISTER", creds), proc)[0], "other.org",
                              "subscriber", 0) == 1  # fmt: skip


def test_load_credentials_and_is_subscriber(db_url: str) -> None:
    proc = proc_with(db_url, load_credentials="$avp(pw)=password;ha1")
    ctx = authorize(proc, "INVITE", "secret")
    assert auth_db.auth_check(ctx, REALM, "subscriber", 1) == 1
    assert get_pv(ctx, "$avp(pw)") == "secret"
    assert get_pv(ctx, "$avp(ha1)") == md5(f"alice:{REALM}:secret")
    ctx, _ = ctx_for(request("INVITE"), proc)
    assert auth_db.is_subscriber(ctx, "sip:alice@example.com", "subscriber", 1) == 1
    assert auth_db.is_subscriber(ctx, "sip:alice@other.org", "subscriber", 1) == -2
    assert auth_db.is_subscriber(ctx, "sip:alice@other.org", "subscriber", 2) == 1
    assert auth_db.is_subscriber(ctx, "sip:nobody@example.com", "subscriber", 0) == -2
    assert auth_db.is_subscriber(ctx, "not a uri", "subscriber", 0) == -1
    assert auth_db.is_subscriber(ctx, "", "subscriber", 0) == -1


def test_database_errors_give_minus_one(tmp_path: Path) -> None:
    log = io.StringIO()
    old = LOG.stream
    LOG.stream = log
    try:
        proc = proc_with(f"sqlite://{tmp_path}/empty.db")  # no subscriber table
        ctx = authorize(proc, "INVITE", "secret")
        assert auth_db.auth_check(ctx, REALM, "subscriber", 1) == -1
        assert auth_db.is_subscriber(ctx, "sip:alice@example.com", "subscriber", 0) == -1
        proc = proc_with("mysql://u:p@127.0.0.1:1/kamailio")  # nothing listens on port 1
        assert auth_db.auth_check(authorize(proc, "INVITE", "secret"), REALM, "subscriber", 1) == -1
    finally:
        LOG.stream = old
    assert "failed to query database" in log.getvalue()


# ---- pv_auth_check ------------------------------------------------------------------------------


def test_pv_auth_check(db_url: str) -> None:
    proc = proc_with(db_url)
    assert auth.pv_auth_check(authorize(proc, "REGISTER", "pw1"), REALM, "pw1", 0, 1) == 1
    assert auth.pv_auth_check(authorize(proc, "REGISTER", "pw1"), REALM, "nope", 0, 1) == -2
    ha1 = md5(f"alice:{REALM}:pw1")
    assert auth.pv_auth_check(authorize(proc, "INVITE", "pw1"), REALM, ha1, 1, 1) == 1
    ctx, _ = ctx_for(request("INVITE"), proc)
    assert auth.pv_auth_check(ctx, REALM, "pw1", 4, 0) == auth.AUTH_NO_CREDENTIALS
    hf = get_pv(ctx, "$avp(digest_challenge)")
    assert isinstance(hf, str) and hf.startswith('Proxy-Authenticate: Digest realm="example.com"')
    assert 'qop="auth"' in hf
    assert auth.pv_auth_check(ctx, "", "pw1", 0, 0) == -1
    assert auth.pv_auth_check(ctx_for(request("CANCEL"), proc)[0], REALM, "x", 0, 0) == 1


# ---- through a Router and a Lua script (modparams, hooks, kemi generate bindings) --------------

LUA = """
function ksr_request_route()
    if KSR.auth_db.auth_check(KSR.kx.gete_fhost(), "subscriber", 1) < 0 then
        KSR.auth.auth_challenge(KSR.kx.gete_fhost(), 0)
        KSR.x.exit()
    end
    KSR.auth.consume_credentials()
    KSR.sl.sl_send_reply(200, "OK")
end
"""


@pytest.fixture
def lua_router(tmp_path: Path, db_url: str) -> Iterator[Router]:
    (tmp_path / "auth.lua").write_text(LUA, encoding="utf-8")
    mods = ("sl", "kex", "kemix", "auth", "auth_db", "app_lua")
    cfg = "\n".join(
        [
            "#!KAMAILIO",
            "listen=udp:127.0.0.1:5060",
            *[f'loadmodule "{m}.so"' for m in mods],
            f'modparam("auth_db", "db_url", "{db_url}")',
            'modparam("auth_db", "calculate_ha1", yes)',
            'modparam("auth_db", "password_column", "password")',
            'modparam("auth_db", "load_credentials", "")',
            'modparam("auth_db", "use_domain", 0)',
            'modparam("auth", "nonce_expire", 60)',
            'modparam("app_lua", "load", "auth.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    yield Router(parse_config_text(cfg, str(tmp_path / "kamailio.cfg")))


def test_lua_register_challenge_then_ok(lua_router: Router) -> None:
    sent: list[tuple[bytes, tuple[str, int]]] = []

    def feed(data: bytes) -> SipMessage:
        sent.clear()
        lua_router.handle(data, ("10.0.0.1", 5062), ("127.0.0.1", 5060), "udp",
                          lambda d, a: sent.append((d, a)))  # fmt: skip
        assert len(sent) == 1
        return parse_message(sent[0][0])

    rpl = feed(request("REGISTER"))
    assert rpl.status == 401
    chal = rpl.get("WWW-Authenticate") or ""
    assert lua_router.proc.extra[auth.SECRET_KEY]  # secret chosen before any fork
    creds = client_credentials(chal, "alice", "secret", "REGISTER", "sip:example.com",
                               "Authorization")  # fmt: skip
    assert feed(request("REGISTER", creds)).status == 200
    bad = client_credentials(chal, "alice", "nope", "REGISTER", "sip:example.com", "Authorization")
    assert feed(request("REGISTER", bad)).status == 401


def test_bad_db_url_stops_startup(tmp_path: Path) -> None:
    from pykemi.runtime.dispatch import StartupError

    (tmp_path / "auth.lua").write_text(LUA, encoding="utf-8")
    cfg = "\n".join(
        [
            "#!KAMAILIO",
            *[f'loadmodule "{m}.so"' for m in ("sl", "kex", "auth", "auth_db", "app_lua")],
            'modparam("auth_db", "db_url", "text:///etc/kamailio/dbtext")',
            'modparam("app_lua", "load", "auth.lua")',
            'cfgengine "lua"',
            "",
        ]
    )
    with pytest.raises(StartupError, match="not supported"):
        Router(parse_config_text(cfg, str(tmp_path / "kamailio.cfg")))


# ---- specs --------------------------------------------------------------------------------------

SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"


@pytest.mark.parametrize("module", ["auth", "auth_db", "permissions", "acc"])
def test_spec_matches_api_list(module: str) -> None:
    """Kamailio's exports (implementations and modparams: tests/test_spec_contract.py)."""
    data = yaml.safe_load((SPEC_DIR / f"{module}.yaml").read_text())
    got = [(e["name"], e["ret"], [p["type"] for p in e["params"]]) for e in data["exports"]]
    want = [(r["name"], r["ret"], r["params"]) for r in api_list() if r["module"] == module]
    assert got == want


# ---- replay protection through a running router (real UDP, 2 workers sharing the state) --------

REPLAY_LUA = """
function ksr_request_route()
    if KSR.is_ACK() then return end
    KSR.hdr.append_to_reply("X-Pid: " .. KSR.pv.get("$pp") .. "\\r\\n")
    local realm = "example.com"
    local rc = KSR.auth_db.auth_check(realm, "subscriber", 1)
    if rc < 0 then
        local flags = 1
        if rc == -4 or rc == -6 then flags = 17 end
        KSR.hdr.append_to_reply("X-Auth-Rc: " .. rc .. "\\r\\n")
        KSR.auth.auth_challenge(realm, flags)
        return
    end
    KSR.sl.send_reply(200, "OK")
end
"""

REPLAY_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
kemi.dispatch=yes
listen=LISTEN
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kex.so"
loadmodule "kemix.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "app_lua.so"
modparam("auth_db", "db_url", "{db_url}")
{modparams}
modparam("app_lua", "load", "replay.lua")
cfgengine "lua"
"""


@contextmanager
def replay_router(tmp: Path, db_url: str, **auth_params: int) -> Iterator[UdpUa]:
    """``kemi run`` (2 workers) authenticating with auth_db; a UA socket talking to it."""
    (tmp / "replay.lua").write_text(REPLAY_LUA, encoding="utf-8")
    mp = "\n".join(f'modparam("auth", "{k}", {v})' for k, v in auth_params.items())
    cfg = tmp / "replay.cfg"
    cfg.write_text(REPLAY_CFG.format(db_url=db_url, modparams=mp), encoding="utf-8")
    with harness.router(cfg, tmp) as r, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        yield UdpUa(s, r.port)


@dataclass
class UdpUa:
    sock: socket.socket
    port: int

    def send(
        self, method: str, call_id: str, creds: bytes = b"", body: bytes = b"", tag: str = "f1"
    ) -> SipMessage:
        """One request (from alice), its reply."""
        ruri = "sip:example.com" if method == "REGISTER" else "sip:bob@example.com"
        to = "sip:alice@example.com" if method == "REGISTER" else "sip:bob@example.com"
        local = self.sock.getsockname()[1]
        head = crlf(f"""{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{secrets.token_hex(6)};rport
From: <sip:alice@example.com>;tag={tag}
To: <{to}>
Call-ID: {call_id}
CSeq: 1 {method}
Contact: <sip:alice@127.0.0.1:{local}>
Max-Forwards: 70
Content-Length: {len(body)}

""")
        cut = head.index(b"Content-Length")
        self.sock.sendto(head[:cut] + creds + head[cut:] + body, ("127.0.0.1", self.port))
        return parse_message(self.sock.recvfrom(65535)[0])

    def login(self, method: str, call_id: str, nc: str = "00000001") -> tuple[str, bytes]:
        """Challenge, then credentials answering it: (challenge value, header line bytes)."""
        chal = self.send(method, call_id)
        assert chal.status in (401, 407), chal.first_line
        value = chal.get("WWW-Authenticate") or chal.get("Proxy-Authenticate") or ""
        return value, answer(value, method, nc)


def answer(challenge: str, method: str, nc: str = "00000001") -> bytes:
    hdr = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
    uri = "sip:example.com" if method == "REGISTER" else "sip:bob@example.com"
    return crlf(client_credentials(challenge, "alice", "secret", method, uri, hdr, nc=nc))[:-2]


def refused_stale(rpl: SipMessage, rc: str) -> bool:
    chal = rpl.get("WWW-Authenticate") or rpl.get("Proxy-Authenticate") or ""
    return rpl.status in (401, 407) and rpl.get("X-Auth-Rc") == rc and "stale=true" in chal


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_router_captured_credentials_refused_on_other_calls(
    tmp_path: Path, db_url: str, method: str
) -> None:
    """The review's replay: one captured header sent again with other Call-IDs and bodies."""
    with replay_router(tmp_path, db_url, auth_checks_register=3, auth_checks_no_dlg=2) as ua:
        _chal, creds = ua.login(method, "call-1")
        assert ua.send(method, "call-1", creds).status == 200  # the genuine request
        for i in range(2, 6):
            body = f"v=0\r\ns=replay {i}\r\n".encode()
            rpl = ua.send(method, f"call-{i}", creds, body)
            assert refused_stale(rpl, "-4"), (i, rpl.first_line, rpl.get("X-Auth-Rc"))
        # a fresh challenge on the new call works
        _chal, creds = ua.login(method, "call-9")
        assert ua.send(method, "call-9", creds).status == 200


def test_router_nonce_count_refuses_repeated_nc(tmp_path: Path, db_url: str) -> None:
    """One nonce used on many Call-IDs: dispatch spreads them over both workers, whose
    nc state must be shared."""
    with replay_router(tmp_path, db_url, nonce_count=1) as ua:
        chal, _ = ua.login("REGISTER", "nc-call")
        pids = set()
        for nc in (1, 2, 3, 7, 8, 9, 10, 11):
            creds = answer(chal, "REGISTER", f"{nc:08x}")
            rpl = ua.send("REGISTER", f"nc-call-{nc}", creds)
            assert rpl.status == 200, nc
            pids.add(rpl.get("X-Pid"))
            # the same nc again, on another Call-ID (so maybe another worker): refused
            rpl = ua.send("REGISTER", f"nc-again-{nc}", creds)
            assert refused_stale(rpl, "-4"), nc
            pids.add(rpl.get("X-Pid"))
        lower = answer(chal, "REGISTER", f"{5:08x}")
        assert refused_stale(ua.send("REGISTER", "nc-call-5", lower), "-4")
        assert len(pids) == 2  # both workers took part


def test_router_one_time_nonce_accepted_once(tmp_path: Path, db_url: str) -> None:
    with replay_router(tmp_path, db_url, one_time_nonce=1) as ua:
        for call in ("otn-1", "otn-2", "otn-3"):
            _chal, creds = ua.login("INVITE", call)
            assert ua.send("INVITE", call, creds).status == 200
            for _ in range(3):
                assert refused_stale(ua.send("INVITE", call, creds), "-6")


@pytest.mark.parametrize(
    ("field", "rc"),
    [("username", "-3"), ("response", "-2"), ("realm", "-5"), ("nonce", "-1"), ("nc", "-1")],
)
def test_router_non_utf8_credentials_give_auth_codes(
    tmp_path: Path, db_url: str, field: str, rc: str
) -> None:
    """L4: bytes that are not UTF-8 in a credentials field: an auth error code, a reply."""
    with replay_router(tmp_path, db_url, nonce_count=1, auth_checks_register=2) as ua:
        _chal, creds = ua.login("REGISTER", "bytes-call")
        value = re.search(rf'\b{field}="?([^",\r]*)', creds.decode()).group(1)  # type: ignore[union-attr]
        bad = b"\xff\xfe" + b"\xc3" * (len(value) - 2)  # same length, not UTF-8
        forged = creds.replace(value.encode(), bad, 1)
        rpl = ua.send("REGISTER", "bytes-call", forged)
        assert rpl.status == 401 and rpl.get("X-Auth-Rc") == rc, (rpl.first_line, rpl.headers)
        assert ua.send("REGISTER", "bytes-call", creds).status == 200  # the worker is fine
