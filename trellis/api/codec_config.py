"""Consul's JSON for config entries: ``Kind`` first, the kind's fields (codec.py),
then ``CreateIndex`` and ``ModifyIndex`` (pure)."""

from __future__ import annotations

from typing import Any

from trellis.config.entry import codec
from trellis.config.entry.tables import StoredEntry


def encode_entry(row: StoredEntry) -> dict[str, Any]:
    return {"Kind": row.entry.KIND, **codec.encode(row.entry),
            "CreateIndex": row.create_index, "ModifyIndex": row.modify_index}
