"""/v1/catalog/*: reads served from the view (blocking), register/deregister."""

from __future__ import annotations

from aiohttp import web

from trellis import filter as bexpr
from trellis.acl import Access
from trellis.api import codec, filtering, params
from trellis.api.app import AUTHZ, CTX, json_response, json_result, read_json, shared_result
from trellis.api.blocking import block, parse_query_options
from trellis.catalog import query
from trellis.catalog import registration as catreg


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_put("/v1/catalog/register", register)
    r.add_put("/v1/catalog/deregister", deregister)
    r.add_get("/v1/catalog/datacenters", datacenters)
    r.add_get("/v1/catalog/nodes", nodes)
    r.add_get("/v1/catalog/services", services)
    r.add_get("/v1/catalog/service/{name:.*}", service)
    r.add_get("/v1/catalog/connect/{name:.*}", connect)
    r.add_get("/v1/catalog/node/{node:.*}", node)
    r.add_get("/v1/catalog/node-services/{node:.*}", node_services)


def _check_dc(request: web.Request) -> None:
    ctx = request.app[CTX]
    dc = request.query.get("dc")
    if dc and dc != ctx.datacenter:
        raise catreg.NoPathToDatacenter(dc)


async def register(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await read_json(request)
    req = catreg.decode_register(body, datacenter=ctx.datacenter)
    authz = request[AUTHZ]
    authz.require("node", req.node.name, Access.WRITE)
    if req.service is not None:
        authz.require("service", req.service.name, Access.WRITE)
    await ctx.writer.apply(lambda view: catreg.plan_register(view, req))
    if req.node.name.lower() == ctx.node_name.lower():
        await ctx.reassert_self()  # anti-entropy: the agent owns its node's entries
    return json_response(request, True)


async def deregister(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await read_json(request)
    req = catreg.decode_deregister(body)
    request[AUTHZ].require("node", req.node, Access.WRITE)
    own = ctx.node_name if req.node.lower() == ctx.node_name.lower() else None
    await ctx.writer.apply(lambda view: catreg.plan_deregister(view, req, agent_node=own))
    return json_response(request, True)


async def datacenters(request: web.Request) -> web.Response:
    return json_response(request, [request.app[CTX].datacenter])


async def nodes(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.NODE)
    meta = params.node_meta(request.query)
    authz = request[AUTHZ]
    res = await block(ctx.view, opts, lambda: query.nodes(ctx.view))
    docs = [
        codec.encode_node(n) for n in res.value
        if params.meta_matches(n.meta, meta) and authz.allowed("node", n.name, Access.READ)
    ]
    return json_result(request, res, filtering.select(flt, docs))


async def services(request: web.Request) -> web.Response:
    """Service name -> tags. ``?filter`` (over ServiceNode, as Consul) and ``?node-meta``
    narrow the instances the map is built from."""
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.SERVICE_NODE)
    ns = params.namespace(request.query, request.headers)
    meta = params.node_meta(request.query)
    authz = request[AUTHZ]
    if not opts.filter and not meta:
        res = await block(ctx.view, opts, lambda: query.services(ctx.view, ns))
        out = {k: v for k, v in res.value.items() if authz.allowed("service", k, Access.READ)}
        return json_result(request, res, out)
    res = await block(ctx.view, opts, lambda: query.all_instances(ctx.view, ns))
    docs = [
        codec.encode_service_node(i.node, i.service) for i in res.value
        if params.meta_matches(i.node.meta, meta) and authz.allowed("service", i.service.name, Access.READ)
    ]
    tags: dict[str, set[str]] = {}
    for d in filtering.select(flt, docs):
        tags.setdefault(d["ServiceName"], set()).update(d["ServiceTags"])
    return json_result(request, res, {k: sorted(v) for k, v in sorted(tags.items())})


async def _service_nodes(request: web.Request, *, connect: bool) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.SERVICE_NODE)
    ns = params.namespace(request.query, request.headers)
    name = request.match_info["name"]
    if not name:
        raise catreg.missing_service_name()
    request[AUTHZ].require("service", name, Access.READ)
    tags = params.tags(request.query)
    meta = params.node_meta(request.query)
    res = await block(
        ctx.view, opts, lambda: query.service_instances(ctx.view, ns, name, tags=tags, connect=connect)
    )
    def build() -> list:
        docs = [
            codec.encode_service_node(i.node, i.service) for i in res.value
            if params.meta_matches(i.node.meta, meta)
        ]
        return filtering.select(flt, docs)

    return shared_result(request, res, build)


async def service(request: web.Request) -> web.Response:
    return await _service_nodes(request, connect=False)


async def connect(request: web.Request) -> web.Response:
    return await _service_nodes(request, connect=True)


async def node(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.NODE_SERVICE)
    name = request.match_info["node"]
    request[AUTHZ].require("node", name, Access.READ)
    res = await block(ctx.view, opts, lambda: query.node(ctx.view, name))
    if res.value is None:
        return json_result(request, res, None)
    n, svcs = res.value
    docs = {s.id: codec.encode_node_service(s) for s in svcs}
    docs = filtering.select_map(flt, docs)
    return json_result(request, res, {"Node": codec.encode_node(n), "Services": docs})


async def node_services(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _check_dc(request)
    opts = parse_query_options(request.query)
    flt = filtering.compile_filter(opts.filter, bexpr.NODE_SERVICE)
    name = request.match_info["node"]
    request[AUTHZ].require("node", name, Access.READ)
    res = await block(ctx.view, opts, lambda: query.node(ctx.view, name))
    if res.value is None:
        return json_result(request, res, {"Node": None, "Services": None})
    n, svcs = res.value
    docs = filtering.select(flt, [codec.encode_node_service(s) for s in svcs])
    return json_result(request, res, {"Node": codec.encode_node(n), "Services": docs})
