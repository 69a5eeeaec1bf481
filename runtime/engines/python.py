"""Python engine (app_python / app_python3): the seed's class style and the function style.

Class style: the script defines ``mod_init()`` returning an object whose methods
``ksr_request_route(self, msg)`` ... are the callbacks; ``child_init(rank)`` runs
in every worker. Function style (Kamailio's app_python3s): module-level
``ksr_request_route(msg)`` (or without ``msg``) functions.
"""

from __future__ import annotations

import importlib
import inspect
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...kemi.targets import TARGETS
from ..core.context import MsgContext
from ..core.log import L_DBG, log
from ..dispatch import GENERATED
from ..extensions import shim_path
from . import pyhost
from .base import (
    DEFAULT_TIME_LIMIT_MS,
    Engine,
    KemiExit,
    ScriptError,
    log_exit,
    log_script_error,
    log_timeout,
)
from .pymsg import PyMsg, install_router_modules

SCRIPT_MODULE = "_kemi_script"
REARM = 0.05  # s: the timeout is raised again this often until the callback has returned


class RouteTimeout(BaseException):
    """Raised in a callback that overran kemi.route_time_limit (SIGALRM from ITIMER_REAL).

    A BaseException, like KemiExit, so a script's ``except Exception`` does not swallow it;
    it is raised again every REARM seconds while the callback keeps running.
    """


class PythonEngine(Engine):
    name = "python3"
    rpc_prefix = "app_python"

    def load(self, script: Path) -> None:
        self.script = script
        pyhost.bind(self.registry)
        install_router_modules()
        self._import_ksr()
        code = _compile_source(script)
        module = types.ModuleType(SCRIPT_MODULE)
        module.__file__ = str(script)
        sys.modules[SCRIPT_MODULE] = module
        try:
            exec(code, module.__dict__)  # the user's script, as importlib would run it
        except KemiExit:
            pass
        except BaseException as exc:
            raise ScriptError(f"error loading Python script:\n{_format(exc)}") from exc
        self.module = module
        init_name = str(self.params.get("mod_init_function", "mod_init"))
        init = getattr(module, init_name, None)
        self.handler: Any = None
        if callable(init):
            try:
                self.handler = init()
            except BaseException as exc:
                raise ScriptError(f"error in {init_name}():\n{_format(exc)}") from exc
            if self.handler is None:
                raise ScriptError(f"{script}: {init_name}() must return the handler object")
        self._cache: dict[str, tuple[Callable[..., Any], bool] | None] = {}
        self._depth = 0  # nested callbacks (KSR.route) share the outermost call's budget
        self._armed = False  # the SIGALRM handler raises only while this is set
        if not hasattr(self, "_limit"):
            self._limit = DEFAULT_TIME_LIMIT_MS / 1000.0

    def _import_ksr(self) -> None:
        path = str(GENERATED / "python")
        if path not in sys.path:
            sys.path.insert(0, path)
        for name in [m for m in sys.modules if m == "KSR" or m.startswith("KSR.")]:
            del sys.modules[name]  # bind module constants to this registry's slots
        try:
            ksr = importlib.import_module("KSR")
            for module in self.registry.loaded():
                # an out-of-tree module's KSR.<sub> files live in its own generated tree
                extra = str(shim_path(module, "python"))
                if extra not in ksr.__path__:
                    ksr.__path__.append(extra)
            importlib.import_module("KSR.x")
            subs: dict[str, None] = {}
            for module in self.registry.loaded():
                for e in self.registry.api.modules[module].exports:
                    if e.submodule:
                        subs.setdefault(e.submodule, None)
            for sub in subs:
                importlib.import_module("KSR." + _py_name(sub))
        except ImportError as exc:
            raise ScriptError(f"cannot import the generated KSR package: {exc}") from exc
        self.ksr = ksr

    def child_init(self, rank: int) -> int:
        name = str(self.params.get("child_init_method", "child_init"))
        target = getattr(self.handler, name, None) if self.handler is not None else None
        if target is None:
            target = getattr(self.module, name, None)
        if not callable(target):
            return 0
        try:
            result = target(rank)
        except BaseException as exc:  # noqa: BLE001
            log_script_error("app_python3", f"{name}({rank}) failed:\n{_format(exc)}")
            return -1
        if not isinstance(result, int):
            log_script_error("app_python3", f"{name}({rank}) must return an int, not {result!r}")
            return -1
        return result

    def _lookup(self, name: str) -> tuple[Callable[..., Any], bool] | None:
        if name in self._cache:
            return self._cache[name]
        owner = self.handler if self.handler is not None else self.module
        fn = getattr(owner, name, None)
        if fn is None and self.handler is not None:
            fn = getattr(self.module, name, None)
        entry: tuple[Callable[..., Any], bool] | None = None
        if callable(fn):
            entry = (fn, _takes_msg(fn))
        self._cache[name] = entry
        return entry

    def has(self, name: str) -> bool:
        return self._lookup(name) is not None

    def set_time_limit(self, ms: int) -> None:
        """Per-callback time budget (kemi.route_time_limit, ms); 0 disables it."""
        self._limit = max(0, ms) / 1000.0

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if not self._armed:
            return  # late signal after the callback returned: nothing to abort
        signal.setitimer(signal.ITIMER_REAL, REARM)
        raise RouteTimeout()

    def _arm(self) -> bool:
        """Start the budget of an outermost callback; False where signals cannot be used."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._prev_handler = signal.signal(signal.SIGALRM, self._on_alarm)
        self._armed_at = time.monotonic()
        self._armed = True
        self._prev_timer = signal.setitimer(signal.ITIMER_REAL, self._limit)
        return True

    def _disarm(self) -> None:
        """Stop the timer (after ``_armed`` was cleared) and give SIGALRM back."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._prev_handler)
        delay, interval = self._prev_timer
        if delay > 0:  # another alarm was pending (a test runner's timeout): restore it
            left = delay - (time.monotonic() - self._armed_at)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)

    def call(self, name: str, ctx: MsgContext, args: Sequence[Any]) -> int:
        entry = self._lookup(name)
        assert entry is not None
        fn, takes_msg = entry
        msg = PyMsg(ctx, self._modf)
        timed = False
        try:
            try:
                if self._limit > 0 and self._depth == 0:
                    timed = self._arm()
                self._depth += 1
                if takes_msg:
                    fn(msg, *args)
                else:
                    fn(*args)
            finally:
                self._depth -= 1
                if timed:
                    # no call before the flag is cleared: a late signal is then ignored
                    self._armed = False
                    self._disarm()
        except RouteTimeout:
            return log_timeout("app_python3", name, self._limit)
        except KemiExit:
            log_exit("app_python3")
            return 1
        except SystemExit:
            log(L_DBG, f"app_python3: {name} called sys.exit()", "kemi")
            return -1
        except Exception as exc:  # noqa: BLE001 - a script error must never kill the worker
            log_script_error("app_python3", f"error in {name}:\n{_format(exc)}")
            return -1
        finally:
            msg.invalidate()
        return 1

    def _modf(self, fname: str, *params: str) -> int:
        return pyhost.x_modf(fname, *params)

    def reload(self) -> None:
        if self.script is not None:
            self.load(self.script)


def _compile_source(script: Path) -> types.CodeType:
    """The script's code from its source only: no __pycache__ .pyc is read or written.

    importlib's file loader would run a .pyc planted beside a script in a directory another
    user can write; the file name stays the script's, for tracebacks and linecache.
    """
    try:
        source = script.read_bytes()
    except OSError as exc:
        raise ScriptError(f"cannot read Python script {script}: {exc.strerror}") from exc
    try:
        return compile(source, str(script), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        raise ScriptError(f"error loading Python script:\n{_format(exc)}") from exc


def _takes_msg(fn: Callable[..., Any]) -> bool:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        return True
    return len(params) >= 1


def _py_name(sub: str) -> str:
    """The generated module's name (Python's reserved words get a trailing _, as codegen
    writes it)."""
    return TARGETS["python"].escape(sub)


def _format(exc: BaseException) -> str:
    """Traceback limited to the script's frames (file:line), without runtime internals."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "".join(lines).rstrip()
