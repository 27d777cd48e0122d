"""``?filter=`` at the HTTP edge: compile before anything waits, apply to encoded docs.

Compiling first means a bad expression is a 400 at once, not after a blocking
query has waited out its ``wait``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trellis import filter as bexpr


def compile_filter(expr: str, schema: Any) -> bexpr.Filter | None:
    """The compiled filter, or None for no filter; raises FilterError (a 400)."""
    return bexpr.compile(bexpr.parse(expr), schema) if expr else None


def select(compiled: bexpr.Filter | None, docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    docs = list(docs)
    return docs if compiled is None else [d for d in docs if compiled.match(d)]


def select_map(compiled: bexpr.Filter | None, docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return docs if compiled is None else {k: d for k, d in docs.items() if compiled.match(d)}
