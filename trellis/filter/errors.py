"""The one error the filter package raises, and the source position it can carry.

Rule 1: every failure of ``parse`` or ``compile`` is a ``FilterError``; nothing else
escapes (no ``ValueError``, no ``re2.error``, no ``RecursionError``).
Rule 2: the message is built from the fields, in go-bexpr's shape, so the API edge can
return it as Consul does: ``Failed to create boolean expression evaluator: <detail>``,
where a syntax error's detail starts with ``line:column (offset)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from trellis.errors import InvalidInput

# The prefix go-bexpr's CreateFilter puts on every error; Consul passes it through.
MESSAGE_PREFIX = "Failed to create boolean expression evaluator"


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the filter text: 1-based line and column, 0-based offset.

    NOTE: offsets and columns count characters (code points), where pigeon, the
    parser generator behind go-bexpr, counts bytes for the offset.
    """

    line: int
    column: int
    offset: int

    @classmethod
    def at(cls, text: str, offset: int) -> Position:
        """The position of ``offset`` in ``text``. Pure."""
        line = text.count("\n", 0, offset) + 1
        line_start = text.rfind("\n", 0, offset) + 1
        return cls(line=line, column=offset - line_start + 1, offset=offset)

    def __str__(self) -> str:
        return f"{self.line}:{self.column} ({self.offset})"


class FilterError(InvalidInput):
    """A ``?filter=`` expression that cannot be parsed or does not fit the schema.

    ``position`` is set for syntax errors, ``selector`` for schema errors. The edge
    maps this type to HTTP 400.
    """

    def __init__(
        self,
        reason: str,
        *,
        expression: str = "",
        position: Position | None = None,
        selector: str = "",
    ) -> None:
        self.expression = expression
        self.position = position
        self.selector = selector
        detail = f"{position}: {reason}" if position is not None else reason
        super().__init__(
            "filter",
            expression or selector or None,
            reason,
            message=f"{MESSAGE_PREFIX}: {detail}",
        )
