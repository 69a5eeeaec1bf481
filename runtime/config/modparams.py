"""Module parameters: the spec's defaults (api.json) overridden by the cfg's ``modparam`` lines.

The defaults (and which parameters may be repeated, ``multi``) are written once, in
``spec/<module>.yaml``; the runtime reads them from the KEMI model of generated/api.json
(built-in modules) or of an out-of-tree module's own api.json (pass the Router's ``Api``,
which holds both). Modules read their values through ``modules.params``; nothing else types
a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from ...kemi.model import WORKS, effect_phrase
from ..core.errors import StartupError
from ..dispatch import Api
from .model import Config, names_module

if TYPE_CHECKING:
    from ...kemi.model import Module
    from ..core.context import ProcessState

# where a Router keeps a module's values: proc.extra[PROC_KEY + module]
PROC_KEY = "modparams."


@cache
def _builtin_api() -> Api:
    return Api.load()


def _module(module: str, api: Api | None) -> Module:
    info = (api or _builtin_api()).modules.get(module)
    if info is None:
        raise KeyError(f"module '{module}' has no spec (it is not in api.json)")
    return info


def _unset(module: str, api: Api | None) -> dict[str, Any]:
    """The values before any modparam line: the defaults; an empty list for repeatable ones."""
    return {p.name: [] if p.multi else p.default for p in _module(module, api).params}


@cache
def _builtin_unset(module: str) -> Mapping[str, Any]:
    return _unset(module, None)


@cache
def _builtin_defaults(module: str) -> Mapping[str, int | str | None]:
    return _module(module, None).defaults()


def spec_defaults(module: str, api: Api | None = None) -> dict[str, int | str | None]:
    """A new dict of ``module``'s modparam defaults as its spec declares them (None: an
    out-of-tree spec gave none). ``api``: the model holding the module; by default the
    built-in generated/api.json."""
    return _module(module, api).defaults()


def collect(cfg: Config, module: str, api: Api | None = None) -> dict[str, Any]:
    """The spec defaults overridden by the cfg's modparams of ``module`` (in file order, module
    names as regular expressions: ``Config.modparams_for``).

    Parameters the spec marks ``multi`` may be repeated and become lists; int parameters
    given as strings are converted (the Router has already rejected non-integers).
    """
    declared = {p.name: p for p in _module(module, api).params}
    values = _unset(module, api)
    for mp in cfg.modparams_for(module):
        p = declared.get(mp.name)
        if p is None:
            continue
        value = mp.value
        if p.type == "int" and not isinstance(value, int):
            try:
                value = int(str(value), 0)
            except ValueError:
                continue  # the router reports the bad type
        if p.multi:
            values[mp.name].append(value)
        else:
            values[mp.name] = value
    return values


def or_default(values: Mapping[str, Any], module: str, name: str) -> Any:
    """``values[name]``, or the built-in spec's default where the value is 0 or empty (which
    the module cannot use)."""
    return values[name] or _builtin_defaults(module)[name]


def values(proc: ProcessState, module: str) -> Mapping[str, Any]:
    """The module's parameters as the Router loaded them, else (no Router: unit use) the
    built-in spec's values for a cfg without modparams. Read only."""
    loaded: Mapping[str, Any] | None = proc.extra.get(PROC_KEY + module)
    return _builtin_unset(module) if loaded is None else loaded


@dataclass(frozen=True)
class Accepts:
    """What a loaded module does with its modparams: ``params`` maps the names it knows to
    their effect (pykemi.kemi.model.EFFECT_PATTERN). Other names are an error when the module
    is ``strict`` (a spec is the module's whole truth, as Kamailio's export table), else they
    are accepted with no effect, ``why`` saying why."""

    params: Mapping[str, str]
    strict: bool = True
    why: str = ""


def check(cfg: Config, loaded: Mapping[str, Accepts]) -> list[str]:
    """One warning per (module, parameter) set in the cfg that has no effect (or only part of
    it) in pykemi, at the first line setting it. A name that no module it names knows is a
    StartupError naming the module, the parameter and the module's parameters, as in
    Kamailio (a regex module name needs one matching module that knows it)."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for mp in cfg.modparams:
        targets = [m for m in loaded if names_module(mp.module, m)]
        if targets and all(loaded[m].strict and mp.name not in loaded[m].params for m in targets):
            known = loaded[targets[0]].params
            allowed = ", ".join(known) if known else "none, it declares no parameters"
            raise StartupError(
                f"{mp.loc}: module '{targets[0]}' has no parameter '{mp.name}' "
                f"(allowed: {allowed})"
            )
        for module in targets:
            accepts = loaded[module]
            effect = accepts.params.get(mp.name)
            if effect == WORKS or (effect is None and accepts.strict):
                continue  # works, or a regex's other module knows it
            if (module, mp.name) in seen:
                continue
            seen.add((module, mp.name))
            what = effect_phrase(effect) if effect else f"has no effect in pykemi ({accepts.why})"
            out.append(f"{mp.loc}: modparam {module}.{mp.name} {what}")
    return out
