"""No silent parameters: every core global and modparam either works or says it does not.

* each global the table (runtime/config/globals.py) declares working is read by the runtime,
  and each modparam the specs declare working by its module (tests/test_spec_contract.py);
* a parameter without (full) effect set in a cfg is ONE start-up warning naming it, at the
  cfg's file:line; a working one is not warned about;
* an unknown modparam name is a start-up error naming the module, the parameter and the
  module's parameters (Kamailio's), also for modules whose spec declared none before;
* modules accepted without effect, and unknown ones, say which of Kamailio's KSR functions
  they lack (pykemi.kemi.reference, checked against Kamailio 5.6's export tables in
  tests/fixtures/kamailio/);
* ``kemi check`` on Kamailio's basic KEMI config prints the parameters without effect, the
  modules pykemi does without, and nothing else;
* the coverage page (generated/docs/coverage/index.md) is rendered from that status data and
  Kamailio 5.6's export lists, and is in the docs nav.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from pykemi.codegen.render import environment
from pykemi.codegen.targets.docs import coverage_page
from pykemi.kemi.model import EFFECT_PATTERN, WORKS, Spec, effect_phrase
from pykemi.kemi.reference import kamailio_exports
from pykemi.kemi.reference import module_exports as reference_exports
from pykemi.runtime.absent import MODULES as ABSENT
from pykemi.runtime.config import KNOWN_GLOBALS, load_config
from pykemi.runtime.core.dns import DnsSettings
from pykemi.runtime.dispatch import Api

from .basickemiharness import defines, init_db, local_copy
from .harness import kemi, router
from .kamailio_ref import module_exports
from .test_spec_contract import write_cfg

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"


def runtime_strings() -> set[str]:
    """String constants of the runtime's sources, the globals table left out, plus the fields
    of DnsSettings (read by name: DnsSettings.from_cfg)."""
    found = {f.name for f in dataclasses.fields(DnsSettings)}
    for path in RUNTIME.rglob("*.py"):
        if path == RUNTIME / "config" / "globals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_global_has_a_status_and_each_working_one_is_read() -> None:
    bad = [g.name for g in KNOWN_GLOBALS.values() if not re.match(EFFECT_PATTERN, g.effect)]
    assert not bad, f"globals with an effect that is not works/none/'partial: how': {bad}"
    read = runtime_strings()
    unread = [g.name for g in KNOWN_GLOBALS.values() if g.effect != "none" and g.name not in read]
    assert not unread, f"globals declared working that the runtime never reads: {unread}"


def check(tmp_path: Path, modules: list[str], extra: str) -> tuple[int, list[str], Path]:
    """``kemi check`` of a Lua cfg (tests/test_spec_contract.write_cfg): exit status, the
    warning lines, the cfg."""
    cfg = write_cfg(tmp_path, modules, extra)
    run = kemi("check", str(cfg), cwd=tmp_path)
    warnings = [ln for ln in run.stderr.splitlines() if ln.startswith("warning: ")]
    return run.returncode, warnings if run.returncode == 0 else [run.stderr], cfg


def line_of(cfg: Path, text: str, nth: int = 1) -> int:
    lines = [i for i, ln in enumerate(cfg.read_text().splitlines(), 1) if text in ln]
    return lines[nth - 1]


def test_globals_without_effect_warn_once_where_set(tmp_path: Path) -> None:
    code, warnings, cfg = check(
        tmp_path, ["sl"], 'memdbg=5\nmemdbg=6\ntcp_no_connect=yes\nuser_agent_header="X"\n'
    )
    assert code == 0, warnings
    assert warnings == [
        f"warning: {cfg}:{line_of(cfg, 'memdbg', 2)}: core parameter 'memdbg' has no effect "
        "in pykemi",
        f"warning: {cfg}:{line_of(cfg, 'user_agent')}: core parameter 'user_agent_header' has "
        "no effect in pykemi",
    ]


def test_kemi_run_logs_each_warning_once_with_workers(tmp_path: Path) -> None:
    """The running router (main process and 2 workers) logs each no-effect warning once."""
    extra = 'listen=LISTEN\nchildren=2\nmemdbg=5\nmodparam("tm", "noisy_ctimer", 1)\n'
    cfg = write_cfg(tmp_path, ["sl", "tm"], extra)
    with router(cfg, tmp_path) as r:
        log = r.log
    memdbg = f"WARNING: <core> {cfg}:{line_of(cfg, 'memdbg')}: core parameter 'memdbg' has no"
    noisy = f"WARNING: <core> {cfg}:{line_of(cfg, 'noisy')}: modparam tm.noisy_ctimer has no"
    assert log.count(memdbg) == 1 and log.count(noisy) == 1, log
    assert log.count("has no effect in pykemi") == 2, log


def test_modparams_without_effect_warn_once_where_set(tmp_path: Path) -> None:
    extra = (
        'modparam("tm", "noisy_ctimer", 0)\nmodparam("tm", "noisy_ctimer", 1)\n'
        'modparam("tm", "fr_timer", 5000)\nmodparam("sl", "bind_tm", 0)\n'
        'modparam("htable", "db_url", "mysql://x")\nmodparam("app_lua", "log_mode", 1)\n'
    )
    code, warnings, cfg = check(tmp_path, ["sl", "tm", "htable"], extra)
    assert code == 0, warnings
    partial = effect_phrase(Api.load().modules["htable"].param("db_url").effect)
    assert warnings == [
        f"warning: {cfg}:{line_of(cfg, 'noisy_ctimer')}: modparam tm.noisy_ctimer has no "
        "effect in pykemi",
        f"warning: {cfg}:{line_of(cfg, 'bind_tm')}: modparam sl.bind_tm has no effect in pykemi",
        f"warning: {cfg}:{line_of(cfg, 'db_url')}: modparam htable.db_url {partial}",
        f"warning: {cfg}:{line_of(cfg, 'log_mode')}: modparam app_lua.log_mode has no effect "
        "in pykemi (the lua engine reads only load, script_name, version)",
    ]


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("textops", "none, it declares no parameters"),
        ("sl", "default_code, default_reason, bind_tm, rich_redirect, event_callback_fl_ack, "
         "event_callback_lres_sent"),
    ],
)  # fmt: skip
def test_unknown_modparam_is_a_startup_error(tmp_path: Path, module: str, allowed: str) -> None:
    code, out, cfg = check(tmp_path, [module], f'modparam("{module}", "no_such", 1)\n')
    assert code == 1, out
    line = line_of(cfg, "no_such")
    assert f"{cfg}:{line}: module '{module}' has no parameter 'no_such' (allowed: {allowed})" in (
        out[0]
    )


def test_regex_modparam_needs_one_module_that_knows_it(tmp_path: Path) -> None:
    extra = 'modparam("nathelper|registrar", "received_avp", "$avp(R)")\n'
    code, warnings, _ = check(tmp_path, ["nathelper", "usrloc", "registrar"], extra)
    assert code == 0 and warnings == [], warnings
    code, out, _ = check(tmp_path, ["tm", "sl"], 'modparam("tm|sl", "fr_timerx", 1)\n')
    assert code == 1 and "module 'tm' has no parameter 'fr_timerx'" in out[0], out


def test_the_runtime_reference_is_kamailios_export_tables() -> None:
    """pykemi.kemi.reference (shipped) holds exactly the exports of the fixture, per module."""
    modules = {m for m in kamailio_exports()} | {"sl", "uac", "no_such_module"}
    for module in modules:
        assert list(reference_exports(module)) == module_exports(module), module


@pytest.mark.parametrize(
    "module", sorted(m for m in (*ABSENT, "dispatcher", "dialog") if module_exports(m))
)
def test_absent_modules_name_the_ksr_functions_they_lack(module: str, tmp_path: Path) -> None:
    kamailio = module_exports(module)
    code, warnings, cfg = check(tmp_path, [module], "")
    assert code == 0, warnings
    (line,) = [w for w in warnings if f"module '{module}'" in w]
    assert line.startswith(f"warning: {cfg}:{line_of(cfg, module + '.so')}: "), line
    what = "missing" if module in ABSENT else "not available"
    assert f"its {len(kamailio)} KSR functions are {what} ({kamailio[0]}," in line, line


# -- kemi check on Kamailio's basic KEMI config ----------------------------------------------

# the parameters of examples/basic-kemi/kamailio-basic-kemi.cfg (WITH_CFGLUA and the usual
# defines) that pykemi does not honour fully, as the status data says today
BASIC_NO_EFFECT = [
    "log_stderror", "memdbg", "memlog", "log_prefix", "latency_cfg_log", "latency_log",
    "latency_limit_action", "latency_limit_db", "log_facility", "port",
    "jsonrpcs.pretty_format", "acc.report_ack", "acc.detect_direction", "usrloc.preload",
    "nathelper.natping_interval", "nathelper.ping_nated_only", "nathelper.sipping_bflag",
    "nathelper.sipping_from", "usrloc.nat_bflag",
]  # fmt: skip


def expected_basic_lines(cfg_path: Path, defs: dict[str, str]) -> list[str]:
    """What kemi check must print, derived from the status data: the globals set without
    (full) effect, the modules pykemi does without, the modparams without (full) effect."""
    cfg = load_config(cfg_path, defines=defs)
    api = Api.load()
    out: list[str] = []
    for name in cfg.globals:
        effect = KNOWN_GLOBALS[name].effect
        if effect != WORKS:
            out.append(f"{cfg.global_locs[name]}: core parameter {name!r} {effect_phrase(effect)}")
    for lm in cfg.modules:
        if lm.name in ABSENT:
            out.append(f"{lm.loc}: {ABSENT[lm.name].warning(lm.name)}")
    for mp in cfg.modparams:
        for module in (m.name for m in cfg.modules if re.fullmatch(mp.module, m.name)):
            if module in ABSENT:
                why = f"module '{module}' is accepted with no effect"
                out.append(f"{mp.loc}: modparam {module}.{mp.name} has no effect in pykemi ({why})")
            elif module in api.modules and not api.modules[module].param(mp.name).works:
                effect = api.modules[module].param(mp.name).effect
                out.append(f"{mp.loc}: modparam {module}.{mp.name} {effect_phrase(effect)}")
    return out


def test_kemi_check_basic_kemi_lists_the_parameters_without_effect(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kamailio.db"
    init_db(url)
    cfg = local_copy(tmp_path, "# no local settings\n")
    defs = defines("lua", url, LISTEN="udp:127.0.0.1:5060")
    args = [a for k, v in defs.items() for a in ("-A", f"{k}={v}")]
    run = kemi("check", str(cfg), *args, cwd=cfg.parent)
    assert run.returncode == 0, run.stderr
    expected = expected_basic_lines(cfg, defs)
    # nothing else: no log lines, no other warning, each warning once
    assert run.stderr.splitlines() == [f"warning: {w}" for w in expected] + [f"{cfg}: ok"]
    named = [re.search(r"(?:core parameter '|modparam )([\w.]+)", w) for w in expected]
    assert [m.group(1) for m in named if m] == BASIC_NO_EFFECT


# -- the coverage page (generated/docs/coverage/index.md) ------------------------------------

COVERAGE = ROOT / "generated" / "docs" / "coverage" / "index.md"


def coverage_sections(text: str) -> dict[str, str]:
    """``{heading: body}`` of the page's ``## `` sections."""
    parts = re.split(r"(?m)^## (\S+).*\n", text)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_coverage_page_is_generated_from_the_status_data() -> None:
    spec, _ = Spec.load(ROOT / "generated" / "api.json")
    assert coverage_page(spec, environment()) == COVERAGE.read_text(encoding="utf-8")
    sections = coverage_sections(COVERAGE.read_text(encoding="utf-8"))
    for m in spec.modules:
        body = sections[m.name]
        for name in module_exports(m.name):  # each Kamailio export: implemented, partial or missing
            assert f"`{name}`" in body, f"{m.name}: {name}"
        for p in m.params:  # each parameter under its effect
            heading = {"works": "Parameters that work", "none": "Parameters without effect"}.get(
                p.effect, "Parameters with part of their effect"
            )
            block = body.split(f"**{heading}**", 1)[1].split("**", 1)[0]
            assert f"`{p.name}`" in block, f"{m.name}.{p.name}: {p.effect}"
    for module in ABSENT:
        assert all(f"`{n}`" in sections[module] for n in module_exports(module)), module
    core = sections["Core"]
    for g in KNOWN_GLOBALS.values():
        heading = {"works": "**Work**", "none": "**No effect**"}.get(g.effect, "**Partial**")
        assert f"`{g.name}`" in core.split(heading, 1)[1].split("**", 1)[0], g.name
    assert "api/coverage/index.md" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
