"""From a parsed config to a ready router: modules, slot table, engine; message handling.

``Router.handle`` is the per-message path shared by every transport: parse,
build the context, run the route callback, forward replies statelessly.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..kemi.contract import CORE_MODULE, DEFAULT_CAPACITY
from ..kemi.model import WORKS
from ..kemi.model import ModParam as SpecParam
from ..kemi.targets import ENGINE_TARGETS
from . import extensions
from .absent import MODULES as ABSENT
from .absent import not_implemented
from .cdispatch import set_modparam_ints
from .config.model import DEFAULT_LISTEN, Config, ModParam
from .config.modparams import PROC_KEY, Accepts, check, collect
from .core.context import (
    CORE_ONREPLY_ROUTE,
    REQUEST_ROUTE,
    Address,
    MsgContext,
    ProcessState,
    SendFn,
)
from .core.dns import DnsCache, DnsSettings
from .core.events import callback_name, faked_context, msg_received, run_event
from .core.log import L_DBG, L_ERR, L_WARN, LOG, Repeated, clip, error_kind, log
from .core.onsend import RUNNER as ONSEND_RUNNER
from .core.onsend import OnsendRunner, onsend_ok
from .core.stats import Stats
from .dispatch import Api, Registry, StartupError
from .engines.base import Engine, ScriptError
from .modules.sl import send_reply
from .modules.unimplemented import startup_warnings
from .sip.message import SipMessage, SipParseError, parse_message
from .sip.reply import relayed_reply_address

# cfgengine identifier -> (engine module names as loaded by loadmodule, factory path),
# from each language's Target (pykemi.kemi.targets)
ENGINES: dict[str, tuple[tuple[str, ...], str]] = {
    ident: (t.engines[ident], t.engine_factory) for ident, t in ENGINE_TARGETS.items()
}
PLANNED_ENGINES: dict[str, str] = {}

# modparams of the engine modules that pykemi reads (others are accepted with no effect): the
# script (Router._make_engine), lupa's Lua version (runtime/engines/lua.py), the Python
# engine's entry points (runtime/engines/python.py)
ENGINE_PARAMS: dict[str, tuple[str, ...]] = {
    "lua": ("load", "script_name", "version"),
    "python": ("load", "script_name", "mod_init_function", "child_init_method"),
    "python3": ("load", "script_name", "mod_init_function", "child_init_method"),
}
ENGINE_MODULES = {m for mods, _ in ENGINES.values() for m in mods} | set(PLANNED_ENGINES.values())
# modules whose state lives in one worker (transactions, dialogs)
AFFINITY_MODULES = ("tm", "tmx", "dialog")
_BAD_SIP = Repeated(L_WARN)  # "dropping bad SIP" lines, aggregated per kind of error
# called with each new Router (modules register reply hooks, timers, RPC methods)
ROUTER_INIT_HOOKS: list[Callable[[Router], None]] = []


def _import(path: str) -> Any:
    mod, _, attr = path.partition(":")
    return getattr(importlib.import_module(mod), attr)


class Router:
    """One router configuration; forked workers each use their own copy after start."""

    def __init__(self, cfg: Config, api: Api | None = None, log_warnings: bool = True) -> None:
        """``log_warnings=False``: the start-up warnings are only kept in ``warnings`` (kemi
        check prints them itself)."""
        self.cfg = cfg
        self.api = api or Api.load()
        self.log_warnings = log_warnings
        self.warnings: list[str] = []
        LOG.level = cfg.get_int("debug", 0)
        for text in cfg.warnings:
            self._warn(text)
        self.proc = ProcessState(defines=dict(cfg.defines), debug=LOG.level)
        self.proc.listen = [(lst.proto, lst.host, lst.port) for lst in cfg.listen] or [
            DEFAULT_LISTEN
        ]
        self.proc.aliases = list(cfg.aliases)
        self.proc.reply_to_via = cfg.get_bool("reply_to_via", False)
        self.proc.dns = DnsCache(DnsSettings.from_cfg(cfg))
        server_header = cfg.get("server_header")
        if isinstance(server_header, str) and server_header:
            self.proc.server_header = server_header
        capacity = cfg.get_int("kemi.slot_capacity", DEFAULT_CAPACITY)
        self.registry = Registry(self.api, capacity, send_reply=send_reply)
        self.extensions: list[str] = []  # out-of-tree modules loaded, in loadmodule order
        self.modparams = self._modparams()
        self._load_modules()
        # a received reply is offered to these after ksr_reply_route (tm); True = consumed
        self.reply_hooks: list[Callable[[MsgContext], bool]] = []
        # run before each message in a worker (script reload)
        self.before_message_hooks: list[Callable[[], None]] = []
        self.control_factory: Callable[[Any], Any] | None = None
        # counters shared by main (row 0) and workers (rows 1..children); RPC methods of
        # modules ("tm.stats"), served by the control socket of the main process
        self.stats = Stats(max(1, cfg.get_int("children", 8)) + 1)
        self.rpc_methods: dict[str, Callable[[list[Any]], Any]] = {}
        self.engine = self._make_engine()
        name = cfg.get("kemi.onsend_route_callback")
        self.proc.extra[ONSEND_RUNNER] = OnsendRunner(
            str(name or ""), self.engine.has, self._run_onsend
        )
        self._ids = itertools.count(1)
        # core event routes (docs/callbacks.md); received_route_mode enables core:msg-received
        self.event_callback = callback_name(cfg.get("kemi.event_route_callback"))
        self.pre_routing_callback = callback_name(cfg.get("kemi.pre_routing_callback"))
        self.received_callback = (
            callback_name(cfg.get("kemi.received_route_callback"))
            if cfg.get_int("received_route_mode", 0)
            else ""
        )
        for hook in list(ROUTER_INIT_HOOKS):
            hook(self)
        for text in startup_warnings(self):  # what the spec marks "not implemented" and is used
            self._warn(text)

    @property
    def needs_affinity(self) -> bool:
        """Stateful modules keep per-worker state: messages must reach their owner."""
        return any(m in self.registry.bases for m in AFFINITY_MODULES)

    def before_message(self) -> None:
        for hook in self.before_message_hooks:
            hook()

    # -- startup ----------------------------------------------------------------------------

    def _modparams(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for mp in self.cfg.modparams:
            out.setdefault(mp.module, {})[mp.name] = mp.value
        return out

    def _load_modules(self) -> None:
        self.registry.load_module(CORE_MODULE)
        accepts: dict[str, Accepts] = {}
        for lm in self.cfg.modules:
            name = lm.name
            if name in self.api.modules:
                self.registry.load_module(name)
                accepts[name] = self._spec_accepts(name)
            elif name in ENGINE_MODULES:
                accepts[name] = self._engine_accepts(name)
            elif self._load_extension(name):
                accepts[name] = self._spec_accepts(name)
            elif name in ABSENT:
                self._warn(f"{lm.loc}: {ABSENT[name].warning(name)}")
                accepts[name] = Accepts(
                    {}, strict=False, why=f"module '{name}' is accepted with no effect"
                )
            else:
                self._warn(f"{lm.loc}: {not_implemented(name)}")
                accepts[name] = Accepts(
                    {}, strict=False, why=f"module '{name}' is not implemented in pykemi yet"
                )
        for text in check(self.cfg, accepts):
            self._warn(text)
        ints: dict[tuple[str, str], int] = {}
        for module in self.registry.bases:  # C modules read the spec defaults the cfg overrides
            values = collect(self.cfg, module, api=self.api)
            self.proc.extra[PROC_KEY + module] = values  # Python modules: modparams.values()
            ints.update({(module, k): v for k, v in values.items() if isinstance(v, int)})
        set_modparam_ints(ints)

    def _spec_accepts(self, module: str) -> Accepts:
        """A module with a spec: its modparams are its declared ones (the values' types are
        checked here)."""
        declared = {p.name: p for p in self.api.modules[module].params}
        for mp in self.cfg.modparams_for(module):
            if mp.name in declared:
                _check_type(mp, declared[mp.name])
        return Accepts({name: p.effect for name, p in declared.items()})

    def _engine_accepts(self, module: str) -> Accepts:
        ident = next((i for i, (mods, _) in ENGINES.items() if module in mods), module)
        read = ENGINE_PARAMS.get(ident, ("load", "script_name"))
        why = f"the {ident} engine reads only {', '.join(read)}"
        return Accepts(dict.fromkeys(read, WORKS), strict=False, why=why)

    def _load_extension(self, name: str) -> bool:
        """Load an installed out-of-tree module (runtime/extensions.py); False if none."""
        ext = extensions.load(name)
        if ext is None:
            return False
        self.api = self.api.merged(ext.api)
        self.registry.api = self.api
        if ext.c_library is not None and ext.c_library not in self.registry.c_libs:
            self.registry.c_libs.append(ext.c_library)
        self.proc.extra[PROC_KEY + name] = collect(self.cfg, name, api=self.api)
        self.registry.load_module(name)
        self.extensions.append(name)
        return True

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        if self.log_warnings:
            log(L_WARN, text, "core")

    def _make_engine(self) -> Engine:
        ident = self.cfg.cfgengine
        if ident is None:
            raise StartupError(f"{self.cfg.path}: no cfgengine: pykemi runs KEMI scripts only")
        if ident in PLANNED_ENGINES:
            raise StartupError(
                f'{self.cfg.cfgengine_loc or self.cfg.path}: cfgengine "{ident}" '
                f"({PLANNED_ENGINES[ident]}) is not available yet; use lua or python"
            )
        if ident not in ENGINES:
            raise StartupError(f'{self.cfg.path}: unknown cfgengine "{ident}"')
        modules, factory = ENGINES[ident]
        loaded = [lm.name for lm in self.cfg.modules]
        module = next((m for m in modules if m in loaded), None)
        if module is None:
            raise StartupError(
                f'{self.cfg.cfgengine_loc or self.cfg.path}: cfgengine "{ident}" needs '
                f'loadmodule "{modules[0]}.so"'
            )
        params = dict(self.modparams.get(module, {}))
        script = params.get("load") or params.get("script_name")
        if not script:
            raise StartupError(
                f'{self.cfg.path}: modparam("{module}", "load", "/path/to/script") is missing'
            )
        path = Path(str(script))
        if not path.is_absolute():
            path = (Path(self.cfg.path).parent / path).resolve()
        if not path.is_file():
            raise StartupError(f"{self.cfg.path}: {module} script not found: {path}")
        engine: Engine = _import(factory)(self.registry, self.proc, params)
        try:
            engine.load(path)
            engine.require("ksr_request_route")
        except ScriptError as exc:
            raise StartupError(str(exc)) from exc
        self.proc.run_route = self._run_route
        return engine

    def _run_route(self, name: str, ctx: MsgContext, *args: Any) -> int:
        return self.engine.run(name, ctx, *args)

    def _run_onsend(self, name: str, ctx: MsgContext) -> int:
        try:
            return self.engine.run(name, ctx)
        except Exception as exc:  # noqa: BLE001 - a failing callback must not lose the send
            log(L_ERR, f"onsend callback {name} failed: {exc!r}")
            return -1

    # -- per message --------------------------------------------------------------------------

    def handle(self, data: bytes, src: Address, dst: Address, proto: str, send: SendFn) -> None:
        """Process one received SIP message; never raises."""
        if self.received_callback and not msg_received(
            self.proc, self.received_callback, data, src, dst, proto
        ):
            return
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            if not data.strip():
                log(L_DBG, f"dropping bad SIP from {src}: {exc}")
                return
            # short excerpt, one line per kind of error and interval (junk floods, security L3)
            why = clip(str(exc))
            _BAD_SIP.log(
                f"dropping bad SIP from {src}: {why} ({{n}} such message(s))", error_kind(why)
            )
            if self.event_callback:
                evctx = faked_context(self.proc, src, dst, proto)
                run_event(self.proc, self.event_callback, "core:receive-parse-error", evctx)
            return
        ctx = MsgContext(msg, src, dst, proto, send, self.proc, msg_id=next(self._ids))
        try:
            if self.pre_routing_callback and self._pre_routing_dropped(ctx):
                return
            if msg.is_request:
                ctx.route_type = REQUEST_ROUTE
                self.engine.run("ksr_request_route", ctx, required=True)
            else:
                ctx.route_type = CORE_ONREPLY_ROUTE
                self.engine.run(self.reply_callback, ctx)
                if ctx.drop:
                    return
                for hook in self.reply_hooks:
                    if hook(ctx):
                        return
                self.forward_reply(ctx)
        except Exception as exc:  # noqa: BLE001 - a worker must survive any message
            log(L_ERR, f"error processing message from {src}: {exc!r}")

    def _pre_routing_dropped(self, ctx: MsgContext) -> bool:
        """core:pre-routing: the callback sees the parsed message first; a drop ends it."""
        done = run_event(
            self.proc, self.pre_routing_callback, "core:pre-routing", ctx, REQUEST_ROUTE
        )
        if done is None or not done.drop:
            return False
        log(L_DBG, "core:pre-routing dropped the message")
        return True

    @property
    def reply_callback(self) -> str:
        name = self.cfg.get("kemi.reply_route_callback")
        return str(name) if isinstance(name, str) and name else "ksr_reply_route"

    def forward_reply(self, ctx: MsgContext) -> None:
        """Stateless reply forwarding: remove our Via, send to the next one."""
        msg: SipMessage = ctx.msg
        vias = msg.vias
        if len(vias) < 2:
            return
        top = vias[0]
        if not self.is_local(top.host, top.port):
            log(L_DBG, f"reply with foreign top Via {top.host}: not forwarded")
            return
        addr = relayed_reply_address(msg, self.proc.dns.peek)
        if addr is None:
            return
        msg.remove_top_via()
        data = msg.to_bytes()
        if not onsend_ok(ctx, ctx.proto, addr, data):  # as Kamailio's forward_reply()
            log(L_ERR, f"reply to {addr[0]}:{addr[1]} dropped (onsend_route)")
            return
        ctx.send(data, addr)

    def is_local(self, host: str, port: int | None) -> bool:
        host = host.strip("[]")
        for _proto, lhost, lport in self.proc.listen:
            if host == lhost and (port is None or port == lport):
                return True
        return any(host == a and (p == 0 or port in (None, p)) for a, p in self.proc.aliases)


def _check_type(mp: ModParam, spec: SpecParam) -> None:
    if spec.type == "int" and not isinstance(mp.value, int):
        try:
            mp.value = int(str(mp.value), 0)
        except ValueError:
            raise StartupError(
                f"{mp.loc}: modparam {mp.module}.{mp.name} expects an integer, got {mp.value!r}"
            ) from None
    elif spec.type == "str" and not isinstance(mp.value, str):
        mp.value = str(mp.value)
