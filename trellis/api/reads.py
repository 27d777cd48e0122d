"""What every catalog and health read does before and around its query.

``start_read`` checks the datacenter, parses the blocking and filter parameters
(a bad filter is a 400 before anything waits) and asks the authorizer;
``Read.block`` runs the view query as a blocking query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from trellis import filter as bexpr
from trellis.acl import Access
from trellis.api import filtering, params
from trellis.api.app import AUTHZ, CTX
from trellis.api.blocking import QueryOptions, block, parse_query_options
from trellis.catalog.registration import NoPathToDatacenter
from trellis.store.view import Result, View


@dataclass(frozen=True, slots=True)
class Read:
    view: View
    opts: QueryOptions
    filter: bexpr.Filter | None
    namespace: str

    async def block(self, run: Callable[[], Result[Any]]) -> Result[Any]:
        return await block(self.view, self.opts, run)

    def select(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return filtering.select(self.filter, docs)


def check_dc(request: web.Request) -> None:
    dc = request.query.get("dc")
    if dc and dc != request.app[CTX].datacenter:
        raise NoPathToDatacenter(dc)


def start_read(request: web.Request, schema: Any, resource: str = "", name: str = "") -> Read:
    """Validate a read's parameters and, given a ``resource``, require read access to ``name``."""
    check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, schema)
    ns = params.namespace(request.query, request.headers)
    if resource:
        request[AUTHZ].require(resource, name, Access.READ)
    return Read(request.app[CTX].view, opts, flt, ns)
