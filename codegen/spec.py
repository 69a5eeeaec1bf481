"""Spec set loading: YAML files -> pydantic models -> validated, ordered ``Spec``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from ..kemi.contract import CORE_MODULE, MAX_PARAMS
from ..kemi.errors import SpecError, SpecErrors
from ..kemi.model import Export, ModParam, Module, Param, Spec, default_submodule
from .loader import LoadedYaml, load_yaml
from .models import ExportSpec, ImplSpec, ModParamSpec, ModuleSpec, ParamSpec
from .validate import validate

ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "module": tuple(ModuleSpec.model_fields),
    "export": tuple(ExportSpec.model_fields),
    "param": tuple(ParamSpec.model_fields),
    "impl": tuple(ImplSpec.model_fields),
    "modparam": tuple(ModParamSpec.model_fields),
}


def _level(loc: tuple[object, ...]) -> str:
    """Which kind of mapping a data path points into (for the list of allowed keys)."""
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    if not parents:
        return "module"
    last = parents[-1]
    if last == "exports":
        return "export"
    if last == "params":
        return "modparam" if len(parents) == 1 else "param"
    return last


def _describe(err: dict[str, object]) -> str:
    """A pydantic error as a sentence that says what is allowed."""
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    loc = err.get("loc") or ()
    last = loc[-1] if isinstance(loc, tuple) and loc else ""
    if kind == "extra_forbidden":
        allowed = ALLOWED_KEYS.get(_level(tuple(loc)) if isinstance(loc, tuple) else "", ())
        return f"unknown key '{last}'" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        ctx = err.get("ctx") or {}
        expected = ctx.get("expected", "") if isinstance(ctx, dict) else ""
        return f"unknown value {err.get('input')!r} (allowed: {expected})"
    if kind == "too_long":
        ctx = err.get("ctx") or {}
        given = ctx.get("actual_length", "?") if isinstance(ctx, dict) else "?"
        return (
            f"{given} parameters given; at most {MAX_PARAMS} are allowed "
            "(KEMI's SR_KEMI_PARAMS_MAX)"
        )
    if kind == "string_pattern_mismatch" and last == "python":
        return f"{err.get('input')!r} is not a Python implementation path (module.path:function)"
    if kind == "string_pattern_mismatch":
        return f"{err.get('input')!r} is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)"
    return msg


def _model_errors(loaded: LoadedYaml, exc: ValidationError) -> list[SpecError]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        # pydantic puts union/validator names in loc; keep the data path only
        path = tuple(
            p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "str")))
        )
        out.append(loaded.error(path, _describe(dict(err))))
    return out


def _resolve(loaded: LoadedYaml, spec: ModuleSpec, start: int) -> Module:
    default_sub = spec.submodule if spec.submodule is not None else default_submodule(spec.module)
    exports = []
    for i, e in enumerate(spec.exports):
        kind, target = ("python", e.impl.python) if e.impl.python else ("c", e.impl.c)
        exports.append(
            Export(
                module=spec.module,
                submodule=e.submodule if e.submodule is not None else default_sub,
                name=e.name,
                ret=e.ret,
                params=tuple(Param(p.name, p.type, p.doc) for p in e.params),
                summary=e.summary,
                description=e.description,
                example=e.example,
                kamailio_name=e.kamailio_name,
                impl_kind=kind,
                impl=str(target),
                spec_file=loaded.file,
                line=loaded.line_of(("exports", i)),
                index=start + i,
                module_index=i,
                param_lines=tuple(
                    loaded.line_of(("exports", i, "params", j)) for j in range(len(e.params))
                ),
                submodule_line=loaded.line_of(
                    ("exports", i, "submodule")
                    if e.submodule is not None
                    else ("submodule",) if spec.submodule is not None else ("exports", i)
                ),
            )
        )
    return Module(
        name=spec.module,
        summary=spec.summary,
        description=spec.description,
        spec_file=loaded.file,
        exports=tuple(exports),
        params=tuple(
            ModParam(p.name, p.type, p.default, p.doc, p.multi, p.effect) for p in spec.params
        ),
    )


def spec_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        files.extend(sorted(d.glob("*.yaml")))
    return files


def load_spec(files: Sequence[Path], root: Path | None = None) -> Spec:
    """Load and validate every file; raises SpecErrors listing every problem found."""
    errors: list[SpecError] = []
    parsed: list[tuple[LoadedYaml, ModuleSpec]] = []
    for path in files:
        display = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        try:
            loaded = load_yaml(path, display)
        except SpecError as exc:
            errors.append(exc)
            continue
        try:
            parsed.append((loaded, ModuleSpec.model_validate(loaded.data)))
        except ValidationError as exc:
            errors.extend(_model_errors(loaded, exc))
    if errors:
        raise SpecErrors(errors)
    # core first (registered first, as in Kamailio), then modules by name
    parsed.sort(key=lambda pair: (pair[1].module != CORE_MODULE, pair[1].module))
    modules = []
    index = 0
    for loaded, mspec in parsed:
        module = _resolve(loaded, mspec, index)
        index += len(module.exports)
        modules.append(module)
    errors = validate(modules)
    if errors:
        raise SpecErrors(errors)
    return Spec(modules=tuple(modules))
