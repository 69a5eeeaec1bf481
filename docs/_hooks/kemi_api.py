"""mkdocs hook: publish generated/docs/ as the site's api/ pages, render the globals table.

- ``on_files`` adds every page of generated/docs/ as ``api/<page>`` (nothing is copied
  into docs/, so no generated copy can go stale or be committed by mistake; a copy
  placed in docs/api/ by hand takes precedence);
- ``on_config`` completes the nav's "API reference" section with one entry per module
  page, so a new spec appears in the nav without editing mkdocs.yml;
- ``on_page_markdown`` replaces ``<!-- kemi:globals-table -->`` with the table of core
  parameters the config reader knows (runtime/config/globals.py), each with its effect in
  pykemi (works, no effect, or partial and how).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
GENERATED_DOCS = ROOT / "generated" / "docs"
API = "api"
API_SECTION = "API reference"
GLOBALS_MARK = "<!-- kemi:globals-table -->"


def api_pages() -> list[str]:
    """Pages of generated/docs/ relative to it (``sl.md``, ``modparams/index.md``)."""
    return sorted(p.relative_to(GENERATED_DOCS).as_posix() for p in GENERATED_DOCS.rglob("*.md"))


def _nav_target(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        value = next(iter(item.values()))
        return value if isinstance(value, str) else None
    return None


def _all_targets(nav: Any) -> set[str]:
    out: set[str] = set()
    for item in nav or []:
        target = _nav_target(item)
        if target is not None:
            out.add(target)
        elif isinstance(item, dict):
            for value in item.values():
                out |= _all_targets(value)
    return out


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    config.watch.append(str(GENERATED_DOCS))
    listed = _all_targets(config.nav)
    for item in config.nav or []:
        if isinstance(item, dict) and isinstance(item.get(API_SECTION), list):
            section = item[API_SECTION]
            for rel in api_pages():
                uri = f"{API}/{rel}"
                if uri not in listed and "/" not in rel:  # module pages (sub-folders are listed)
                    section.append({Path(rel).stem: uri})
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for rel in api_pages():
        uri = f"{API}/{rel}"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(GENERATED_DOCS / rel)))
    return files


def _load_globals() -> ModuleType:
    """runtime/config/globals.py as the package's module (it imports pykemi.kemi's model;
    the docs session installs pykemi)."""
    return importlib.import_module("pykemi.runtime.config.globals")


def globals_table() -> str:
    """Markdown table of the core parameters known to the config reader."""
    g = _load_globals()
    aliases: dict[str, list[str]] = {}
    for alias, name in g.ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    rows = ["| parameter | type | default | in pykemi | notes |", "|---|---|---|---|---|"]
    for name, spec in g.KNOWN_GLOBALS.items():
        default = "-" if spec.default is None else f"`{spec.default!r}`".replace("'", '"')
        if isinstance(spec.default, bool):
            default = "`yes`" if spec.default else "`no`"
        notes = [spec.doc] if spec.doc else []
        if spec.multi:
            notes.append("repeatable")
        if name in aliases:
            notes.append("also spelled " + ", ".join(f"`{a}`" for a in sorted(aliases[name])))
        cell = "; ".join(notes).replace("|", "\\|")
        effect = {"works": "works", "none": "no effect"}.get(spec.effect, spec.effect)
        effect = effect.replace("|", "\\|")
        rows.append(f"| `{name}` | {spec.type.value} | {default} | {effect} | {cell} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if GLOBALS_MARK in markdown:
        markdown = markdown.replace(GLOBALS_MARK, globals_table())
    return markdown
