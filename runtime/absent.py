"""Kamailio 5.6 modules a config may load that pykemi accepts without implementing them.

``loadmodule`` of one of them is a start-up warning (not Kamailio's "module not found"
error) that says why it cannot matter here, or that it is not implemented yet, and which
``KSR`` functions Kamailio 5.6 exports from it and pykemi lacks (tests/test_param_effects.py
checks these lists against Kamailio's export tables in tests/fixtures/kamailio/). Their
modparams have no effect, each with its own warning.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Absent:
    why: str  # what the module does in Kamailio and why pykemi does without it
    missing: tuple[str, ...] = ()  # its KEMI exports in Kamailio 5.6: "KSR.uac.uac_auth"
    built_in: bool = False  # pykemi does the module's main job in its core

    def warning(self, name: str) -> str:
        """The text of the loadmodule warning (after ``FILE:LINE: ``)."""
        if self.built_in:
            head = f"module '{name}': {self.why}"
        else:
            head = f"module '{name}' accepted with no effect ({self.why})"
        if not self.missing:
            return head
        shown = ", ".join(self.missing[:4]) + (", ..." if len(self.missing) > 4 else "")
        return f"{head}; its {len(self.missing)} KSR functions are missing ({shown})"


def _ksr(sub: str, names: str) -> tuple[str, ...]:
    return tuple(f"KSR.{sub}.{n}" for n in names.split())


NOT_YET = "not implemented yet"

MODULES: dict[str, Absent] = {
    "jsonrpcs": Absent(
        "JSON-RPC transport (pykemi has its own control socket)",
        _ksr("jsonrpcs", "dispatch exec execx response"),
    ),
    "ctl": Absent("control socket (pykemi has its own control socket)"),
    "mi_rpc": Absent("MI commands"),
    "cfg_rpc": Absent("runtime cfg changes over RPC"),
    "debugger": Absent(
        "cfg tracing of native route blocks", _ksr("debugger", "dbg_pv_dump dbg_pv_dump_ex")
    ),
    "xhttp": Absent(f"HTTP handling, {NOT_YET}", _ksr("xhttp", "get_hu xhttp_reply")),
    "mi_fifo": Absent("MI FIFO"),
    "counters": Absent(f"statistics counters, {NOT_YET}", _ksr("counters", "add inc reset")),
    "uac": Absent(
        f"UAC functions, {NOT_YET}",
        _ksr(
            "uac",
            "uac_auth uac_auth_mode uac_reg_disable uac_reg_enable uac_reg_lookup "
            "uac_reg_lookup_uri uac_reg_refresh uac_reg_request_to uac_reg_status "
            "uac_replace_from uac_replace_from_uri uac_replace_to uac_replace_to_uri "
            "uac_req_send uac_restore_from uac_restore_to",
        ),
    ),
    "db_mysql": Absent("database driver"),
    "db_sqlite": Absent("database driver"),
    "db_postgres": Absent("database driver"),
    "db_text": Absent("database driver"),
    "pv": Absent(
        "pseudo-variables are built in (KSR.pv works)",
        _ksr(
            "pvx",
            "avp_get avp_gete avp_getw avp_is_null avp_rm avp_seti avp_sets evalx pv_var_to_xavp "
            "pv_xavi_print pv_xavp_print pv_xavp_to_var pv_xavu_print sbranch_append "
            "sbranch_reset sbranch_set_ruri shv_get shv_seti shv_sets var_get var_seti var_sets "
            "xavi_child_get xavi_child_gete xavi_child_getw xavi_child_is_null xavi_child_rm "
            "xavi_child_seti xavi_child_sets xavi_get xavi_get_keys xavi_getd xavi_getd_p1 "
            "xavi_gete xavi_getw xavi_is_null xavi_rm xavi_seti xavi_sets xavp_child_get "
            "xavp_child_gete xavp_child_getw xavp_child_is_null xavp_child_rm xavp_child_seti "
            "xavp_child_sets xavp_copy xavp_copy_dst xavp_get xavp_get_keys xavp_getd "
            "xavp_getd_p1 xavp_gete xavp_getw xavp_is_null xavp_params_explode "
            "xavp_params_implode xavp_rm xavp_seti xavp_sets xavp_slist_explode xavu_child_get "
            "xavu_child_gete xavu_child_getw xavu_child_is_null xavu_child_rm xavu_child_seti "
            "xavu_child_sets xavu_get xavu_gete xavu_getw xavu_is_null xavu_params_explode "
            "xavu_params_implode xavu_rm xavu_seti xavu_sets",
        ),
        built_in=True,
    ),
}
