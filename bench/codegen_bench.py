"""Codegen time on a synthetic but realistic spec set: 60 modules x 25 exports, all targets.

The YAML is written into a tmp dir (names, docs, examples and signatures shaped
like Kamailio's); the timing covers codegen's ``load`` (YAML + pydantic +
validation), rendering every target (``render_all``, timed per target) and
writing the tree into a tmp out dir, in-process: what ``kemi generate`` does.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

MODULES = (
    "acc auth auth_db avpops benchmark cfgutils corex dialog dialplan dispatcher diversion "
    "domain drouting evapi exec group htable imc ipops jansson jsonrpcc keepalive lcr "
    "mangler matrix mqueue msilo mtree nathelper path pdt permissions pike pipelimit "
    "presence pua ratelimit regex registrar rtimer rtpengine sanity sca sdpops secfilter "
    "siptrace siputils sqlops sst statistics textops tmrec topoh topos uac uac_redirect "
    "usrloc utils websocket"
).split()
VERBS = ("is", "has", "get", "set", "add", "del", "check", "reset", "update", "match",
         "load", "save", "lookup", "flush", "count", "apply", "route", "select")  # fmt: skip
NOUNS = ("rule", "attr", "entry", "profile", "record", "value", "group", "domain", "contact",
         "prefix", "header", "dst", "key", "bucket", "slot", "uri", "flag", "timer", "limit",
         "session", "table", "item", "alias", "gateway", "peer", "expires")  # fmt: skip
QUALIFIERS = ("", "", "", "_ex", "_id", "_by_name", "_mode", "_all", "_str", "_var")
RETS = ("int", "int", "int", "int", "bool", "xval", "xval", "none", "long")
PARAM_NAMES = {
    "str": ("name", "key", "value", "uri", "group", "table", "pattern", "avp", "hdr"),
    "int": ("mode", "flags", "index", "expires", "limit", "code", "id", "timeout"),
}


def _export(rng: random.Random, module: str, name: str) -> dict[str, Any]:
    nparams = rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4, 6))
    params = []
    for i in range(nparams):
        t = rng.choice(("str", "str", "int"))
        params.append({"name": f"{rng.choice(PARAM_NAMES[t])}{i}", "type": t,
                       "doc": f"The {t} {rng.choice(NOUNS)} to use ({t})."})  # fmt: skip
    args = ", ".join('"abc"' if p["type"] == "str" else "1" for p in params)
    impl = (
        {"c": f"ksr_{module}_{name}"}
        if rng.random() < 0.2
        else {"python": f"pykemi_bench_{module}.impl:{name}"}
    )
    return {
        "name": name,
        "ret": rng.choice(RETS),
        "params": params,
        "summary": f"{name.replace('_', ' ').capitalize()} in the {module} module.",
        "description": (
            f"Runs `{name}` on the current message. Returns a positive value on success, "
            "a negative one on failure (`-1` when the item is missing, `-2` on a bad "
            f"parameter).\n\nSee the `{module}` module documentation for the modparams "
            "that change its behaviour."
        ),
        "example": f'if KSR.{module}.{name}({args}) < 0 then\n  KSR.err("{name} failed\\n")\nend\n',
        "impl": impl,
    }


def write_specs(out: Path, modules: int = 60, per_module: int = 25, seed: int = 5060) -> int:
    """Write ``modules`` YAML spec files into ``out``; returns the number of exports."""
    import yaml

    rng = random.Random(seed)
    total = 0
    for m in range(modules):
        module = MODULES[m] if m < len(MODULES) else f"mod{m}"
        names: set[str] = set()
        while len(names) < per_module:
            names.add(f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}{rng.choice(QUALIFIERS)}")
        doc = {
            "module": module,
            "summary": f"The {module} module (synthetic benchmark spec).",
            "description": f"Functions of `{module}`, generated for the codegen benchmark.",
            "params": [
                {"name": "db_url", "type": "str", "default": "", "doc": "Database URL."},
                {"name": "timer_interval", "type": "int", "default": 60, "doc": "Seconds."},
            ],
            "exports": [_export(rng, module, n) for n in sorted(names)],
        }
        (out / f"{module}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
        total += per_module
    return total


def measure() -> dict[str, Any]:
    """Seconds for load, for rendering each target, and for writing the tree (one run)."""
    from codegen.generate import ROOT as CODEGEN_ROOT
    from codegen.generate import load
    from codegen.render import banner, environment, write_tree
    from codegen.targets import TARGETS

    assert CODEGEN_ROOT == ROOT
    with tempfile.TemporaryDirectory(prefix="kemi-codegen-bench-") as d:
        spec_dir, out = Path(d) / "spec", Path(d) / "out"
        spec_dir.mkdir()
        n = write_specs(spec_dir)
        t0 = time.perf_counter()
        spec = load([spec_dir], root=Path(d))
        t_load = time.perf_counter() - t0
        # render_all, one target at a time so the report can say where the time goes
        env = environment()
        files: dict[str, str] = {"__init__.py": banner("__init__.py", []) + '"""bench"""\n'}
        per_target: dict[str, float] = {}
        for name, emit in TARGETS.items():
            t = time.perf_counter()
            files.update(emit(spec, env))
            per_target[name] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        written = write_tree(out, files)
        t_write = time.perf_counter() - t
        return {
            "exports": n,
            "modules": len(spec.modules),
            "files_written": len(written),
            "load_s": round(t_load, 3),
            "render_s": round(sum(per_target.values()), 3),
            "write_s": round(t_write, 3),
            "total_s": round(time.perf_counter() - t0, 3),
            "render_per_target_s": per_target,
        }


if __name__ == "__main__":
    print(measure())
