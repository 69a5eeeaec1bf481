"""Kamailio 5.6 modules a config may load that pykemi accepts without implementing them.

``loadmodule`` of one of them is a start-up warning (not Kamailio's "module not found"
error) that says why it cannot matter here, or that it is not implemented yet, and which
``KSR`` functions Kamailio 5.6 exports from it and pykemi lacks (pykemi.kemi.reference).
Their modparams have no effect, each with its own warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kemi.reference import module_exports

NOT_YET = "not implemented yet"


@dataclass(frozen=True)
class Absent:
    why: str  # what the module does in Kamailio and why pykemi does without it
    built_in: bool = False  # pykemi does the module's main job in its core

    def warning(self, name: str) -> str:
        """The text of the loadmodule warning (after ``FILE:LINE: ``)."""
        if self.built_in:
            head = f"module '{name}': {self.why}"
        else:
            head = f"module '{name}' accepted with no effect ({self.why})"
        return head + _missing(name, "missing")


def not_implemented(name: str) -> str:
    """The loadmodule warning of a module pykemi does not know at all."""
    return f"module '{name}' is not implemented in pykemi yet" + (
        _missing(name, "not available") or "; its KSR functions are not available"
    )


def _missing(name: str, what: str) -> str:
    """``"; its 16 KSR functions are <what> (KSR.uac.uac_auth, ...)"``, or ``""``."""
    missing = module_exports(name)
    if not missing:
        return ""
    shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
    return f"; its {len(missing)} KSR functions are {what} ({shown})"


MODULES: dict[str, Absent] = {
    "jsonrpcs": Absent("JSON-RPC transport (pykemi has its own control socket)"),
    "ctl": Absent("control socket (pykemi has its own control socket)"),
    "mi_rpc": Absent("MI commands"),
    "cfg_rpc": Absent("runtime cfg changes over RPC"),
    "debugger": Absent("cfg tracing of native route blocks"),
    "xhttp": Absent(f"HTTP handling, {NOT_YET}"),
    "mi_fifo": Absent("MI FIFO"),
    "counters": Absent(f"statistics counters, {NOT_YET}"),
    "uac": Absent(f"UAC functions, {NOT_YET}"),
    "db_mysql": Absent("database driver"),
    "db_sqlite": Absent("database driver"),
    "db_postgres": Absent("database driver"),
    "db_text": Absent("database driver"),
    # KSR.pv is core in Kamailio too (pykemi's core spec); the pv module adds KSR.pvx
    "pv": Absent("pseudo-variables are built in (KSR.pv works)", built_in=True),
}
