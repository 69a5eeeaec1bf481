"""YAML spec loading that keeps the line of every key, for error messages.

The YAML is composed into nodes (which carry marks), converted to plain
Python data, and every path (``("exports", 3, "params", 1, "type")``) is
mapped to its line so pydantic's error locations can be reported as lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..kemi.errors import SpecError

PathKey = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a silent overwrite hides mistakes)."""


def _convert(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], file: str) -> Any:
    # a key's own line wins over the line where its value starts
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _Loader("").construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise SpecError(
                    file, key_node.start_mark.line + 1, _dotted(path), "keys must be strings"
                )
            if key in out:
                raise SpecError(
                    file,
                    key_node.start_mark.line + 1,
                    _dotted((*path, key)),
                    f"duplicate key (first given at line {lines[(*path, key)]}); give each key once",
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, (*path, key), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), lines, file) for i, item in enumerate(node.value)]
    return _Loader("").construct_object(node, deep=True)


def _dotted(path: PathKey) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


class LoadedYaml:
    """Plain data of one spec file plus the line of every path in it."""

    def __init__(self, file: str, data: Any, lines: dict[PathKey, int]) -> None:
        self.file = file
        self.data = data
        self.lines = lines

    def line_of(self, path: PathKey) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, path: PathKey, message: str) -> SpecError:
        return SpecError(self.file, self.line_of(path), dotted(path), message)


def dotted(path: PathKey) -> str:
    """``("exports", 3, "name")`` -> ``exports[3].name``."""
    return _dotted(path)


def load_yaml(path: Path, display: str | None = None) -> LoadedYaml:
    """Read one spec file; YAML syntax errors become SpecError with the line."""
    file = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(file, 1, "", f"cannot read spec file: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SpecError(file, line, "", f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(file, 1, "", f"invalid YAML: {exc}") from exc
    if node is None:
        raise SpecError(
            file, 1, "", "empty spec file (expected a mapping with 'module' and 'exports')"
        )
    lines: dict[PathKey, int] = {}
    data = _convert(node, (), lines, file)
    if not isinstance(data, dict):
        raise SpecError(file, 1, "", "a spec file must be a mapping with 'module' and 'exports'")
    return LoadedYaml(file, data, lines)
