"""/v1/connect/ca/* and /v1/agent/connect/ca/*: roots, configuration, leaves.

Reads of roots and configuration are blocking queries over the view; leaves come
from the agent's LeafManager and block on its own index (DESIGN: values that are
not stored block through the same helper on a version of their own).
"""

from __future__ import annotations

from aiohttp import web

from trellis.acl import Access
from trellis.api import codec_ca, params
from trellis.api.app import AUTHZ, CTX, blocking_headers, json_response, read_json, shared_result
from trellis.api.blocking import block, parse_query_options
from trellis.api.reads import check_dc
from trellis.connect.ca import query
from trellis.connect.ca.config import decode_request
from trellis.errors import InvalidInput


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/v1/connect/ca/roots", roots)
    r.add_get("/v1/agent/connect/ca/roots", agent_roots)
    r.add_get("/v1/connect/ca/configuration", get_configuration)
    r.add_put("/v1/connect/ca/configuration", put_configuration)
    r.add_post("/v1/connect/ca/rotate", rotate)  # trellis: `connect ca rotate` (Consul has no verb for it)
    r.add_get("/v1/agent/connect/ca/leaf/{service:.+}", leaf)


async def roots(request: web.Request) -> web.StreamResponse:
    check_dc(request)
    ctx = request.app[CTX]
    ctx.ca.ready()
    pem = params.flag(request.query, "pem", message="The 'pem' query parameter must be a boolean value")
    res = await block(ctx.view, parse_query_options(request.query), lambda: query.roots(ctx.view))
    if pem:
        return web.Response(text=codec_ca.encode_roots_pem(res.value), content_type="application/pem-certificate-chain",
                            headers=blocking_headers(res.index))
    return shared_result(request, res, lambda: codec_ca.encode_roots(res.value))


async def agent_roots(request: web.Request) -> web.StreamResponse:
    resp = await roots(request)
    resp.headers["X-Cache"] = "MISS"  # served from the live view, never stale
    return resp


async def get_configuration(request: web.Request) -> web.Response:
    check_dc(request)
    ctx = request.app[CTX]
    request[AUTHZ].require("operator", "", Access.READ)
    ctx.ca.ready()
    res = await block(ctx.view, parse_query_options(request.query), lambda: query.configuration(ctx.view))
    return json_response(request, codec_ca.encode_config(res.value), **blocking_headers(res.index))


async def put_configuration(request: web.Request) -> web.Response:
    check_dc(request)
    request[AUTHZ].require("operator", "", Access.WRITE)
    body = await read_json(request)
    if body is None:
        raise InvalidInput("body", message="Request decode failed: the body is empty; expected a JSON object "
                                           "with Provider and Config")
    await request.app[CTX].ca.set_config(decode_request(body))
    return web.Response(status=200)


async def rotate(request: web.Request) -> web.Response:
    check_dc(request)
    request[AUTHZ].require("operator", "", Access.WRITE)
    ca = request.app[CTX].ca
    _, previous = ca.ready()
    root = await ca.rotate()
    return json_response(request, {"ActiveRootID": root.id, "PreviousRootID": previous.id})


async def leaf(request: web.Request) -> web.Response:
    check_dc(request)
    service = request.match_info["service"]
    opts = parse_query_options(request.query)
    ns = params.namespace(request.query, request.headers)
    request[AUTHZ].require("service", service, Access.WRITE)
    ctx = request.app[CTX]
    ctx.ca.ready()
    cert = await ctx.leaves.get(ns, service, index=opts.index, wait=opts.wait)
    return json_response(request, codec_ca.encode_leaf(cert), **blocking_headers(cert.index))

