"""/v1/health/*: checks and instances with their health, from the view (blocking)."""

from __future__ import annotations

from aiohttp import web

from trellis import filter as bexpr
from trellis.acl import Access
from trellis.api import codec, filtering, params
from trellis.api.app import AUTHZ, CTX, json_result, shared_result
from trellis.api.blocking import block, parse_query_options
from trellis.api.routes_catalog import _check_dc
from trellis.catalog import query


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/v1/health/node/{node:.*}", node)
    r.add_get("/v1/health/checks/{name:.*}", checks)
    r.add_get("/v1/health/state/{state:.*}", state)
    r.add_get("/v1/health/service/{name:.*}", service)
    r.add_get("/v1/health/connect/{name:.*}", connect)


async def node(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.HEALTH_CHECK)
    name = request.match_info["node"]
    request[AUTHZ].require("node", name, Access.READ)
    res = await block(ctx.view, opts, lambda: query.node_checks(ctx.view, name))
    docs = [codec.encode_check(c) for c in res.value]
    return json_result(request, res, filtering.select(flt, docs))


async def checks(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.HEALTH_CHECK)
    ns = params.namespace(request.query, request.headers)
    name = request.match_info["name"]
    request[AUTHZ].require("service", name, Access.READ)
    res = await block(ctx.view, opts, lambda: query.service_checks(ctx.view, ns, name))
    docs = [codec.encode_check(c) for c in res.value]
    return json_result(request, res, filtering.select(flt, docs))


async def state(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.HEALTH_CHECK)
    authz = request[AUTHZ]
    res = await block(ctx.view, opts, lambda: query.checks_in_state(ctx.view, request.match_info["state"]))
    docs = [
        codec.encode_check(c) for c in res.value
        if authz.allowed("service" if c.service_id else "node", c.service_name or c.node, Access.READ)
    ]
    return json_result(request, res, filtering.select(flt, docs))


async def _instances(request: web.Request, *, connect: bool) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.CHECK_SERVICE_NODE)
    ns = params.namespace(request.query, request.headers)
    name = request.match_info["name"]
    request[AUTHZ].require("service", name, Access.READ)
    passing = params.flag(request.query, "passing")
    tags = params.tags(request.query)
    meta = params.node_meta(request.query)
    res = await block(
        ctx.view, opts, lambda: query.service_instances(ctx.view, ns, name, tags=tags, connect=connect)
    )
    def build() -> list:
        found = query.passing_only(res.value) if passing else res.value
        docs = [codec.encode_instance(i) for i in found if params.meta_matches(i.node.meta, meta)]
        return filtering.select(flt, docs)

    return shared_result(request, res, build)


async def service(request: web.Request) -> web.Response:
    return await _instances(request, connect=False)


async def connect(request: web.Request) -> web.Response:
    return await _instances(request, connect=True)
