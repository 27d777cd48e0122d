"""What the CLI prints: aligned tables, JSON, and the stdout/stderr split.

Rules:
1. Results go to stdout, errors and "nothing matched" notes to stderr, one line
   each (Consul's ``UI.Output``/``UI.Error``).
2. Tables are Go ``columnize`` output (ryanuber/columnize ``DefaultConfig``):
   cells trimmed, each column but the last padded to its widest cell, columns
   joined by two spaces, the last column never padded, no trailing newline.
3. ``-format=json`` prints the API's objects, indented four spaces (as Consul's
   ``config read`` and ``acl ... -format=json``).

``columnize``, ``format_pairs`` and ``format_json`` are pure; ``out`` and ``err``
write to whatever ``sys.stdout``/``sys.stderr`` are at call time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trellis.cli.flags import Flag
from trellis.errors import TrellisError

PRETTY = "pretty"
JSON = "json"
FORMATS = (PRETTY, JSON)

FORMAT_FLAG = Flag("format", default=PRETTY, metavar="format", help="Output format {pretty|json}.")


class CommandError(TrellisError):
    """A command failed: main prints the message alone on stderr and exits ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def columnize(rows: Iterable[Sequence[str]], *, glue: str = "  ") -> str:
    """Align ``rows`` (header first) as Go's ``columnize.Format`` does. Pure.

    Rows may have different lengths; widths come from every row that has the
    column. Width counts code points (Go's ``%-Ns`` pads by rune).
    """
    cells = [[str(c).strip() for c in row] for row in rows]
    widths: list[int] = []
    for row in cells:
        for i, cell in enumerate(row):
            if i == len(widths):
                widths.append(len(cell))
            else:
                widths[i] = max(widths[i], len(cell))
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) + glue for i, cell in enumerate(row[:-1])]
        lines.append("".join(padded) + (row[-1] if row else ""))
    return "\n".join(lines)


def format_pairs(mapping: Mapping[str, Any] | None, joiner: str) -> str:
    """``k=v`` pairs sorted by key, joined by ``joiner`` (Consul's ``mapToKV``). Pure."""
    items = sorted((mapping or {}).items())
    return joiner.join(f"{k}={_go_text(v)}" for k, v in items)


def _go_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_json(value: Any) -> str:
    """``value`` as JSON indented four spaces, no trailing newline. Pure."""
    return json.dumps(value, indent=4, ensure_ascii=False)


def check_format(value: str) -> str:
    """The ``-format`` flag's value, or CommandError ``Unknown format: x`` (Consul's text)."""
    if value not in FORMATS:
        raise CommandError(f"Unknown format: {value}")
    return value


def out(text: str = "") -> None:
    """One result line (or block) on stdout."""
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    """One error or note on stderr."""
    sys.stderr.write(text + "\n")


def fail(text: str, code: int = 1) -> int:
    """Print ``text`` on stderr and return ``code``, for ``return output.fail(...)``."""
    err(text)
    return code
