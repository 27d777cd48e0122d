"""/v1/agent/connect/proxy-snapshot/* and /v1/agent/connect/proxies: the snapshots the
agent builds for the proxies it serves, and the registry of those proxies (trellis's
own API, used by `trellis connect proxy`; DESIGN: decisions that cut across issues).
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from aiohttp import web

from trellis.acl import Access
from trellis.api import params, routes_trace
from trellis.api.app import AUTHZ, CTX, blocking_headers, json_response, read_json
from trellis.api.blocking import parse_query_options
from trellis.catalog.model import Proxy, Service, ServiceKind, Upstream
from trellis.errors import InvalidInput, NotFound
from trellis.proxycfg.build import to_json
from trellis.proxycfg.watcher import STALE_AFTER


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/v1/agent/connect/proxy-snapshot/{id}", snapshot)
    r.add_put("/v1/agent/connect/proxy-snapshot/{id}/status", status)
    r.add_get("/v1/agent/connect/proxies", list_proxies)
    r.add_post("/v1/agent/connect/proxies", add_proxy)
    r.add_delete("/v1/agent/connect/proxies/{id}", remove_proxy)
    r.add_put("/v1/agent/connect/proxies/{id}/stop", stop_proxy)
    routes_trace.add_routes(r)  # GET /v1/agent/connect/trace


def _watcher(request: web.Request) -> Any:
    return request.app[CTX].proxies


async def snapshot(request: web.Request) -> web.Response:
    proxy_id = request.match_info["id"]
    opts = parse_query_options(request.query)
    w = _watcher(request)
    proxy = w.proxy(proxy_id)
    if proxy is not None:
        request[AUTHZ].require("service", proxy.name, Access.WRITE)
    snap = await w.get(proxy_id, index=opts.index, wait=opts.wait)
    return json_response(request, to_json(snap), **blocking_headers(snap.index))


async def status(request: web.Request) -> web.Response:
    proxy_id = request.match_info["id"]
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise InvalidInput("body", message="expected a JSON object with AppliedVersion")
    w = _watcher(request)
    proxy = w.proxy(proxy_id)
    if proxy is not None:
        request[AUTHZ].require("service", proxy.name, Access.WRITE)
    st = w.report(proxy_id, applied_version=str(body.get("AppliedVersion", "")),
                  connections=_int(body.get("Connections")), pid=_int(body.get("PID")),
                  data_plane=str(body.get("DataPlane") or "builtin"),
                  extra=body.get("Extra") if isinstance(body.get("Extra"), dict) else None)
    return json_response(request, {"Stop": st.stop_requested})


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _listening(snap: Any) -> str:
    """Where the proxy accepts connections: a sidecar's public listener, an ingress gateway's
    listeners (protocol:address:port), a terminating gateway's bind addresses."""
    if snap.ingress:
        return ", ".join(f"{li.protocol}:{li.address}:{li.port}" for li in snap.ingress)
    if snap.terminating is not None:
        return ", ".join(f"{b.address}:{b.port}" for b in snap.terminating.binds)
    return f"{snap.public.bind_address}:{snap.public.bind_port}"


async def list_proxies(request: web.Request) -> web.Response:
    w = _watcher(request)
    out = []
    for proxy_id in sorted(set(w.snapshots) | set(w.status)):
        proxy = w.proxy(proxy_id)
        if proxy is None or not request[AUTHZ].allowed("service", proxy.name, Access.READ):
            continue
        snap = w.snapshots.get(proxy_id)
        st = w.status.get(proxy_id)
        lag, in_sync = w.lag(proxy_id)
        out.append({
            "ProxyID": proxy_id, "Service": snap.service if snap else "", "Kind": proxy.kind.value,
            "DataPlane": st.data_plane if st else "",
            "PublicListener": _listening(snap) if snap else "",
            "Upstreams": [f"{u.destination_name}@{u.key}" for u in snap.upstreams] if snap else [],
            "LeafValidBefore": snap.leaf.valid_before if snap and snap.leaf else 0,
            "Connections": st.connections if st else 0,
            "SnapshotVersion": snap.version if snap else "", "SentVersion": st.sent_version if st else "",
            "AppliedVersion": st.applied_version if st else "", "LastSeen": st.last_seen if st else 0,
            "PublishedAt": st.published_at if st else 0, "AppliedAt": st.applied_at if st else 0,
            "LagSeconds": round(lag, 4), "InSync": in_sync, "Stale": not in_sync and lag > STALE_AFTER,
            "PID": st.pid if st else 0, "Ephemeral": proxy_id in w.ephemeral,
            "Problems": _problems(st),
        })
    return json_response(request, out)


def _problems(st: Any) -> list[str]:
    """What the proxy reported it left out or defaulted (an Envoy stream: xds/translate/problems.py)."""
    found = st.extra.get("problems") if st else None
    return [str(p) for p in found] if isinstance(found, list) else []


async def add_proxy(request: web.Request) -> web.Response:
    """A proxy with no catalog registration: ``connect proxy -service N -listen ...``;
    or, with ``Base``, a registered proxy plus more upstreams (``-sidecar-for X -upstream``)."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("body", message="expected a JSON object")
    if body.get("Base"):
        return await _extend(request, body)
    if not body.get("Service"):
        raise InvalidInput("Service", message="Service is required: the name of the service the proxy stands for")
    service = str(body["Service"])
    request[AUTHZ].require("service", service, Access.WRITE)
    upstreams = _upstreams(body)
    ctx = request.app[CTX]
    proxy_id = str(body.get("ID") or f"{service}-proxy-{uuid.uuid4().hex[:8]}")
    proxy = Service(
        node=ctx.node_name, id=proxy_id, name=f"{service}-proxy", kind=ServiceKind.CONNECT_PROXY,
        namespace=params.namespace(request.query, request.headers), address=str(body.get("ListenAddress") or ""),
        port=_int(body.get("ListenPort")), datacenter=ctx.datacenter,
        proxy=Proxy(destination_service_name=service, local_service_address=str(body.get("ServiceAddress") or ""),
                    local_service_port=_int(body.get("ServicePort")), upstreams=tuple(upstreams),
                    config=dict(body.get("Config") or {})),
    )
    _watcher(request).add_ephemeral(proxy)
    return json_response(request, {"ID": proxy_id})


def _upstreams(body: dict[str, Any]) -> list[Upstream]:
    out = []
    for i, u in enumerate(body.get("Upstreams") or []):
        if not isinstance(u, dict) or not u.get("DestinationName") or not _int(u.get("LocalBindPort")):
            raise InvalidInput(f"Upstreams[{i}]", message=f"Upstreams[{i}]: DestinationName and LocalBindPort are required")
        out.append(Upstream(destination_name=str(u["DestinationName"]),
                            local_bind_address=str(u.get("LocalBindAddress") or "127.0.0.1"),
                            local_bind_port=_int(u["LocalBindPort"]), datacenter=str(u.get("Datacenter") or ""),
                            config=dict(u.get("Config") or {})))
    return out


async def _extend(request: web.Request, body: dict[str, Any]) -> web.Response:
    w = _watcher(request)
    base = w.proxy(str(body["Base"]))
    if base is None or base.proxy is None:
        raise NotFound(f"unknown proxy ID: {body['Base']}")
    request[AUTHZ].require("service", base.name, Access.WRITE)
    added = _upstreams(body)
    taken = {(u.local_bind_address or "127.0.0.1", u.local_bind_port): u.destination_name for u in base.proxy.upstreams}
    for u in added:
        clash = taken.get((u.local_bind_address, u.local_bind_port))
        if clash is not None:
            raise InvalidInput("Upstreams", message=f"upstream {u.destination_name}: {u.local_bind_address}:"
                                                    f"{u.local_bind_port} is already the bind address of upstream {clash}")
        taken[(u.local_bind_address, u.local_bind_port)] = u.destination_name
    proxy_id = f"{base.id}-cli-{uuid.uuid4().hex[:6]}"
    extended = dataclasses.replace(base, id=proxy_id, proxy=dataclasses.replace(
        base.proxy, upstreams=(*base.proxy.upstreams, *added)))
    w.add_ephemeral(extended)
    return json_response(request, {"ID": proxy_id})


async def remove_proxy(request: web.Request) -> web.Response:
    _watcher(request).remove_ephemeral(request.match_info["id"])
    return json_response(request, True)


async def stop_proxy(request: web.Request) -> web.Response:
    w = _watcher(request)
    proxy_id = request.match_info["id"]
    proxy = w.proxy(proxy_id)
    if proxy is not None:
        request[AUTHZ].require("service", proxy.name, Access.WRITE)
    w.request_stop(proxy_id)
    return json_response(request, True)
