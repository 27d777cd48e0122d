"""View queries only DNS needs (pure, like ``trellis.catalog.query``).

``catalog.query.node`` also reads the node's services; a DNS node lookup needs the
node alone, so it watches one key and a service change never invalidates it.
"""

from __future__ import annotations

from trellis.catalog.model import Node
from trellis.catalog.tables import NodesTable
from trellis.store.view import Result, View


def node_only(view: View, name: str) -> Result[Node | None]:
    """The node called ``name`` (case-insensitive), watching ``("node", name)``."""
    table: NodesTable = view["nodes"]  # type: ignore[assignment]
    return view.result(table.get(name), [("node", name.lower())], floor=("nodes",))
