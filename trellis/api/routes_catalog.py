"""/v1/catalog/*: reads served from the view (blocking), register/deregister."""

from __future__ import annotations

from aiohttp import web

from trellis import filter as bexpr
from trellis.acl import Access
from trellis.api import codec, filtering, params
from trellis.api.app import AUTHZ, CTX, json_response, json_result, read_json, shared_result
from trellis.api.blocking import block, parse_query_options
from trellis.api.codec_gateway import encode_gateway_service
from trellis.api.reads import check_dc, start_read
from trellis.catalog import gateway_services as gwsvc
from trellis.catalog import query
from trellis.catalog import registration as catreg
from trellis.errors import InvalidInput


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
    r.add_get("/v1/catalog/gateway-services/{gateway:.*}", gateway_services)


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
    r = start_read(request, bexpr.NODE)
    meta = params.node_meta(request.query)
    authz = request[AUTHZ]
    res = await r.block(lambda: query.nodes(r.view))
    docs = [
        codec.encode_node(n) for n in res.value
        if params.meta_matches(n.meta, meta) and authz.allowed("node", n.name, Access.READ)
    ]
    return json_result(request, res, r.select(docs))


async def services(request: web.Request) -> web.Response:
    """Service name -> tags. ``?filter`` (over ServiceNode, as Consul) and ``?node-meta``
    narrow the instances the map is built from."""
    r = start_read(request, bexpr.SERVICE_NODE)
    meta = params.node_meta(request.query)
    authz = request[AUTHZ]
    if r.filter is None and not meta:
        res = await r.block(lambda: query.services(r.view, r.namespace))
        out = {k: v for k, v in res.value.items() if authz.allowed("service", k, Access.READ)}
        return json_result(request, res, out)
    res = await r.block(lambda: query.all_instances(r.view, r.namespace))
    docs = [
        codec.encode_service_node(i.node, i.service) for i in res.value
        if params.meta_matches(i.node.meta, meta) and authz.allowed("service", i.service.name, Access.READ)
    ]
    tags: dict[str, set[str]] = {}
    for d in r.select(docs):
        tags.setdefault(d["ServiceName"], set()).update(d["ServiceTags"])
    return json_result(request, res, {k: sorted(v) for k, v in sorted(tags.items())})


async def _service_nodes(request: web.Request, *, connect: bool) -> web.Response:
    name = request.match_info["name"]
    if not name:
        raise catreg.missing_service_name()
    r = start_read(request, bexpr.SERVICE_NODE, "service", name)
    tags = params.tags(request.query)
    meta = params.node_meta(request.query)
    res = await r.block(lambda: query.service_instances(r.view, r.namespace, name, tags=tags, connect=connect))

    def build() -> list:
        return r.select([
            codec.encode_service_node(i.node, i.service) for i in res.value
            if params.meta_matches(i.node.meta, meta)
        ])

    return shared_result(request, res, build)


async def service(request: web.Request) -> web.Response:
    return await _service_nodes(request, connect=False)


async def connect(request: web.Request) -> web.Response:
    return await _service_nodes(request, connect=True)


async def node(request: web.Request) -> web.Response:
    name = request.match_info["node"]
    r = start_read(request, bexpr.NODE_SERVICE, "node", name)
    res = await r.block(lambda: query.node(r.view, name))
    if res.value is None:
        return json_result(request, res, None)
    n, svcs = res.value
    docs = filtering.select_map(r.filter, {s.id: codec.encode_node_service(s) for s in svcs})
    return json_result(request, res, {"Node": codec.encode_node(n), "Services": docs})


async def node_services(request: web.Request) -> web.Response:
    name = request.match_info["node"]
    r = start_read(request, bexpr.NODE_SERVICE, "node", name)
    res = await r.block(lambda: query.node(r.view, name))
    if res.value is None:
        return json_result(request, res, {"Node": None, "Services": None})
    n, svcs = res.value
    docs = r.select([codec.encode_node_service(s) for s in svcs])
    return json_result(request, res, {"Node": codec.encode_node(n), "Services": docs})


async def gateway_services(request: web.Request) -> web.Response:
    """The services a gateway fronts, from its config entry (blocking). Consul takes no
    ``?filter`` here; one given is ignored, as Consul's RPC ignores it."""
    name = request.match_info["gateway"]
    if not name:
        raise InvalidInput("gateway", message="Missing gateway name")
    check_dc(request)
    opts = parse_query_options(request.query)
    ns = params.namespace(request.query, request.headers)
    request[AUTHZ].require("service", name, Access.READ)
    view = request.app[CTX].view
    res = await block(view, opts, lambda: gwsvc.gateway_services(view, ns, name))
    return json_result(request, res, [encode_gateway_service(g) for g in res.value])
