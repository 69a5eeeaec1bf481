"""Statements of a preprocessed Kamailio cfg: globals, modules, modparams, cfgengine.

Kamailio's grammar needs no statement terminator; here a statement ends at
``;``, at the end of its line, or at the closing parenthesis of a call, which
covers the configs written in practice.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ...kemi.model import WORKS, effect_phrase
from .globals import BOOL_WORDS, KNOWN_GLOBALS, GlobalSpec, PType, canonical_name
from .model import (
    KEMI_ENGINES,
    Config,
    ConfigError,
    GlobalScalar,
    Listen,
    LoadModule,
    Location,
    ModParam,
)
from .preprocess import Token, TokKind, preprocess

ROUTE_KEYWORDS = frozenset(
    {
        "request_route",
        "route",
        "reply_route",
        "onreply_route",
        "failure_route",
        "branch_route",
        "branch_failure_route",
        "onsend_route",
        "event_route",
    }
)
LISTEN_PROTOS = ("udp", "tcp", "tls", "sctp", "ws", "any")
_HOSTNAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
_DEC = re.compile(r"[1-9][0-9]*|0")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_OCT = re.compile(r"0[0-7]+")


def _num_value(text: str) -> int | None:
    if _DEC.fullmatch(text):
        return int(text)
    if _HEX.fullmatch(text):
        return int(text, 16)
    if _OCT.fullmatch(text):
        return int(text, 8)
    return None


def _raw(tokens: list[Token]) -> str:
    return "".join((" " if t.space_before and i else "") + t.raw for i, t in enumerate(tokens))


def _int_value(tokens: list[Token]) -> int | None:
    """``[-|+]NUMBER`` or a boolean word (Kamailio's lexer makes those 1/0)."""
    sign = 1
    if len(tokens) == 2 and (tokens[0].is_punct("-") or tokens[0].is_punct("+")):
        sign = -1 if tokens[0].text == "-" else 1
        tokens = tokens[1:]
    if len(tokens) != 1:
        return None
    tok = tokens[0]
    if tok.kind is TokKind.NUM:
        value = _num_value(tok.text)
        return None if value is None else sign * value
    if tok.kind is TokKind.ID and sign == 1 and tok.text.lower() in BOOL_WORDS:
        return int(BOOL_WORDS[tok.text.lower()])
    return None


def _str_value(tokens: list[Token]) -> str:
    if tokens and all(t.kind is TokKind.STR for t in tokens):
        return "".join(t.text for t in tokens)  # adjacent strings concatenate
    return _raw(tokens)


def _words(tokens: list[Token]) -> list[list[Token]]:
    """Split a value at whitespace; ``udp: 1.2.3.4 :5060`` still joins at the colons."""
    words: list[list[Token]] = []
    for t in tokens:
        glue = (
            words
            and t.kind is not TokKind.STR
            and words[-1][-1].kind is not TokKind.STR
            and (not t.space_before or t.is_punct(":") or words[-1][-1].is_punct(":"))
        )
        if glue:
            words[-1].append(t)
        else:
            words.append([t])
    return words


def parse_hostport(
    text: str, *, allow_proto: bool, what: str
) -> tuple[str | None, str, int | None]:
    """``[proto:]host[:port]`` -> (proto, host without IPv6 brackets, port)."""

    def bad(reason: str) -> ValueError:
        return ValueError(f"bad {what} {text!r}: {reason}")

    proto: str | None = None
    rest = text
    head, sep, tail = text.partition(":")
    if allow_proto and sep and head.lower() in LISTEN_PROTOS and tail:
        proto, rest = head.lower(), tail
    port_text: str | None = None
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise bad("missing ']'")
        host, after = rest[1:close], rest[close + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"invalid IPv6 address {host!r}") from None
        if after:
            if not after.startswith(":"):
                raise bad(f"unexpected {after!r}")
            port_text = after[1:]
    elif rest.count(":") > 1:
        try:
            ipaddress.IPv6Address(rest)
        except ValueError:
            if head.isalpha() and proto is None and allow_proto:
                raise bad(f"unknown protocol {head!r}") from None
            raise bad("IPv6 addresses must be written in brackets: [addr]:port") from None
        host = rest
    else:
        host, sep, port_text_ = rest.partition(":")
        port_text = port_text_ if sep else None
        if not host:
            raise bad("missing host")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise bad(f"invalid IPv4 address {host!r}") from None
        elif _HOSTNAME.fullmatch(host) is None:
            raise bad(f"invalid host {host!r}")
    port: int | None = None
    if port_text is not None:
        if re.fullmatch(r"[0-9]{1,5}", port_text) is None or not 0 < int(port_text) < 65536:
            raise bad(f"invalid port {port_text!r}")
        port = int(port_text)
    return proto, host, port


class _Parser:
    def __init__(self, tokens: list[Token], cfg: Config) -> None:
        self.toks = tokens
        self.i = 0
        self.cfg = cfg

    def warn(self, loc: Location, text: str) -> None:
        self.cfg.warnings.append(f"{loc}: {text}")

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> Token | None:
        tok = self.peek()
        if tok is not None:
            self.i += 1
        return tok

    def expect_punct(self, ch: str, after: Token, what: str) -> Token:
        tok = self.next()
        if tok is None or not tok.is_punct(ch):
            where = after if tok is None else tok
            found = "end of file" if tok is None else repr(tok.raw)
            raise ConfigError.at(where.loc, f"expected '{ch}' {what}, found {found}", where.col)
        return tok

    def end_statement(self) -> None:
        tok = self.peek()
        if tok is not None and tok.is_punct(";"):
            self.i += 1

    def same_line(self, a: Token, b: Token) -> bool:
        return a.seq == b.seq

    # -- statements ------------------------------------------------------

    def parse(self) -> None:
        while (tok := self.next()) is not None:
            if tok.is_punct(";"):
                continue
            if tok.kind is not TokKind.ID:
                raise ConfigError.at(tok.loc, f"unexpected {tok.raw!r}", tok.col)
            word = tok.text
            nxt = self.peek()
            if word in ("loadmodule", "loadmodulex"):
                self.loadmodule(tok)
            elif word == "loadpath" and nxt is not None and not nxt.is_punct("="):
                self.set_global(tok, "mpath", [self.string_arg(tok)])
            elif word in ("modparam", "modparamx"):
                self.modparam(tok)
            elif word == "cfgengine":
                self.cfgengine(tok)
            elif word in ROUTE_KEYWORDS and nxt is not None and nxt.text in ("[", "{"):
                self.route(tok)
            else:
                self.assignment(tok)

    def string_arg(self, kw: Token) -> Token:
        """``kw "x"`` or ``kw("x")`` (also ``kw = "x"``)."""
        paren = False
        tok = self.next()
        if tok is not None and (tok.is_punct("(") or tok.is_punct("=")):
            paren = tok.text == "("
            tok = self.next()
        if tok is None or tok.kind is not TokKind.STR:
            where = kw if tok is None else tok
            raise ConfigError.at(where.loc, f"{kw.text} expects a quoted string", where.col)
        if paren:
            self.expect_punct(")", tok, f"to close {kw.text}(")
        self.end_statement()
        return tok

    def loadmodule(self, kw: Token) -> None:
        tok = self.string_arg(kw)
        path = tok.text
        name = os.path.basename(path.rstrip("/"))
        if name.endswith(".so"):
            name = name[:-3]
        if not name:
            raise ConfigError.at(tok.loc, f"loadmodule: bad module path {path!r}", tok.col)
        self.cfg.modules.append(LoadModule(name, path, kw.loc))

    def modparam(self, kw: Token) -> None:
        self.expect_punct("(", kw, f"after {kw.text}")
        args: list[list[Token]] = [[]]
        depth = 0
        while True:
            tok = self.next()
            if tok is None:
                raise ConfigError.at(kw.loc, f"unterminated {kw.text}(", kw.col)
            if tok.is_punct("(") or tok.is_punct("["):
                depth += 1
            elif (tok.is_punct(")") or tok.is_punct("]")) and depth:
                depth -= 1
            elif tok.is_punct(")"):
                break
            elif tok.is_punct(",") and not depth:
                args.append([])
                continue
            args[-1].append(tok)
        self.end_statement()
        count = 0 if args == [[]] else len(args)
        if count != 3:
            raise ConfigError.at(
                kw.loc, f"{kw.text} expects 3 arguments (module, name, value), got {count}"
            )
        names: list[str] = []
        for idx, what in ((0, "module name"), (1, "parameter name")):
            arg = args[idx]
            if len(arg) != 1 or arg[0].kind is not TokKind.STR:
                where = arg[0] if arg else kw
                raise ConfigError.at(
                    where.loc, f"{kw.text}: {what} must be a quoted string", where.col
                )
            names.append(arg[0].text)
        vtoks = args[2]
        value: str | int
        if vtoks and all(t.kind is TokKind.STR for t in vtoks):
            value = _str_value(vtoks)
        else:
            ivalue = _int_value(vtoks)
            if ivalue is None:
                where = vtoks[0] if vtoks else kw
                raise ConfigError.at(
                    where.loc,
                    f"{kw.text}: value must be a quoted string or an integer, got {_raw(vtoks)!r}",
                    where.col,
                )
            value = ivalue
        module = names[0]
        loaded = {m.name for m in self.cfg.modules}
        if re.fullmatch(r"[A-Za-z0-9_]+", module) and module not in loaded:
            self.warn(kw.loc, f"modparam for module {module!r}, which is not loaded before it")
        self.cfg.modparams.append(ModParam(module, names[1], value, kw.loc))

    def cfgengine(self, kw: Token) -> None:
        tok = self.next()
        if tok is not None and tok.is_punct("="):
            tok = self.next()
        if tok is None or tok.kind not in (TokKind.STR, TokKind.ID):
            where = kw if tok is None else tok
            raise ConfigError.at(where.loc, "cfgengine expects a quoted engine name", where.col)
        self.end_statement()
        engine = tok.text.strip().lower()
        if engine == "native":
            raise ConfigError.at(
                kw.loc,
                'cfgengine "native" is not supported: pykemi runs KEMI engines only '
                f"({', '.join(KEMI_ENGINES)})",
            )
        if engine not in KEMI_ENGINES:
            expected = ", ".join(KEMI_ENGINES)
            raise ConfigError.at(
                kw.loc, f"unknown cfgengine {tok.text!r} (expected one of {expected})"
            )
        if self.cfg.cfgengine is not None:
            self.warn(kw.loc, f"cfgengine set again ({self.cfg.cfgengine!r} -> {engine!r})")
        self.cfg.cfgengine = engine
        self.cfg.cfgengine_loc = kw.loc

    def route(self, kw: Token) -> None:
        tok = self.next()
        if tok is not None and tok.is_punct("["):
            while True:
                tok = self.next()
                if tok is None:
                    raise ConfigError.at(kw.loc, f"unterminated {kw.text}[ name", kw.col)
                if tok.is_punct("]"):
                    break
            tok = self.next()
        if tok is None or not tok.is_punct("{"):
            where = kw if tok is None else tok
            raise ConfigError.at(where.loc, f"expected '{{' to open {kw.text} block", where.col)
        depth = 1
        while depth:
            tok = self.next()
            if tok is None:
                raise ConfigError.at(kw.loc, f"unterminated {kw.text} block (missing '}}')")
            if tok.is_punct("{"):
                depth += 1
            elif tok.is_punct("}"):
                depth -= 1
        self.cfg.routes.append(kw.loc)

    def assignment(self, first: Token) -> None:
        parts = [first.text]
        last = first
        # dotted names: kemi.onsend_route_callback, custom cfg groups
        while (dot := self.peek()) is not None and dot.is_punct(".") and not dot.space_before:
            nxt = self.peek(1)
            if nxt is None or nxt.kind is not TokKind.ID or nxt.space_before:
                break
            parts.append(nxt.text)
            last = nxt
            self.i += 2
        name = ".".join(parts)
        eq = self.peek()
        if eq is None or not eq.is_punct("="):
            raise ConfigError.at(first.loc, f"unknown statement {name!r}", first.col)
        self.i += 1
        value: list[Token] = []
        depth = 0
        prev = eq
        while (tok := self.peek()) is not None:
            if tok.is_punct(";") and not depth:
                break
            if not depth and not self.same_line(prev, tok):
                break
            if tok.is_punct("("):
                depth += 1
            elif tok.is_punct(")") and depth:
                depth -= 1
            value.append(tok)
            prev = tok
            self.i += 1
        self.end_statement()
        if not value:
            raise ConfigError.at(last.loc, f"missing value for {name!r}")
        self.set_global(first, name, value)

    # -- globals ---------------------------------------------------------

    def set_global(self, at: Token, name: str, value: list[Token]) -> None:
        name = canonical_name(name)
        spec = KNOWN_GLOBALS.get(name)
        cfg = self.cfg
        if spec is None:
            hint = difflib.get_close_matches(name, list(KNOWN_GLOBALS), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            self.warn(at.loc, f"unknown global parameter {name!r} ignored{extra}")
            ivalue = _int_value(value)
            cfg.globals[name] = ivalue if ivalue is not None else _str_value(value)
            cfg.global_locs[name] = at.loc
            return
        if spec.type is PType.LISTEN:
            self.listen(at, spec, value)
        elif spec.type is PType.ALIAS:
            self.alias(at, spec, value)
        else:
            cfg.globals[name] = self.convert(spec, value)
        cfg.global_locs[name] = at.loc

    def convert(self, spec: GlobalSpec, value: list[Token]) -> GlobalScalar:
        if spec.type is PType.STR:
            if len(value) == 1 and value[0].kind is TokKind.NUM:
                return value[0].text  # e.g. server_header=1 is odd but harmless
            return _str_value(value)
        ivalue = _int_value(value)
        if spec.type is PType.INT_OR_STR:
            return ivalue if ivalue is not None else _str_value(value)
        if ivalue is None:
            what = "an integer" if spec.type is PType.INT else "a boolean (yes/no/1/0)"
            raise ConfigError.at(
                value[0].loc, f"{spec.name!r} expects {what}, got {_raw(value)!r}", value[0].col
            )
        return bool(ivalue) if spec.type is PType.BOOL else ivalue

    def _append(self, name: str, text: str) -> None:
        current = self.cfg.globals.setdefault(name, [])
        if isinstance(current, list):
            current.append(text)

    def hostport(
        self, word: list[Token], *, allow_proto: bool, what: str
    ) -> tuple[str | None, str, int | None]:
        # a quoted address is accepted too: listen="udp:1.2.3.4:5060"
        single_str = len(word) == 1 and word[0].kind is TokKind.STR
        text = word[0].text if single_str else _raw(word)
        try:
            return parse_hostport(text, allow_proto=allow_proto, what=what)
        except ValueError as exc:
            raise ConfigError.at(word[0].loc, str(exc), word[0].col) from None

    def listen(self, at: Token, spec: GlobalSpec, value: list[Token]) -> None:
        words = _words(value)
        addrs: list[list[Token]] = []
        while words and not (len(words[0]) == 1 and words[0][0].text in _LISTEN_OPTIONS):
            addrs.append(words.pop(0))
        advertise: tuple[str, int] | None = None
        name: str | None = None
        adv_word: list[Token] | None = None
        while words:
            opt = words.pop(0)[0]
            arg = words.pop(0) if words else None
            if opt.text == "virtual":
                self.warn(opt.loc, "listen option 'virtual' ignored")
                if arg is not None:
                    words.insert(0, arg)
                continue
            if arg is None:
                raise ConfigError.at(opt.loc, f"listen: '{opt.text}' needs a value", opt.col)
            if opt.text == "advertise":
                adv_word = arg
            elif opt.text == "name":
                if len(arg) != 1 or arg[0].kind is not TokKind.STR:
                    raise ConfigError.at(arg[0].loc, "listen: name must be a quoted string")
                name = arg[0].text
            else:  # workers, agname: Kamailio's per-socket worker groups
                self.warn(opt.loc, f"listen option '{opt.text}' ignored")
        if not addrs:
            raise ConfigError.at(at.loc, "listen: missing address")
        if (adv_word is not None or name is not None) and len(addrs) > 1:
            raise ConfigError.at(at.loc, "listen: advertise/name need a single address")
        for word in addrs:
            proto, host, port = self.hostport(word, allow_proto=True, what="listen address")
            proto = proto or "any"
            # no port: TLS's 5061, else the port= global, wherever it is set (_finish)
            port = port or (5061 if proto == "tls" else _PORT_GLOBAL)
            if adv_word is not None:
                _, ahost, aport = self.hostport(adv_word, allow_proto=False, what="advertise")
                advertise = (ahost, aport or port)
            self.cfg.listen.append(Listen(proto, host, port, advertise, name, at.loc))
            self._append(spec.name, _raw(value) if len(addrs) == 1 else _raw(word))

    def alias(self, at: Token, spec: GlobalSpec, value: list[Token]) -> None:
        for word in _words(value):
            _, host, port = self.hostport(word, allow_proto=True, what="alias")
            self.cfg.aliases.append((host, port or 0))
            self._append(spec.name, _raw(word))


_LISTEN_OPTIONS = frozenset({"advertise", "name", "virtual", "workers", "agname"})
_PORT_GLOBAL = 0  # a listen port to take from port= (never a port hostport() accepts)


def _finish(cfg: Config) -> None:
    _listen_ports(cfg)
    cfg.warnings += global_warnings(cfg)
    _native_routes(cfg)


def _listen_ports(cfg: Config) -> None:
    """Listen addresses (and their advertised ones) without a port get port= (as Kamailio)."""
    port = cfg.get_int("port", int(KNOWN_GLOBALS["port"].default or 0))
    for lst in cfg.listen:
        if lst.port == _PORT_GLOBAL:
            lst.port = port
        if lst.advertise is not None and lst.advertise[1] == _PORT_GLOBAL:
            lst.advertise = (lst.advertise[0], port)


def global_warnings(cfg: Config) -> list[str]:
    """One warning per core parameter set in the file that has no effect (or only part of
    it) in pykemi, at the line that set it last; values set by the command line (-E, -D)
    have no line and are not warned about."""
    out: list[str] = []
    for name in cfg.globals:
        spec = KNOWN_GLOBALS.get(name)
        loc = cfg.global_locs.get(name)
        if spec is None or loc is None or spec.effect == WORKS:
            continue  # unknown names were warned about where they were set
        out.append(f"{loc}: core parameter {name!r} {effect_phrase(spec.effect)}")
    return out


def _native_routes(cfg: Config) -> None:
    if not cfg.routes:
        return
    if cfg.cfgengine is None:
        first = cfg.routes[0]
        raise ConfigError.at(
            first,
            "native route blocks are not supported: pykemi needs cfgengine set to a KEMI "
            f"engine ({', '.join(KEMI_ENGINES)})",
        )
    for loc in cfg.routes:
        cfg.warnings.append(f"{loc}: native route block ignored (cfgengine is {cfg.cfgengine!r})")


def parse_config_text(
    text: str,
    path: str = "<string>",
    defines: Mapping[str, str] | None = None,
    include_dirs: Iterable[str | os.PathLike[str]] = (),
) -> Config:
    """Parse cfg text; includes resolve relative to ``path``'s folder."""
    pre = preprocess(text, path, defines, include_dirs)
    cfg = Config(path=path, defines=pre.defines, warnings=list(pre.warnings))
    _Parser(pre.tokens, cfg).parse()
    _finish(cfg)
    return cfg


def load_config(
    path: str | os.PathLike[str],
    defines: Mapping[str, str] | None = None,
    include_dirs: Iterable[str | os.PathLike[str]] = (),
) -> Config:
    """Read and parse a cfg file (``defines``: extra ``-D`` names from the command line)."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", name, 0) from exc
    return parse_config_text(text, name, defines, include_dirs)
