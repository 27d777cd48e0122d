"""/v1/agent/*: the agent's own node, services and checks (agent-local, not blocking
except the hash-blocking ``/v1/agent/service/:id``)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random

from aiohttp import web

from trellis import filter as bexpr
from trellis.acl import Access
from trellis.agent.local import parse_status
from trellis.api import codec, filtering, params
from trellis.api.app import AUTHZ, CTX, json_response, read_json, text
from trellis.api.blocking import parse_query_options
from trellis.catalog import central, definition
from trellis.catalog.gateway import with_effective_kind
from trellis.catalog.model import CheckStatus, CheckType, Service
from trellis.catalog.query import aggregate_status, worst_status
from trellis.errors import InvalidInput, NotFound
from trellis.store.view import WatchKey


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/v1/agent/self", self_)
    r.add_get("/v1/agent/members", members)
    r.add_get("/v1/agent/services", services)
    r.add_get("/v1/agent/service/{id:.+}", service)
    r.add_put("/v1/agent/service/register", register_service)
    r.add_put("/v1/agent/service/deregister/{id:.+}", deregister_service)
    r.add_put("/v1/agent/service/maintenance/{id:.+}", service_maintenance)
    r.add_put("/v1/agent/maintenance", node_maintenance)
    r.add_get("/v1/agent/checks", checks)
    r.add_put("/v1/agent/check/register", register_check)
    r.add_put("/v1/agent/check/deregister/{id:.+}", deregister_check)
    for verb in ("pass", "warn", "fail"):
        r.add_put(f"/v1/agent/check/{verb}/{{id:.+}}", ttl_verb)
    r.add_put("/v1/agent/check/update/{id:.+}", ttl_update)
    r.add_get("/v1/agent/health/service/name/{name:.+}", health_by_name)
    r.add_get("/v1/agent/health/service/id/{id:.+}", health_by_id)


async def self_(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    request[AUTHZ].require("agent", ctx.node_name, Access.READ)
    return json_response(request, ctx.describe_self())


async def members(request: web.Request) -> web.Response:
    """The LAN pool (this agent), or with ``?wan=<non-empty>`` the WAN pool of servers."""
    ctx = request.app[CTX]
    flt = filtering.compile_filter(request.query.get("filter", ""), bexpr.MEMBER)
    wan = bool(request.query.get("wan"))
    segment = request.query.get("segment")
    if wan and segment is not None:
        raise InvalidInput("segment", segment, message="Cannot provide a segment with wan=true")
    if wan:
        docs = [ctx.describe_member(wan=True)] if ctx.cfg.server else []
    else:
        docs = [ctx.describe_member()] if segment in (None, "", "_all") else []
    return json_response(request, filtering.select(flt, docs))


async def services(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    authz = request[AUTHZ]
    flt = filtering.compile_filter(request.query.get("filter", ""), bexpr.NODE_SERVICE)
    ns = params.namespace(request.query, request.headers, wildcard=True)
    docs = {
        s.id: codec.encode_agent_service(_effective(ctx, s)[0]) for s in ctx.local.services()
        if (ns == "*" or s.namespace == ns) and authz.allowed("service", s.name, Access.READ)
    }
    return json_response(request, filtering.select_map(flt, docs))


def _effective(ctx, s: Service) -> tuple[Service, tuple[WatchKey, ...]]:
    """``s`` as the API shows it, and the config-entry keys that decided it: its effective
    kind (catalog/gateway.py) and, for a proxy or gateway, merged with central config as
    Consul's agent serves it (catalog/central.py)."""
    kinded, kind_keys = with_effective_kind(ctx.view, s)
    merged, central_keys = central.resolved(ctx.view, kinded)
    return merged, (*kind_keys, *central_keys)


def _service_doc(ctx, service_id: str, ns: str) -> tuple[dict | None, tuple[WatchKey, ...]]:
    """The service's document with its ContentHash, and the keys that change it."""
    s = ctx.local.service(service_id, ns)
    if s is None:
        return None, ()
    merged, keys = _effective(ctx, s)
    doc = codec.encode_agent_service(merged)
    doc["ContentHash"] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    return doc, keys


async def service(request: web.Request) -> web.Response:
    """Hash-blocking: ``?hash=H&wait=D`` parks until the service's content hash differs."""
    ctx = request.app[CTX]
    ns = params.namespace(request.query, request.headers)
    sid = request.match_info["id"]
    opts = parse_query_options(request.query)
    doc, keys = _service_doc(ctx, sid, ns)
    if doc is None:
        raise NotFound(f"unknown service ID: {sid}")
    request[AUTHZ].require("service", doc["Service"], Access.READ)
    want = request.query.get("hash", "")
    if want and want == doc["ContentHash"]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + opts.wait + random.uniform(0, opts.wait / 16)
        while doc is not None and doc["ContentHash"] == want:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # its kind may come from a gateway config entry, its config from proxy-defaults and
            # service-defaults: writing any of them, or the registration, changes the hash
            watch = [("node-services", ctx.node_name.lower()), *keys]
            await ctx.view.wait_change(watch, ctx.view.index_of(watch), remaining)
            doc, keys = _service_doc(ctx, sid, ns)
        if doc is None:
            raise NotFound(f"unknown service ID: {sid}")
    return json_response(request, doc, **{"X-Consul-ContentHash": doc["ContentHash"]})


def _replace_checks(request: web.Request) -> bool:
    if "replace-existing-checks" not in request.query:
        return False
    return request.query["replace-existing-checks"] in ("", "true")


async def register_service(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await read_json(request)
    defn = definition.decode_service(body if body is not None else {}, origin="api")
    ns = params.namespace(request.query, request.headers)
    if defn.namespace in ("", "default") and ns != "default":
        defn = dataclasses.replace(defn, namespace=ns)
    authz = request[AUTHZ]
    authz.require("service", defn.name, Access.WRITE)
    if defn.sidecar_service is not None:
        authz.require("service", f"{defn.name}-sidecar-proxy", Access.WRITE)
    await ctx.local.register_service(defn, replace_existing_checks=_replace_checks(request))
    return web.Response(status=200)


async def deregister_service(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ns = params.namespace(request.query, request.headers)
    sid = request.match_info["id"]
    s = ctx.local.service(sid, ns)
    request[AUTHZ].require("service", s.name if s else sid, Access.WRITE)
    await ctx.local.deregister_service(sid, ns)
    return web.Response(status=200)


def _enable(request: web.Request) -> bool:
    if "enable" not in request.query or request.query["enable"] == "":
        raise InvalidInput("enable", message="Missing value for enable")
    value = request.query["enable"]
    if value in ("true", "1", "t", "T", "TRUE", "True"):
        return True
    if value in ("false", "0", "f", "F", "FALSE", "False"):
        return False
    raise InvalidInput("enable", value, message=f'Invalid value for enable: "{value}"')


async def service_maintenance(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    enable = _enable(request)
    ns = params.namespace(request.query, request.headers)
    sid = request.match_info["id"]
    s = ctx.local.service(sid, ns)
    request[AUTHZ].require("service", s.name if s else sid, Access.WRITE)
    await ctx.local.service_maintenance(sid, enable, request.query.get("reason", ""), ns)
    return web.Response(status=200)


async def node_maintenance(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    enable = _enable(request)
    request[AUTHZ].require("node", ctx.node_name, Access.WRITE)
    await ctx.local.node_maintenance(enable, request.query.get("reason", ""))
    return web.Response(status=200)


async def checks(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    authz = request[AUTHZ]
    flt = filtering.compile_filter(request.query.get("filter", ""), bexpr.HEALTH_CHECK)
    ns = params.namespace(request.query, request.headers, wildcard=True)
    docs = {
        c.check_id: codec.encode_check(c) for c in ctx.local.checks()
        if (ns == "*" or c.namespace == ns)
        and authz.allowed("service" if c.service_id else "node", c.service_name or c.node, Access.READ)
    }
    return json_response(request, filtering.select_map(flt, docs))


async def register_check(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await read_json(request)
    ns = params.namespace(request.query, request.headers)
    spec = definition.decode_check(body if body is not None else {}, origin="api", in_service=False)
    service = None
    if spec.service_id:
        service = ctx.local.service(spec.service_id, ns)
        if service is None:
            raise NotFound(f'ServiceID "{spec.service_id}" does not exist')
        request[AUTHZ].require("service", service.name, Access.WRITE)
    else:
        request[AUTHZ].require("node", ctx.node_name, Access.WRITE)
    check = definition.build_check(spec, node=ctx.node_name, service=service)
    if service is None and ns != "default":
        check = dataclasses.replace(check, namespace=ns)
    await ctx.local.register_check(check)
    return web.Response(status=200)


def _require_check_write(request: web.Request, check_id: str, ns: str):
    ctx = request.app[CTX]
    c = ctx.local.check(check_id, ns)
    if c is None:
        raise NotFound(f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.')
    resource, name = ("service", c.service_name) if c.service_id else ("node", ctx.node_name)
    request[AUTHZ].require(resource, name, Access.WRITE)
    return c


async def deregister_check(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ns = params.namespace(request.query, request.headers)
    cid = request.match_info["id"]
    _require_check_write(request, cid, ns)
    await ctx.local.deregister_check(cid, ns)
    return web.Response(status=200)


_VERB_STATUS = {"pass": CheckStatus.PASSING, "warn": CheckStatus.WARNING, "fail": CheckStatus.CRITICAL}


async def _ttl(request: web.Request, status: CheckStatus, output: str) -> web.Response:
    ctx = request.app[CTX]
    ns = params.namespace(request.query, request.headers)
    cid = request.match_info["id"]
    c = _require_check_write(request, cid, ns)
    if c.type is not CheckType.TTL:
        raise InvalidInput("CheckID", cid, message=f'CheckID "{cid}" does not have associated TTL')
    await ctx.ttl_update(c, status, output)
    return web.Response(status=200)


async def ttl_verb(request: web.Request) -> web.Response:
    verb = request.path.split("/")[4]
    return await _ttl(request, _VERB_STATUS[verb], request.query.get("note", ""))


async def ttl_update(request: web.Request) -> web.Response:
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise InvalidInput("body", message="Request decode failed: expected a JSON object")
    lower = {k.lower(): v for k, v in body.items()}
    unknown = set(lower) - {"status", "output"}
    if unknown:
        raise InvalidInput("body", message=f'Request decode failed: json: unknown field "{sorted(unknown)[0]}"')
    status = parse_status(str(lower.get("status", "")))
    output = lower.get("output", "")
    if not isinstance(output, str):
        raise InvalidInput("Output", output, message="Request decode failed: Output must be a string")
    return await _ttl(request, status, output)


_HEALTH_CODE = {CheckStatus.PASSING: 200, CheckStatus.WARNING: 429, CheckStatus.CRITICAL: 503}


def _health_doc(ctx, s) -> tuple[CheckStatus, dict]:
    """Consul's ChecksForService(id, true): the service's checks and the agent's node checks."""
    checks = [
        c for c in ctx.local.checks()
        if not c.service_id or (c.service_id == s.id and c.namespace == s.namespace)
    ]
    status = aggregate_status(checks)
    return status, {
        "AggregatedStatus": status.value,
        "Service": codec.encode_agent_service(_effective(ctx, s)[0]),
        "Checks": [codec.encode_check(c) for c in checks],
    }


def _wants_text(request: web.Request) -> bool:
    return request.query.get("format") == "text" or request.headers.get("Accept", "").startswith("text/plain")


async def health_by_id(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ns = params.namespace(request.query, request.headers)
    sid = request.match_info["id"]
    s = ctx.local.service(sid, ns)
    if s is None:
        if _wants_text(request):
            return text(f"ServiceId {sid} not found", 404)
        return json_response(request, {"AggregatedStatus": "critical", "Service": None, "Checks": None}, 404)
    request[AUTHZ].require("service", s.name, Access.READ)
    status, doc = _health_doc(ctx, s)
    code = _HEALTH_CODE[status]
    if _wants_text(request):
        return text(status.value, code, **{"X-Consul-Reason": status.value})
    return json_response(request, doc, code, **{"X-Consul-Reason": status.value})


async def health_by_name(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ns = params.namespace(request.query, request.headers)
    name = request.match_info["name"]
    request[AUTHZ].require("service", name, Access.READ)
    found = [s for s in ctx.local.services() if s.name == name and s.namespace == ns]
    if not found:
        if _wants_text(request):
            return text(f"ServiceName {name} Not Found", 404)
        return json_response(request, [], 404)
    results = [_health_doc(ctx, s) for s in found]
    worst = worst_status(st for st, _ in results)
    code = _HEALTH_CODE[worst]
    if _wants_text(request):
        return text(worst.value, code, **{"X-Consul-Reason": worst.value})
    return json_response(request, [d for _, d in results], code, **{"X-Consul-Reason": worst.value})
