"""Kamailio-style cfg reader: valid configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykemi.runtime.config import (
    KNOWN_GLOBALS,
    Config,
    ConfigError,
    Listen,
    Location,
    load_config,
    parse_config_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "cfg"
SEED_MODULES = ["jsonrpcs", "kex", "tm", "tmx", "sl", "pv", "maxfwd", "textops", "xlog", "ctl"]


def parse(text: str, defines: dict[str, str] | None = None) -> Config:
    return parse_config_text(text, "t.cfg", defines)


# -- the seed examples -------------------------------------------------------


def seed_warnings(path: Path | str) -> list[str]:
    """The seed configs' warnings: the core parameters pykemi does not honour (fully)."""
    note = KNOWN_GLOBALS["log_stderror"].effect.partition(": ")[2]
    return [
        f"{path}:6: core parameter 'log_stderror' has only part of its effect in pykemi: {note}",
        f"{path}:10: core parameter 'memdbg' has no effect in pykemi",
        f"{path}:11: core parameter 'memlog' has no effect in pykemi",
        f"{path}:13: core parameter 'auto_aliases' has no effect in pykemi",
    ]


def test_seed_lua() -> None:
    path = FIXTURES / "seed-lua.cfg"
    cfg = load_config(path)
    assert cfg.path == str(path)
    assert cfg.cfgengine == "lua"
    assert [m.name for m in cfg.modules] == [*SEED_MODULES, "debugger", "app_lua"]
    assert cfg.modules[0].path == "jsonrpcs.so"
    assert [(p.module, p.name, p.value) for p in cfg.modparams] == [
        ("jsonrpcs", "pretty_format", 1),
        ("tm", "failure_reply_mode", 3),
        ("tm", "fr_timer", 30000),
        ("tm", "fr_inv_timer", 120000),
        ("debugger", "cfgtrace", 1),
        ("app_lua", "load", "/etc/kamailio/kamailio.lua"),
    ]
    assert cfg.globals["debug"] == 3
    assert cfg.globals["log_stderror"] is True
    assert cfg.globals["fork"] is True
    assert cfg.globals["children"] == 2
    assert cfg.globals["memdbg"] == 5 and cfg.globals["memlog"] == 5
    assert cfg.globals["auto_aliases"] is False
    assert cfg.globals["listen"] == ["udp:127.0.0.1:5060"]
    assert cfg.listen == [Listen("udp", "127.0.0.1", 5060, None, None, Location(str(path), 15))]
    assert cfg.routes == []
    # the core parameters pykemi does not honour (fully) are named, nothing else
    assert cfg.warnings == seed_warnings(path)
    assert cfg.modparams_for("tm")[1].loc == Location(str(path), 39)


def test_seed_python() -> None:
    cfg = load_config(str(FIXTURES / "seed-python.cfg"))
    assert cfg.cfgengine == "python"
    assert [m.name for m in cfg.modules] == [*SEED_MODULES, "mi_rpc", "debugger", "app_python"]
    assert cfg.get_int("debug", 0) == 4
    assert [(p.name, p.value) for p in cfg.modparams_for("app_python")] == [
        ("load", "/etc/kamailio/kamailio.py")
    ]
    assert len(cfg.modparams) == 5 and cfg.warnings == seed_warnings(cfg.path)


# -- globals -----------------------------------------------------------------


def test_global_values() -> None:
    cfg = parse(
        "debug=-1\nsock_mode=0660;\nmaxbuffer=0x10000\nfork=off\n"
        'kemi.onsend_route_callback="ksr_onsend"\ntcp_connection_lifetime=3605\n'
        'server_header="Server: " "pykemi"\nlog_facility=LOG_LOCAL0\nchildren=4; debug=2\n'
    )
    assert cfg.globals == {
        "debug": 2,
        "sock_mode": 0o660,
        "maxbuffer": 0x10000,
        "fork": False,
        "kemi.onsend_route_callback": "ksr_onsend",
        "tcp_connection_lifetime": 3605,
        "server_header": "Server: pykemi",
        "log_facility": "LOG_LOCAL0",
        "children": 4,
    }
    assert cfg.warnings == [  # the ones pykemi does not implement
        f"t.cfg:{line}: core parameter '{name}' has no effect in pykemi"
        for line, name in ((2, "sock_mode"), (3, "maxbuffer"), (8, "log_facility"))
    ]
    assert cfg.global_locs["debug"] == Location("t.cfg", 9)


def test_get_helpers_and_defaults() -> None:
    cfg = parse('fork=no\nlog_stderror=1\nfoo=yes\nbar="on"\nbaz=\'nope\'\nuid="kamailio"\n')
    assert cfg.get("children") == 8  # Kamailio's default
    assert cfg.get("debug") == 0  # L_WARN
    assert cfg.get("auto_aliases") is True
    assert cfg.get("kemi.reply_route_callback") == "ksr_reply_route"
    assert cfg.get("nonexistent") is None
    assert cfg.get("nonexistent", 7) == 7
    assert cfg.get_int("children", 3) == 3  # an explicit default wins
    assert cfg.get_int("fork", 5) == 0
    assert cfg.get_bool("fork", True) is False
    assert cfg.get_bool("log_stderror", False) is True
    assert cfg.get_bool("foo", False) is True  # unknown param kept as int 1
    assert cfg.get_bool("bar", False) is True
    assert cfg.get("user") == "kamailio" and cfg.get("uid") == "kamailio"
    with pytest.raises(ConfigError, match=r"^t\.cfg:5: 'baz' expects a boolean"):
        cfg.get_bool("baz", False)
    with pytest.raises(ConfigError, match=r"^t\.cfg:5: 'baz' expects an integer"):
        cfg.get_int("baz", 0)


def test_unknown_global_warns() -> None:
    cfg = parse("chidren=3\nmy.custom = 5\n")
    assert cfg.globals == {"chidren": 3, "my.custom": 5}
    assert cfg.warnings == [
        "t.cfg:1: unknown global parameter 'chidren' ignored (did you mean 'children'?)",
        "t.cfg:2: unknown global parameter 'my.custom' ignored",
    ]


def test_listen_forms() -> None:
    cfg = parse(
        "#!define PUBIP 1.2.3.4\n"
        'listen=udp:10.0.0.1:5060 advertise PUBIP:5080 name "pub"\n'
        "listen=tcp:[::1]:5070\n"
        "listen=tls:sip.example.com\n"
        "listen=127.0.0.1\n"
        "listen = sctp:10.0.0.2 advertise 1.1.1.1\n"
        'listen="ws:10.0.0.3:8080"\n'
    )
    got = [(x.proto, x.host, x.port, x.advertise, x.name, x.loc.line) for x in cfg.listen]
    assert got == [
        ("udp", "10.0.0.1", 5060, ("1.2.3.4", 5080), "pub", 2),
        ("tcp", "::1", 5070, None, None, 3),
        ("tls", "sip.example.com", 5061, None, None, 4),
        ("any", "127.0.0.1", 5060, None, None, 5),
        ("sctp", "10.0.0.2", 5060, ("1.1.1.1", 5060), None, 6),
        ("ws", "10.0.0.3", 8080, None, None, 7),
    ]
    assert cfg.globals["listen"][:2] == [
        'udp:10.0.0.1:5060 advertise 1.2.3.4:5080 name "pub"',
        "tcp:[::1]:5070",
    ]


def test_aliases() -> None:
    cfg = parse("alias=example.com\nalias=udp:sip.example.com:5070 other.org\n")
    assert cfg.aliases == [("example.com", 0), ("sip.example.com", 5070), ("other.org", 0)]
    assert cfg.globals["alias"] == ["example.com", "udp:sip.example.com:5070", "other.org"]


# -- modules -----------------------------------------------------------------


def test_loadmodule_forms() -> None:
    cfg = parse(
        'loadpath "/usr/lib/kamailio/modules/"\n'
        'loadmodule "sl.so"\n'
        'loadmodule("/usr/lib/x86_64-linux-gnu/kamailio/modules/tm.so");\n'
        'loadmodule "pv"\n'
        'modparam("tm|sl", "p", "v")\n'
        'modparam("tm", "n", -5);\n'
        'modparam("sl", "b", yes)\n'
        'modparam("tm", "s", "a" "b")\n'
        'modparam("unloaded", "x",\n    0x1f)\n'
    )
    assert cfg.get("mpath") == "/usr/lib/kamailio/modules/"
    assert [(m.name, m.path, m.loc.line) for m in cfg.modules] == [
        ("sl", "sl.so", 2),
        ("tm", "/usr/lib/x86_64-linux-gnu/kamailio/modules/tm.so", 3),
        ("pv", "pv", 4),
    ]
    assert [(p.module, p.name, p.value) for p in cfg.modparams] == [
        ("tm|sl", "p", "v"),
        ("tm", "n", -5),
        ("sl", "b", 1),
        ("tm", "s", "ab"),
        ("unloaded", "x", 31),
    ]
    assert [p.name for p in cfg.modparams_for("tm")] == ["p", "n", "s"]
    assert [p.name for p in cfg.modparams_for("sl")] == ["p", "b"]
    assert cfg.warnings == [
        "t.cfg:9: modparam for module 'unloaded', which is not loaded before it",
        "t.cfg:1: core parameter 'mpath' has no effect in pykemi",  # modules come from specs
    ]


@pytest.mark.parametrize("engine", ["lua", "python", "python3", "jsdt", "ruby", "sqlang"])
def test_cfgengine_forms(engine: str) -> None:
    assert parse(f'cfgengine "{engine}"\n').cfgengine == engine
    assert parse(f'cfgengine = "{engine}";\n').cfgengine == engine


def test_route_blocks_warn_with_cfgengine() -> None:
    cfg = parse(
        'request_route {\n  if ($rU == "}") { exit; }\n  # } in a comment\n}\n'
        "route[RELAY] { t_relay(); }\n"
        "event_route[xhttp:request] {\n}\n"
        "onreply_route[MANAGE_REPLY] {}\n"
        'cfgengine "lua"\n'
    )
    assert [loc.line for loc in cfg.routes] == [1, 5, 6, 8]
    assert cfg.warnings[0] == "t.cfg:1: native route block ignored (cfgengine is 'lua')"


# -- preprocessor ------------------------------------------------------------


def test_ifdef_nesting() -> None:
    text = (
        "#!define A\n"
        "#!ifdef A\n"
        "debug=1\n"
        "  #!ifndef B\n"
        "children=2\n"
        "    #!ifdef C\n"
        "children=99\n"
        "    #!else\n"
        "port=5070\n"
        "    #!endif\n"
        "  #!else\n"
        "children=3\n"
        "  #!endif\n"
        "#!else\n"
        "debug=9\n"
        "#!ifdef A\n"
        "children=100\n"
        "#!endif\n"
        "#!endif\n"
    )
    cfg = parse(text)
    assert cfg.globals == {"debug": 1, "children": 2, "port": 5070}
    cfg = parse(text, defines={"B": "", "C": ""})
    assert cfg.globals == {"debug": 1, "children": 3}
    cfg = parse(text.replace("#!define A\n", "#!define Z\n"))
    assert cfg.globals == {"debug": 9}  # nested ifdef inside a skipped branch stays skipped


def test_define_substitution() -> None:
    cfg = parse(
        "#!define DBG 3\n"
        '#!define DBURL "mysql://kamailio:rw@localhost/kamailio"\n'
        "#!define FLAG\n"
        "#!define LONG 1\\\n  + 2\n"
        "#!trydef DBG 4\n"
        "#!trydef NEW 7\n"
        "#!redefine NEW 8\n"
        "#!define GONE 1\n#!undef GONE\n"
        "#!define SIPPORT 5070 # a comment\n"
        "debug=DBG\n"
        'loadmodule "sqlops.so"\n'
        'modparam("sqlops", "sqlcon", DBURL)\n'
        'modparam("sqlops", "other", "DBURL")\n'
        'modparam("sqlops", "lit", "DBG is not replaced inside a string")\n'
        "children=NEW FLAG\n"
        "listen=udp:127.0.0.1:SIPPORT\n",
        defines={"CLI": "1"},
    )
    assert cfg.globals["debug"] == 3
    assert [p.value for p in cfg.modparams] == [
        "mysql://kamailio:rw@localhost/kamailio",
        "mysql://kamailio:rw@localhost/kamailio",
        "DBG is not replaced inside a string",
    ]
    assert cfg.globals["children"] == 8
    assert cfg.listen[0].port == 5070
    assert cfg.defines == {
        "CLI": "1",
        "DBG": "3",
        "DBURL": '"mysql://kamailio:rw@localhost/kamailio"',
        "FLAG": "",
        "LONG": "1\n  + 2",
        "NEW": "8",
        "SIPPORT": "5070",
    }


def test_cli_define_enables_branch() -> None:
    text = '#!ifdef WITH_CFGLUA\ncfgengine "lua"\n#!else\ncfgengine "python"\n#!endif\n'
    assert parse(text).cfgengine == "python"
    assert parse(text, defines={"WITH_CFGLUA": ""}).cfgengine == "lua"


def test_subst_and_substdef() -> None:
    cfg = parse(
        '#!subst "/PORT/5070/g"\n'
        '#!subst "/^x(.)/Y\\1/i"\n'
        '#!substdef "!MYIP!10.0.0.1!"\n'
        '#!substdefs "/MYHOST/sip.example.com/"\n'
        'loadmodule "a.so"\n'
        'modparam("a", "b", "host:PORT,PORT")\n'
        'modparam("a", "c", "XZx")\n'
        'modparam("a", "d", "MYIP")\n'
        "listen=MYIP\n"
        "alias=MYHOST\n"
    )
    assert [p.value for p in cfg.modparams] == ["host:5070,5070", "YZx", "10.0.0.1"]
    assert cfg.listen[0].host == "10.0.0.1"
    assert cfg.aliases == [("sip.example.com", 0)]
    assert cfg.defines["MYIP"] == "10.0.0.1"
    assert cfg.defines["MYHOST"] == '"sip.example.com"'


def test_comments() -> None:
    cfg = parse(
        "debug=2 # trailing\n"
        "children=3 // trailing\n"
        "/* block\n#!define NOT_DEFINED\n  /* nested */ still comment\n*/ port=5070\n"
        'server_header="a # b // c /* d"\n'
        "#! this is a comment-ish unknown directive\n"
    )
    assert cfg.globals == {
        "debug": 2,
        "children": 3,
        "port": 5070,
        "server_header": "a # b // c /* d",
    }
    assert "NOT_DEFINED" not in cfg.defines


def test_defenv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYKEMI_TEST_IP", "10.1.2.3")
    monkeypatch.delenv("PYKEMI_TEST_UNSET", raising=False)
    cfg = parse(
        "#!defenv PYKEMI_TEST_IP\n"
        "#!defenv MYIP=PYKEMI_TEST_IP\n"
        "#!defenvs MYIPS=PYKEMI_TEST_IP\n"
        "#!trydefenv X=PYKEMI_TEST_UNSET\n"
        "listen=udp:MYIP:5060\n"
    )
    assert cfg.defines["PYKEMI_TEST_IP"] == "10.1.2.3"
    assert cfg.defines["MYIPS"] == '"10.1.2.3"'
    assert "X" not in cfg.defines
    assert cfg.listen[0].host == "10.1.2.3"


def test_includes() -> None:
    cfg = load_config(FIXTURES / "include-main.cfg")
    child = str(FIXTURES / "include-child.cfg")
    assert [m.name for m in cfg.modules] == ["sl", "tm"]
    assert cfg.modules[0].loc == Location(child, 3)
    assert cfg.listen[0].loc == Location(child, 4)
    assert cfg.modparams[0].value == 5000
    assert cfg.cfgengine == "lua"


def test_include_dirs_and_import(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "extra.cfg").write_text("children=6\n")
    (tmp_path / "main.cfg").write_text(
        'include_file "extra.cfg"\nimport_file "missing.cfg"\n#!import_file "extra.cfg"\n'
    )
    cfg = load_config(tmp_path / "main.cfg", include_dirs=[inc])
    assert cfg.globals["children"] == 6
    assert cfg.warnings == [
        f"{tmp_path / 'main.cfg'}:2: import_file: file 'missing.cfg' not found, skipped"
    ]


def test_string_escapes() -> None:
    cfg = parse("server_header=\"a\\tb\\\"c\\\\d\\n\"\nuser_agent_header='it\\'s \\d'\n")
    assert cfg.globals["server_header"] == 'a\tb"c\\d\n'
    assert cfg.globals["user_agent_header"] == "it's \\d"
