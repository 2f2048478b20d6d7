"""ScenarioError: what is wrong, where (file, line, field), and what is allowed."""

from __future__ import annotations

from jamsim.core.errors import JamsimError

__all__ = ["ScenarioError"]


class ScenarioError(JamsimError):
    """A scenario file is malformed; the message names file, line and field."""

    def __init__(self, message: str, *, file: str = "<scenario>", line: int | None = None,
                 field: str = "") -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        where = file + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")
