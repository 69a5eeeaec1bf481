"""Kamailio cfg preprocessor and lexer.

One pass turns the file (and its includes) into tokens that keep their
file:line.  Directives (``#!define``, ``#!ifdef``, ``#!subst``, includes, ...)
are handled on the way, as Kamailio's lexer does: defines replace whole
identifiers outside strings (and a string token that is exactly a define name),
``#!subst`` rules rewrite string tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from .model import ConfigError, Location

MAX_INCLUDE_DEPTH = 10  # as Kamailio; also stops include cycles
MAX_EXPANDED_TOKENS = 200_000  # stops exponential define blow-ups

_DIRECTIVE = re.compile(r"[ \t]*(?:#!|!!)([A-Za-z_]+)(.*)\Z", re.S)
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM = re.compile(r"[0-9][A-Za-z0-9_]*")
_DEFINE_ARGS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]+(.*))?\Z", re.S)
_INCLUDE_ARG = re.compile(r"[ \t]*\(?[ \t]*(\"[^\"\n]*\"|'[^'\n]*')[ \t]*\)?[ \t]*;?")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_MODE_MARKERS = frozenset({"KAMAILIO", "OPENSER", "SER", "MAXCOMPAT", "ALL"})
_SPACE = " \t\r\f\v"
_COMMENT_MARK = re.compile(r"/\*|\*/")
MAX_DEFINE_NESTING = 64


class TokKind(Enum):
    ID = "id"
    NUM = "num"
    STR = "str"
    PUNCT = "punct"


@dataclass(frozen=True)
class Token:
    kind: TokKind
    text: str  # value: unescaped content for strings, the text itself otherwise
    raw: str  # as written (strings with quotes)
    loc: Location
    col: int
    space_before: bool
    seq: int = 0  # physical line serial: tells lines apart across repeated includes

    def is_punct(self, ch: str) -> bool:
        return self.kind is TokKind.PUNCT and self.text == ch


@dataclass(frozen=True)
class _Include:
    kind: str  # "include_file" | "import_file"
    name: str
    loc: Location


@dataclass
class PreprocessResult:
    tokens: list[Token]
    defines: dict[str, str]
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Cond:
    directive: str
    loc: Location
    parent_active: bool
    active: bool
    seen_else: bool = False


class _Lexer:
    """Tokenizes lines of one file; the block comment state spans lines."""

    def __init__(self, file: str, *, includes: bool = True) -> None:
        self.file = file
        self.includes = includes
        self.comment_depth = 0
        self.comment_loc: Location | None = None

    def lex_line(self, line: str, lineno: int, seq: int = 0) -> list[Token | _Include]:
        loc = Location(self.file, lineno)
        out: list[Token | _Include] = []
        pos, n = 0, len(line)
        space = True
        while pos < n:
            if self.comment_depth > 0:
                # Kamailio nests /* */ comments
                m = _COMMENT_MARK.search(line, pos)
                if m is None:
                    break
                self.comment_depth += 1 if m.group() == "/*" else -1
                pos = m.end()
                space = True
                continue
            c = line[pos]
            if c in _SPACE:
                pos += 1
                space = True
                continue
            if c == "#" or line.startswith("//", pos):
                break
            if line.startswith("/*", pos):
                self.comment_depth = 1
                self.comment_loc = loc
                pos += 2
                continue
            if c in "\"'":
                text, end = _lex_string(line, pos, loc)
                out.append(Token(TokKind.STR, text, line[pos:end], loc, pos + 1, space, seq))
                pos = end
            elif (m := _ID.match(line, pos)) is not None:
                word = m.group()
                if self.includes and word in ("include_file", "import_file"):
                    arg = _INCLUDE_ARG.match(line, m.end())
                    if arg is None:
                        raise ConfigError.at(loc, f"{word} expects a quoted file name", pos + 1)
                    out.append(_Include(word, arg.group(1)[1:-1], loc))
                    pos = arg.end()
                    space = True
                    continue
                out.append(Token(TokKind.ID, word, word, loc, pos + 1, space, seq))
                pos = m.end()
            elif (m := _NUM.match(line, pos)) is not None:
                out.append(Token(TokKind.NUM, m.group(), m.group(), loc, pos + 1, space, seq))
                pos = m.end()
            else:
                out.append(Token(TokKind.PUNCT, c, c, loc, pos + 1, space, seq))
                pos += 1
            space = False
        return out


def _lex_string(line: str, start: int, loc: Location) -> tuple[str, int]:
    """String starting at ``line[start]`` (a quote): (unescaped value, end index)."""
    quote = line[start]
    chars: list[str] = []
    pos = start + 1
    while pos < len(line):
        c = line[pos]
        if c == quote:
            return "".join(chars), pos + 1
        if c == "\\" and pos + 1 < len(line):
            nxt = line[pos + 1]
            # unknown escapes stay as written: regexes in modparams need "\d" etc.
            chars.append(_ESCAPES.get(nxt, "\\" + nxt))
            pos += 2
            continue
        chars.append(c)
        pos += 1
    raise ConfigError.at(loc, "unterminated string", start + 1)


def _strip_comment(text: str) -> str:
    """Drop a trailing ``# ...`` / ``// ...`` comment (whitespace-preceded, outside quotes)."""
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif (c == "#" or text.startswith("//", i)) and (i == 0 or text[i - 1] in _SPACE):
            return text[:i].rstrip()
        i += 1
    return text.strip()


def _directive_string(rest: str, loc: Location, directive: str) -> str:
    """The quoted argument of a directive (rest of the line after the keyword)."""
    text = rest.strip()
    if text[:1] in ("'", '"'):
        value, end = _lex_string(text, 0, loc)
        tail = text[end:].strip().lstrip(";").strip()
        if not tail or tail.startswith(("#", "//")):
            return value
    raise ConfigError.at(loc, f"#!{directive} expects a quoted argument")


def _parse_subst(spec: str, loc: Location) -> tuple[str, str, str]:
    """Split ``/regex/repl/flags`` (any delimiter; ``\\<delim>`` escapes it)."""
    if len(spec) < 2:
        raise ConfigError.at(loc, f"bad subst expression {spec!r}")
    delim = spec[0]
    parts: list[str] = []
    cur: list[str] = []
    i = 1
    while i < len(spec):
        c = spec[i]
        if c == "\\" and i + 1 < len(spec) and spec[i + 1] == delim:
            cur.append(delim)
            i += 2
            continue
        if c == "\\" and i + 1 < len(spec):
            cur.append(spec[i : i + 2])
            i += 2
            continue
        if c == delim:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    if len(parts) != 3:
        raise ConfigError.at(loc, f"bad subst expression {spec!r} (expected /regex/repl/flags)")
    if set(parts[2]) - set("ig"):
        raise ConfigError.at(loc, f"bad subst flags {parts[2]!r} (allowed: i, g)")
    return parts[0], parts[1], parts[2]


class _Preprocessor:
    def __init__(
        self,
        defines: Mapping[str, str] | None,
        include_dirs: Iterable[str | os.PathLike[str]],
        reader: Callable[[Path], str],
    ) -> None:
        self.defines: dict[str, str] = {}
        self.substs: list[tuple[re.Pattern[str], str, int]] = []
        self.tokens: list[Token] = []
        self.warnings: list[str] = []
        self.include_dirs = [Path(d) for d in include_dirs]
        self.reader = reader
        self.depth = 0
        self.line_seq = 0
        self._define_tokens: dict[str, tuple[str, list[Token]]] = {}
        cli = Location("<command line>", 0)
        for name, value in (defines or {}).items():
            if _ID.fullmatch(name) is None:
                raise ConfigError.at(cli, f"invalid define name {name!r}")
            self.defines[name] = value

    def warn(self, loc: Location, text: str) -> None:
        self.warnings.append(f"{loc}: {text}")

    # -- files -----------------------------------------------------------

    def run_file(self, text: str, file: str, base_dir: Path) -> None:
        lines = text.replace("\r\n", "\n").split("\n")
        lexer = _Lexer(file)
        conds: list[_Cond] = []
        i = 0
        while i < len(lines):
            line, lineno = lines[i], i + 1
            loc = Location(file, lineno)
            i += 1
            active = not conds or conds[-1].active
            m = _DIRECTIVE.match(line) if lexer.comment_depth == 0 else None
            if m is not None:
                name, rest = m.group(1), m.group(2)
                if name == "define" and active:
                    # trailing backslash continues the value on the next line
                    while rest.endswith("\\") and i < len(lines):
                        rest = rest[:-1] + "\n" + lines[i]
                        i += 1
                self._directive(name, rest, loc, conds, base_dir)
                continue
            if not active:
                continue
            self.line_seq += 1
            for item in lexer.lex_line(line, lineno, self.line_seq):
                if isinstance(item, _Include):
                    self._include(item, base_dir)
                else:
                    self._emit(item, frozenset())
        if lexer.comment_depth > 0 and lexer.comment_loc is not None:
            raise ConfigError.at(lexer.comment_loc, "unterminated block comment")
        if conds:
            c = conds[-1]
            raise ConfigError.at(c.loc, f"#!{c.directive} without matching #!endif")

    def _include(self, inc: _Include, base_dir: Path) -> None:
        if not inc.name:
            raise ConfigError.at(inc.loc, f"{inc.kind}: empty file name")
        target = self._resolve(inc.name, base_dir)
        if target is None:
            if inc.kind == "import_file":
                self.warn(inc.loc, f"import_file: file {inc.name!r} not found, skipped")
                return
            raise ConfigError.at(inc.loc, f"cannot open include file {inc.name!r}")
        if self.depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError.at(
                inc.loc, f"include depth exceeds {MAX_INCLUDE_DEPTH} (include cycle?)"
            )
        try:
            text = self.reader(target)
        except OSError as exc:
            raise ConfigError.at(
                inc.loc, f"cannot read include file {inc.name!r}: {exc.strerror}"
            ) from exc
        self.depth += 1
        try:
            self.run_file(text, str(target), target.parent)
        finally:
            self.depth -= 1

    def _resolve(self, name: str, base_dir: Path) -> Path | None:
        path = Path(name)
        candidates = [path] if path.is_absolute() else [base_dir / path]
        if not path.is_absolute():
            candidates += [d / path for d in self.include_dirs]
        for cand in candidates:
            try:
                if cand.is_file():
                    return cand
            except (OSError, ValueError):  # name too long, embedded NUL
                continue
        return None

    # -- directives ------------------------------------------------------

    def _directive(
        self, name: str, rest: str, loc: Location, conds: list[_Cond], base_dir: Path
    ) -> None:
        active = not conds or conds[-1].active
        if name in ("ifdef", "ifndef"):
            args = _strip_comment(rest).split()
            if len(args) != 1 or _ID.fullmatch(args[0]) is None:
                raise ConfigError.at(loc, f"#!{name} expects one identifier")
            defined = args[0] in self.defines
            taken = defined if name == "ifdef" else not defined
            conds.append(_Cond(name, loc, active, active and taken))
            return
        if name == "else":
            if not conds:
                raise ConfigError.at(loc, "#!else without #!ifdef/#!ifndef")
            top = conds[-1]
            if top.seen_else:
                raise ConfigError.at(loc, f"second #!else for #!{top.directive} at {top.loc}")
            top.seen_else = True
            top.active = top.parent_active and not top.active
            return
        if name == "endif":
            if not conds:
                raise ConfigError.at(loc, "#!endif without #!ifdef/#!ifndef")
            conds.pop()
            return
        if name == "ifexp":
            raise ConfigError.at(loc, "#!ifexp is not supported")
        if not active:
            return
        if name in _MODE_MARKERS:
            return
        if name in ("define", "trydef", "redefine"):
            m = _DEFINE_ARGS.match(rest.strip())
            if m is None:
                raise ConfigError.at(loc, f"#!{name} expects NAME [value]")
            key, value = m.group(1), _strip_comment(m.group(2) or "")
            if name == "define" and key in self.defines:
                raise ConfigError.at(loc, f"{key!r} is already defined (use #!redefine)")
            if name == "trydef" and key in self.defines:
                return
            self.defines[key] = value
            return
        if name == "undef":
            args = _strip_comment(rest).split()
            if len(args) != 1 or _ID.fullmatch(args[0]) is None:
                raise ConfigError.at(loc, "#!undef expects one identifier")
            self.defines.pop(args[0], None)
            return
        if name in ("subst", "substdef", "substdefs"):
            self._subst(name, _directive_string(rest, loc, name), loc)
            return
        if name in ("defenv", "defenvs", "trydefenv", "trydefenvs"):
            self._defenv(name, _strip_comment(rest), loc)
            return
        if name in ("include_file", "import_file"):
            inc = _Include(name, _directive_string(rest, loc, name), loc)
            self._include(inc, base_dir)
            return
        self.warn(loc, f"unknown preprocessor directive '#!{name}' ignored")

    def _subst(self, name: str, spec: str, loc: Location) -> None:
        pattern, repl, flags = _parse_subst(spec, loc)
        try:
            regex = re.compile(pattern, re.I if "i" in flags else 0)
        except re.error as exc:
            raise ConfigError.at(loc, f"bad regex in #!{name}: {exc}") from exc
        self.substs.append((regex, repl, 0 if "g" in flags else 1))
        if name != "subst":
            if _ID.fullmatch(pattern) is None:
                raise ConfigError.at(loc, f"#!{name}: {pattern!r} is not a valid define name")
            self.defines[pattern] = f'"{repl}"' if name == "substdefs" else repl

    def _defenv(self, name: str, arg: str, loc: Location) -> None:
        key, _, env = arg.partition("=")
        key, env = key.strip(), (env.strip() or key.strip())
        if _ID.fullmatch(key) is None or not env:
            raise ConfigError.at(loc, f"#!{name} expects NAME=ENVVAR or ENVVAR")
        value = os.environ.get(env)
        if name.startswith("try"):
            if value is None or key in self.defines:
                return
        elif value is None:
            raise ConfigError.at(loc, f"#!{name}: environment variable {env!r} is not set")
        if name.endswith("s"):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        self.defines[key] = value

    # -- tokens ----------------------------------------------------------

    def _emit(self, tok: Token, expanding: frozenset[str]) -> None:
        if len(self.tokens) > MAX_EXPANDED_TOKENS:
            raise ConfigError.at(tok.loc, "configuration too large after define expansion")
        if tok.kind is TokKind.ID and tok.text in self.defines and tok.text not in expanding:
            if len(expanding) >= MAX_DEFINE_NESTING:
                raise ConfigError.at(tok.loc, f"defines nested too deeply expanding {tok.text!r}")
            for sub in self._expansion(tok):
                self._emit(sub, expanding | {tok.text})
            return
        if tok.kind is TokKind.STR:
            text = tok.text
            if text in self.defines:
                text = self._define_as_string(tok)
            for regex, repl, count in self.substs:
                try:
                    text = regex.sub(repl, text, count=count)
                except (re.error, IndexError) as exc:
                    raise ConfigError.at(tok.loc, f"#!subst replacement failed: {exc}") from exc
            if text != tok.text:
                tok = replace(tok, text=text)
        self.tokens.append(tok)

    def _value_tokens(self, name: str, use: Token) -> list[Token]:
        """Tokens of a define's value (lexed on first use, placed at the use site)."""
        value = self.defines[name]
        cached = self._define_tokens.get(name)
        if cached is None or cached[0] != value:
            lexer = _Lexer(use.loc.file, includes=False)
            toks: list[Token] = []
            try:
                for part in value.split("\n"):
                    toks += [t for t in lexer.lex_line(part, use.loc.line) if isinstance(t, Token)]
            except ConfigError as exc:
                raise ConfigError.at(
                    use.loc, f"in expansion of {name!r}: {exc.message}", use.col
                ) from exc
            if lexer.comment_depth:
                raise ConfigError.at(use.loc, f"in expansion of {name!r}: unterminated comment")
            cached = (value, toks)
            self._define_tokens[name] = cached
        return cached[1]

    def _expansion(self, use: Token) -> list[Token]:
        toks = self._value_tokens(use.text, use)
        out = []
        for k, t in enumerate(toks):
            space = use.space_before if k == 0 else t.space_before
            out.append(replace(t, loc=use.loc, col=use.col, space_before=space, seq=use.seq))
        return out

    def _define_as_string(self, use: Token) -> str:
        # "NAME" as a whole string: the define's value, without its quotes if quoted
        toks = self._value_tokens(use.text, use)
        if len(toks) == 1 and toks[0].kind is TokKind.STR:
            return toks[0].text
        return self.defines[use.text]


def _read(path: Path) -> str:
    # surrogateescape: cfg files in legacy encodings still load, bytes round-trip
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def preprocess(
    text: str,
    path: str = "<string>",
    defines: Mapping[str, str] | None = None,
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    base_dir: Path | None = None,
    reader: Callable[[Path], str] = _read,
) -> PreprocessResult:
    """Preprocess and tokenize ``text`` (the contents of ``path``)."""
    pp = _Preprocessor(defines, include_dirs, reader)
    if base_dir is None:
        base_dir = Path(path).parent if not path.startswith("<") else Path.cwd()
    pp.run_file(text, path, base_dir)
    return PreprocessResult(pp.tokens, dict(pp.defines), pp.warnings)
