"""/v1/status/*: the leader and the raft peers (one server: itself)."""

from __future__ import annotations

from aiohttp import web

from trellis.api.app import CTX, json_response


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/v1/status/leader", leader)
    r.add_get("/v1/status/peers", peers)


async def leader(request: web.Request) -> web.Response:
    return json_response(request, request.app[CTX].server_address)


async def peers(request: web.Request) -> web.Response:
    return json_response(request, [request.app[CTX].server_address])
