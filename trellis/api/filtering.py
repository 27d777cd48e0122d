"""``?filter=`` at the HTTP edge: compile once per request, apply to encoded docs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trellis import filter as bexpr


def apply(expr: str, schema: Any, docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the docs ``expr`` matches; an invalid expression raises FilterError (a 400)."""
    docs = list(docs)
    if not expr:
        return docs
    compiled = bexpr.compile(bexpr.parse(expr), schema)
    return [d for d in docs if compiled.match(d)]


def apply_map(expr: str, schema: Any, docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if not expr:
        return docs
    compiled = bexpr.compile(bexpr.parse(expr), schema)
    return {k: d for k, d in docs.items() if compiled.match(d)}
