"""Data model of a parsed Kamailio-style configuration file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeAlias

from ...kemi.targets import ENGINE_TARGETS
from .globals import BOOL_WORDS, KNOWN_GLOBALS, canonical_name

GlobalScalar: TypeAlias = str | int | bool
GlobalValue: TypeAlias = GlobalScalar | list[GlobalScalar]

# Engines pykemi can run (each language's Target lists its cfgengine identifiers);
# "native" (Kamailio's own route language) is refused.
KEMI_ENGINES: tuple[str, ...] = tuple(sorted(ENGINE_TARGETS))

# A modparam module name with one of these is a regex matched against module names.
_REGEX_CHARS = re.compile(r"[|*+?()\[\]{}^$\\.]")


def names_module(pattern: str, module: str) -> bool:
    """Whether a modparam's module name (a name or a regular expression) names ``module``."""
    if pattern == module:
        return True
    if not _REGEX_CHARS.search(pattern):
        return False
    try:  # Kamailio anchors the regex on the whole module name
        return re.fullmatch(pattern, module) is not None
    except re.error:
        return False


@dataclass(frozen=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class ConfigError(ValueError):
    """A configuration error; ``str()`` is always ``FILE:LINE: message``."""

    def __init__(self, message: str, file: str, line: int, col: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        super().__init__(f"{file}:{line}: {message}")

    @classmethod
    def at(cls, loc: Location, message: str, col: int | None = None) -> ConfigError:
        return cls(message, loc.file, loc.line, col)

    @property
    def location(self) -> Location:
        return Location(self.file, self.line)


@dataclass
class ModParam:
    module: str
    name: str
    value: str | int
    loc: Location


@dataclass
class LoadModule:
    name: str
    path: str
    loc: Location


@dataclass
class Listen:
    proto: str  # "udp" | "tcp" | "tls" | "sctp" | "ws" | "any"
    host: str  # IPv6 addresses without the brackets
    port: int
    advertise: tuple[str, int] | None
    name: str | None
    loc: Location


# (proto, host, port) a router listens on when its config has no listen=
DEFAULT_LISTEN: tuple[str, str, int] = ("udp", "127.0.0.1", 5060)


@dataclass
class Config:
    path: str
    globals: dict[str, GlobalValue] = field(default_factory=dict)
    listen: list[Listen] = field(default_factory=list)
    # port 0 means "any port" (as Kamailio's alias without a port)
    aliases: list[tuple[str, int]] = field(default_factory=list)
    modules: list[LoadModule] = field(default_factory=list)
    modparams: list[ModParam] = field(default_factory=list)
    cfgengine: str | None = None
    defines: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    routes: list[Location] = field(default_factory=list)
    # where each global was (last) set, so conversions can name file:line
    global_locs: dict[str, Location] = field(default_factory=dict)
    cfgengine_loc: Location | None = None

    def get(self, name: str, default: GlobalValue | None = None) -> GlobalValue | None:
        """Value as set in the file, else ``default``, else Kamailio's default (if known)."""
        name = canonical_name(name)
        if name in self.globals:
            return self.globals[name]
        if default is not None:
            return default
        spec = KNOWN_GLOBALS.get(name)
        return spec.default if spec is not None else None

    def _bad(self, name: str, what: str, value: object) -> ConfigError:
        loc = self.global_locs.get(name, Location(self.path, 0))
        return ConfigError.at(loc, f"'{name}' expects {what}, got {value!r}")

    def get_int(self, name: str, default: int) -> int:
        name = canonical_name(name)
        value = self.get(name, default)
        if value is None:
            return default
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in BOOL_WORDS:
                return int(BOOL_WORDS[word])
            try:
                return int(word, 0)
            except ValueError:
                pass
        raise self._bad(name, "an integer", value)

    def get_bool(self, name: str, default: bool) -> bool:
        name = canonical_name(name)
        value = self.get(name, default)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str):
            word = value.strip().lower()
            if word in BOOL_WORDS:
                return BOOL_WORDS[word]
            try:
                return int(word, 0) != 0
            except ValueError:
                pass
        raise self._bad(name, "a boolean (yes/no/on/off/true/false/1/0)", value)

    def modparams_for(self, module: str) -> list[ModParam]:
        """Parameters for ``module`` in file order, including regex names like ``"tm|sl"``."""
        return [mp for mp in self.modparams if names_module(mp.module, module)]

    def module_names(self) -> list[str]:
        return [m.name for m in self.modules]
