"""Rules checked on the model before any template runs.

Each rule gets the loaded files and the resolved exports and returns the
errors it finds, each naming file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..kemi.contract import PRIVATE_PREFIX, RESERVED_SUBMODULES
from ..kemi.errors import SpecError
from ..kemi.model import Export, Module
from ..kemi.targets import TARGETS

Rule = Callable[[Sequence[Module]], list[SpecError]]

__all__ = ["RESERVED_SUBMODULES", "RULES", "Rule", "validate"]


def _err(e: Export, field: str, message: str) -> SpecError:
    line = e.line
    if field.startswith("params[") and e.param_lines:
        line = e.param_lines[int(field[7 : field.index("]")])]
    elif field == "submodule" and e.submodule_line:
        line = e.submodule_line
    return SpecError(e.spec_file, line, f"exports[{e.module_index}].{field}", message)


def rule_unique_exports(modules: Sequence[Module]) -> list[SpecError]:
    """No two exports may share ``submodule.name`` across the whole spec set."""
    seen: dict[str, Export] = {}
    errors = []
    for m in modules:
        for e in m.exports:
            first = seen.get(e.qualname)
            if first is not None:
                errors.append(
                    _err(
                        e, "name",
                        f"duplicate export '{e.qualname}' (first defined at "
                        f"{first.spec_file}:{first.line}); each submodule.name must be unique",
                    )
                )  # fmt: skip
            else:
                seen[e.qualname] = e
    return errors


def rule_unique_modules(modules: Sequence[Module]) -> list[SpecError]:
    seen: dict[str, Module] = {}
    errors = []
    for m in modules:
        if m.name in seen:
            errors.append(
                SpecError(
                    m.spec_file, 1, "module",
                    f"module '{m.name}' is already defined in {seen[m.name].spec_file}",
                )
            )  # fmt: skip
        seen[m.name] = m
    return errors


def rule_names_in_every_language(modules: Sequence[Module]) -> list[SpecError]:
    """Escaped names must stay distinct in every target, and not use the private prefix."""
    errors = []
    for lang, target in TARGETS.items():
        members: dict[tuple[str, str], Export] = {}
        for m in modules:
            for e in m.exports:
                key = (e.submodule, target.escape(e.name))
                other = members.get(key)
                if other is not None and other.name != e.name:
                    errors.append(
                        _err(
                            e, "name",
                            f"'{e.name}' is written '{key[1]}' in {lang} (reserved word), which "
                            f"clashes with '{other.name}' ({other.spec_file}:{other.line}); "
                            "rename one of them",
                        )
                    )  # fmt: skip
                members.setdefault(key, e)
    for m in modules:
        for e in m.exports:
            if e.name.startswith(PRIVATE_PREFIX):
                errors.append(
                    _err(e, "name", f"names starting with '{PRIVATE_PREFIX}' are reserved")
                )
            names = [p.name for p in e.params]
            for i, p in enumerate(e.params):
                if p.name.startswith(PRIVATE_PREFIX):
                    errors.append(
                        _err(e, f"params[{i}].name", f"'{PRIVATE_PREFIX}' prefix is reserved")
                    )
                if names.index(p.name) != i:
                    errors.append(
                        _err(
                            e, f"params[{i}].name",
                            f"duplicate parameter '{p.name}'; parameter names must be unique",
                        )
                    )  # fmt: skip
                for lang, target in TARGETS.items():
                    esc = target.escape(p.name)
                    if esc != p.name and esc in names:
                        errors.append(
                            _err(
                                e, f"params[{i}].name",
                                f"'{p.name}' is reserved in {lang} and its escaped form "
                                f"'{esc}' clashes with another parameter",
                            )
                        )  # fmt: skip
    return errors


def rule_submodules(modules: Sequence[Module]) -> list[SpecError]:
    """Sub-module names: not engine-reserved, not a core function's name, valid everywhere."""
    errors = []
    core_names = {e.name for m in modules for e in m.exports if e.submodule == ""}
    for m in modules:
        for e in m.exports:
            if e.submodule in RESERVED_SUBMODULES:
                errors.append(
                    _err(
                        e, "submodule",
                        f"'{e.submodule}' is {RESERVED_SUBMODULES[e.submodule]}; choose another",
                    )
                )  # fmt: skip
            elif e.submodule and e.submodule in core_names:
                errors.append(
                    _err(
                        e, "submodule",
                        f"sub-module '{e.submodule}' clashes with the core function "
                        f"KSR.{e.submodule}",
                    )
                )  # fmt: skip
            elif e.submodule and any(e.submodule in t.reserved for t in TARGETS.values()):
                errors.append(
                    _err(e, "submodule", f"'{e.submodule}' is a reserved word in a target language")
                )
    return errors


RULES: tuple[Rule, ...] = (
    rule_unique_modules,
    rule_unique_exports,
    rule_names_in_every_language,
    rule_submodules,
)


def validate(modules: Sequence[Module]) -> list[SpecError]:
    errors: list[SpecError] = []
    for rule in RULES:
        errors.extend(rule(modules))
    return errors
