"""/v1/health/*: checks and instances with their health, from the view (blocking)."""

from __future__ import annotations

from aiohttp import web

from trellis import filter as bexpr
from trellis.acl import Access
from trellis.api import codec, params
from trellis.api.app import AUTHZ, json_result, shared_result
from trellis.api.reads import start_read
from trellis.catalog import query
from trellis.catalog.gateway_services import ingress_instances


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/v1/health/node/{node:.*}", node)
    r.add_get("/v1/health/checks/{name:.*}", checks)
    r.add_get("/v1/health/state/{state:.*}", state)
    r.add_get("/v1/health/service/{name:.*}", service)
    r.add_get("/v1/health/connect/{name:.*}", connect)
    r.add_get("/v1/health/ingress/{name:.*}", ingress)


async def node(request: web.Request) -> web.Response:
    name = request.match_info["node"]
    r = start_read(request, bexpr.HEALTH_CHECK, "node", name)
    res = await r.block(lambda: query.node_checks(r.view, name))
    return json_result(request, res, r.select([codec.encode_check(c) for c in res.value]))


async def checks(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    r = start_read(request, bexpr.HEALTH_CHECK, "service", name)
    res = await r.block(lambda: query.service_checks(r.view, r.namespace, name))
    return json_result(request, res, r.select([codec.encode_check(c) for c in res.value]))


async def state(request: web.Request) -> web.Response:
    r = start_read(request, bexpr.HEALTH_CHECK)
    authz = request[AUTHZ]
    res = await r.block(lambda: query.checks_in_state(r.view, request.match_info["state"]))
    docs = [
        codec.encode_check(c) for c in res.value
        if authz.allowed("service" if c.service_id else "node", c.service_name or c.node, Access.READ)
    ]
    return json_result(request, res, r.select(docs))


async def _instances(request: web.Request, *, connect: bool = False, ingress: bool = False) -> web.Response:
    name = request.match_info["name"]
    r = start_read(request, bexpr.CHECK_SERVICE_NODE, "service", name)
    passing = params.flag(request.query, "passing")
    tags = params.tags(request.query)
    meta = params.node_meta(request.query)
    if ingress:
        res = await r.block(lambda: ingress_instances(r.view, r.namespace, name, tags=tags))
    else:
        res = await r.block(lambda: query.service_instances(r.view, r.namespace, name, tags=tags, connect=connect))

    def build() -> list:
        found = query.passing_only(res.value) if passing else res.value
        return r.select([codec.encode_instance(i) for i in found if params.meta_matches(i.node.meta, meta)])

    return shared_result(request, res, build)


async def service(request: web.Request) -> web.Response:
    return await _instances(request, connect=False)


async def connect(request: web.Request) -> web.Response:
    return await _instances(request, connect=True)


async def ingress(request: web.Request) -> web.Response:
    """The instances of the ingress gateways that expose the service (their own health)."""
    return await _instances(request, ingress=True)
