"""Kamailio-style cfg reader: every bad config names FILE:LINE and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykemi.runtime.config import ConfigError, load_config, parse_config_text

FIXTURES = Path(__file__).parent / "fixtures" / "cfg"

ENGINES = "jsdt, lua, python, python3, ruby, sqlang"

BAD: list[tuple[str, str, str]] = [
    ("unterminated string", 'debug=2\nserver_header="abc\n', "bad.cfg:2: unterminated string"),
    ("unterminated single quote", "log_prefix='x\n", "bad.cfg:1: unterminated string"),
    (
        "unbalanced endif",
        "#!ifdef A\n#!endif\n#!endif\n",
        "bad.cfg:3: #!endif without #!ifdef/#!ifndef",
    ),
    (
        "unclosed ifdef",
        "#!ifdef A\n#!ifndef B\n#!endif\ndebug=1\n",
        "bad.cfg:1: #!ifdef without matching #!endif",
    ),
    ("unclosed ifndef", "debug=1\n#!ifndef B\n", "bad.cfg:2: #!ifndef without matching #!endif"),
    ("stray else", "debug=1\n  #!else\n", "bad.cfg:2: #!else without #!ifdef/#!ifndef"),
    (
        "double else",
        "#!ifdef A\n#!else\n#!else\n#!endif\n",
        "bad.cfg:3: second #!else for #!ifdef at bad.cfg:1",
    ),
    ("ifdef without name", "#!ifdef\n#!endif\n", "bad.cfg:1: #!ifdef expects one identifier"),
    ("ifdef garbage", "#!ifdef A B\n#!endif\n", "bad.cfg:1: #!ifdef expects one identifier"),
    ("unknown statement", "debug=2\nfoo bar\n", "bad.cfg:2: unknown statement 'foo'"),
    ("missing equals", "children 4\n", "bad.cfg:1: unknown statement 'children'"),
    ("stray punctuation", "debug=2\n}\n", "bad.cfg:2: unexpected '}'"),
    ("missing value", "debug=2\nchildren=\nfork=yes\n", "bad.cfg:2: missing value for 'children'"),
    (
        "modparam two args",
        'loadmodule "tm.so"\nmodparam("tm", "fr_timer")\n',
        "bad.cfg:2: modparam expects 3 arguments (module, name, value), got 2",
    ),
    (
        "modparam four args",
        'modparam("tm", "a", 1, 2)\n',
        "bad.cfg:1: modparam expects 3 arguments (module, name, value), got 4",
    ),
    (
        "modparam no parens",
        'modparam "tm"\n',
        "bad.cfg:1: expected '(' after modparam, found '\"tm\"'",
    ),
    ("modparam unterminated", 'modparam("tm", "a", 1\n', "bad.cfg:1: unterminated modparam("),
    (
        "modparam unquoted name",
        'modparam(tm, "a", 1)\n',
        "bad.cfg:1: modparam: module name must be a quoted string",
    ),
    (
        "modparam bad value",
        'modparam("tm", "a", foo)\n',
        "bad.cfg:1: modparam: value must be a quoted string or an integer, got 'foo'",
    ),
    (
        "bad listen ipv4",
        "debug=1\nlisten=udp:1.2.3:5060\n",
        "bad.cfg:2: bad listen address 'udp:1.2.3:5060': invalid IPv4 address '1.2.3'",
    ),
    (
        "bad listen port",
        "listen=udp:1.2.3.4:70000\n",
        "bad.cfg:1: bad listen address 'udp:1.2.3.4:70000': invalid port '70000'",
    ),
    (
        "bad listen proto",
        "listen=foo:1.2.3.4:5060\n",
        "bad.cfg:1: bad listen address 'foo:1.2.3.4:5060': unknown protocol 'foo'",
    ),
    (
        "bad listen ipv6",
        "listen=tcp:[::g]:5060\n",
        "bad.cfg:1: bad listen address 'tcp:[::g]:5060': invalid IPv6 address '::g'",
    ),
    (
        "listen name unquoted",
        "listen=udp:1.2.3.4 name foo\n",
        "bad.cfg:1: listen: name must be a quoted string",
    ),
    (
        "bad alias",
        "alias=exa mple..com\n",
        "bad.cfg:1: bad alias 'mple..com': invalid host 'mple..com'",
    ),
    (
        "missing include",
        'debug=1\n#!include_file "nope.cfg"\n',
        "bad.cfg:2: cannot open include file 'nope.cfg'",
    ),
    (
        "missing include statement",
        'include_file "nope.cfg"\n',
        "bad.cfg:1: cannot open include file 'nope.cfg'",
    ),
    (
        "include no name",
        "include_file nope\n",
        "bad.cfg:1: include_file expects a quoted file name",
    ),
    (
        "cfgengine native",
        'loadmodule "sl.so"\ncfgengine "native"\n',
        'bad.cfg:2: cfgengine "native" is not supported: pykemi runs KEMI engines only '
        f"({ENGINES})",
    ),
    (
        "cfgengine unknown",
        'cfgengine "perl"\n',
        f"bad.cfg:1: unknown cfgengine 'perl' (expected one of {ENGINES})",
    ),
    (
        "unterminated block comment",
        "debug=1\n/* open\n * still open\n",
        "bad.cfg:2: unterminated block comment",
    ),
    (
        "unterminated nested block comment",
        "/* a /* b */\n",
        "bad.cfg:1: unterminated block comment",
    ),
    (
        "int expected",
        'children="four"\n',
        "bad.cfg:1: 'children' expects an integer, got '\"four\"'",
    ),
    (
        "bool expected",
        "fork=maybe\n",
        "bad.cfg:1: 'fork' expects a boolean (yes/no/1/0), got 'maybe'",
    ),
    (
        "native routes without cfgengine",
        'debug=1\nrequest_route {\n  sl_send_reply(200, "OK");\n}\n',
        "bad.cfg:2: native route blocks are not supported: pykemi needs cfgengine set to a KEMI "
        f"engine ({ENGINES})",
    ),
    (
        "unterminated route block",
        'cfgengine "lua"\nroute[X] {\n  if (a) {\n}\n',
        "bad.cfg:2: unterminated route block (missing '}')",
    ),
    ("route without brace", "route[X] foo\n", "bad.cfg:1: expected '{' to open route block"),
    (
        "redefine with define",
        "#!define A 1\n#!define A 2\n",
        "bad.cfg:2: 'A' is already defined (use #!redefine)",
    ),
    ("bad define name", "#!define 1A x\n", "bad.cfg:1: #!define expects NAME [value]"),
    (
        "bad subst",
        '#!subst "/a/b"\n',
        "bad.cfg:1: bad subst expression '/a/b' (expected /regex/repl/flags)",
    ),
    ("bad subst flags", '#!subst "/a/b/x"\n', "bad.cfg:1: bad subst flags 'x' (allowed: i, g)"),
    ("subst unquoted", "#!subst /a/b/\n", "bad.cfg:1: #!subst expects a quoted argument"),
    (
        "bad subst regex",
        '#!subst "/(/b/"\n',
        "bad.cfg:1: bad regex in #!subst: missing ), unterminated subpattern at position 0",
    ),
    (
        "defenv unset",
        "#!defenv X=PYKEMI_SURELY_UNSET_VAR\n",
        "bad.cfg:1: #!defenv: environment variable 'PYKEMI_SURELY_UNSET_VAR' is not set",
    ),
    ("ifexp", "#!ifexp 1\n#!endif\n", "bad.cfg:1: #!ifexp is not supported"),
    (
        "define value with unterminated string",
        "#!define MSG it's\nlog_prefix=MSG\n",
        "bad.cfg:2: in expansion of 'MSG': unterminated string",
    ),
    ("loadmodule unquoted", "loadmodule sl\n", "bad.cfg:1: loadmodule expects a quoted string"),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "bad.cfg")
    assert str(info.value) == expected
    file, line, _ = expected.split(":", 2)
    assert (info.value.file, info.value.line) == (file, int(line))


def test_error_inside_include_names_included_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(FIXTURES / "include-bad-main.cfg")
    child = FIXTURES / "include-bad-child.cfg"
    assert str(info.value) == (
        f"{child}:6: modparam expects 3 arguments (module, name, value), got 2"
    )


def test_lines_after_include_keep_their_numbers(tmp_path: Path) -> None:
    (tmp_path / "a.cfg").write_text("debug=1\n\n\n")
    (tmp_path / "main.cfg").write_text('#!include_file "a.cfg"\nchildren=2\nfork=maybe\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "main.cfg")
    assert (
        str(info.value)
        == f"{tmp_path / 'main.cfg'}:3: 'fork' expects a boolean (yes/no/1/0), got 'maybe'"
    )


def test_unclosed_ifdef_in_include(tmp_path: Path) -> None:
    (tmp_path / "a.cfg").write_text("debug=1\n#!ifdef X\n")
    (tmp_path / "main.cfg").write_text('include_file "a.cfg"\n#!endif\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "main.cfg")
    assert str(info.value) == f"{tmp_path / 'a.cfg'}:2: #!ifdef without matching #!endif"


def test_include_cycle(tmp_path: Path) -> None:
    (tmp_path / "main.cfg").write_text('debug=1\ninclude_file "main.cfg"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "main.cfg")
    assert str(info.value) == (
        f"{tmp_path / 'main.cfg'}:2: include depth exceeds 10 (include cycle?)"
    )


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.cfg:0: cannot read config file"):
        load_config(tmp_path / "nope.cfg")


def test_define_loop_does_not_hang() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("#!define A B\n#!define B A\ndebug=A\n", "bad.cfg")
    assert str(info.value) == "bad.cfg:3: 'debug' expects an integer, got 'A'"


def test_define_blowup_is_bounded() -> None:
    lines = ["#!define D0 x x x x"]
    lines += [f"#!define D{i} D{i - 1} D{i - 1} D{i - 1} D{i - 1}" for i in range(1, 12)]
    with pytest.raises(ConfigError, match=r"^bad\.cfg:13: configuration too large"):
        parse_config_text("\n".join([*lines, "log_prefix=D11\n"]), "bad.cfg")


def test_error_column_attribute() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text('debug=1\nserver_header = "abc\n', "bad.cfg")
    assert info.value.col == 17
    assert info.value.location.line == 2
