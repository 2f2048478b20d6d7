"""ScenarioError: what is wrong, where (file, line, field), and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence

from jamsim.core.errors import JamsimError

__all__ = ["MAX_LISTED", "ScenarioError"]

MAX_LISTED = 20
"""How many problems of one file are listed at once: enough to fix a file in one
pass, few enough that a generated file with a systematic mistake stays readable."""


class ScenarioError(JamsimError):
    """A scenario file is malformed; the message names file, line and field.

    One error may carry several ``problems`` (every field at fault in a file, so
    the user fixes them all in one edit): ``file``, ``line`` and ``field`` are
    then those of the first, and the message lists the others, one per line, each
    with its own ``file:line: field:``.
    """

    def __init__(self, message: str, *, file: str = "<scenario>", line: int | None = None,
                 field: str = "", problems: Sequence[ScenarioError] = ()) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.problems: tuple[ScenarioError, ...] = tuple(problems) or (self,)
        where = file + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")

    @property
    def location(self) -> str:
        """``file:line: field:`` prefix of this single problem's message."""
        where = self.file + (f":{self.line}" if self.line is not None else "")
        return f"{where}: {self.field + ': ' if self.field else ''}"

    @classmethod
    def several(cls, problems: Sequence[ScenarioError], cap: int = MAX_LISTED
                ) -> ScenarioError:
        """One error listing ``problems`` (at most ``cap``; the rest are counted)."""
        if not problems:
            raise ValueError("several() needs at least one problem")
        if len(problems) == 1:
            return problems[0]
        first, shown = problems[0], problems[1:cap]
        message = first.message + "".join(f"\n  also {p.location}{p.message}" for p in shown)
        hidden = len(problems) - 1 - len(shown)
        if hidden:
            message += f"\n  ... and {hidden} more problem{'s' if hidden > 1 else ''}"
        return cls(message, file=first.file, line=first.line, field=first.field,
                   problems=problems)
