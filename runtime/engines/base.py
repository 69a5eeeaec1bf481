"""The Engine interface, script errors, and what every engine shares (exit, modf)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cdispatch import release_buffers
from ..core.context import CURRENT, MsgContext, ProcessState
from ..core.log import L_DBG, L_ERR, log
from ..dispatch import Invoker, Registry

# global kemi.route_time_limit (ms): the budget of one route callback; the server sets it
DEFAULT_TIME_LIMIT_MS = 2000
EXIT_MARKER = "~~ksr~exit~~"
# the engines' foreign-language glue (.lua, .js, .nut, .rb, .c, .h) lives beside them
GLUE_DIR = Path(__file__).resolve().parent


def glue_source(name: str) -> str:
    """The text of one glue file of GLUE_DIR (real files, so linters and editors see them)."""
    return (GLUE_DIR / name).read_text(encoding="utf-8")


class KemiExit(BaseException):
    """Raised by KSR.x.exit()/drop() in Python: a BaseException, so `except Exception` in a
    script does not swallow it."""


class ScriptError(Exception):
    """The script cannot be loaded or lacks a required callback (startup error)."""


class Engine(ABC):
    """A KEMI interpreter: loads one script, runs its callbacks on messages."""

    name = ""  # cfgengine identifier
    rpc_prefix = ""  # app_lua, app_python, ...

    def __init__(self, registry: Registry, proc: ProcessState, params: dict[str, Any]) -> None:
        self.registry = registry
        self.proc = proc
        self.params = params
        self.script: Path | None = None
        self.version = 0  # bumped by reload RPC

    @abstractmethod
    def load(self, script: Path) -> None:
        """Load the script; raise ScriptError with file:line on failure."""

    @abstractmethod
    def has(self, name: str) -> bool:
        """Is a callback of this name defined?"""

    @abstractmethod
    def call(self, name: str, ctx: MsgContext, args: Sequence[Any]) -> int:
        """Run callback ``name``; 1 normally (also after KSR.x.exit), -1 on a script error."""

    def child_init(self, rank: int) -> int:
        return 0

    def reload(self) -> None:
        if self.script is not None:
            self.load(self.script)

    def run(self, name: str, ctx: MsgContext, *args: Any, required: bool = False) -> int:
        """Run a route callback with ``ctx`` published as the current message."""
        if not self.has(name):
            if required:
                log(L_ERR, f"{self.name}: route callback '{name}' is not defined", "kemi")
                return -1
            return 1
        prev = CURRENT.ctx
        CURRENT.ctx = ctx
        try:
            return self.call(name, ctx, args)
        finally:
            CURRENT.ctx = prev
            release_buffers()  # what C exports were handed for this callback

    def require(self, name: str) -> None:
        if not self.has(name):
            raise ScriptError(f"{self.script}: required function '{name}' is not defined")


def modf(registry: Registry, view: list[Invoker], fname: str, params: Sequence[Any]) -> int:
    """KSR.x.modf: run an export by its native (cfg) name with string parameters."""
    if len(params) > 6:
        log(L_ERR, f"modf: too many parameters for '{fname}'", "kemi")
        return -1
    text = [
        p.decode("utf-8", "surrogateescape") if isinstance(p, bytes) else str(p) for p in params
    ]
    for slot, e in enumerate(registry.exports):
        if fname not in (e.name, e.kamailio_name) or len(e.params) != len(text):
            continue
        try:
            args: list[int | str | bytes] = [
                int(v) if t == "int" else v for v, t in zip(text, e.param_types, strict=True)
            ]
        except ValueError:
            log(L_ERR, f"modf: '{fname}' expects ({', '.join(e.param_types)})", "kemi")
            return -1
        inv = view[slot]
        if view is registry.view("bytes"):
            args = [a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a for a in args]
        result = inv(*args)
        if isinstance(result, bool):
            return 1 if result else -1
        return int(result) if isinstance(result, int) else 1
    log(L_ERR, f"modf: function '{fname}' is not available", "kemi")
    return -1


def log_script_error(engine: str, text: str) -> None:
    log(L_ERR, f"{engine}: {text}", "kemi")


def log_timeout(engine: str, name: str, limit_s: float) -> int:
    """The route-time-budget abort line (docs/reliability.md); the callback's result, -1."""
    log_script_error(
        engine,
        f"{name} aborted: route time limit of {limit_s * 1000:g} ms exceeded "
        "(kemi.route_time_limit)",
    )
    return -1


def log_exit(engine: str) -> None:
    log(L_DBG, f"{engine}: script exit", "kemi")
