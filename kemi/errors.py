"""Errors of the KEMI contract: a spec that breaks it, an api.json that cannot be read."""

from __future__ import annotations


class SpecError(Exception):
    """One problem in one spec file: names the file, the line and the field."""

    def __init__(self, file: str, line: int, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class SpecErrors(Exception):
    """Every problem found in a spec set; printed one per line."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.field, e.message))
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class ApiDocumentError(ValueError):
    """An api.json document that does not describe a model (names the path in it)."""
