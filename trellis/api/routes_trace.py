"""``GET /v1/agent/connect/trace?source=SRC&destination=DST``: the path a request from a
local proxy to a destination would take, step by step (trellis's own endpoint; the
core is proxycfg/trace.py, the JSON api/codec_trace.py).

Rules:
1. ``source`` is a proxy ID, or the ID or name of a service whose sidecar runs on this
   agent, or the ID or name of an ingress gateway registered here (its effective kind;
   trace.py ``select_source``); ``destination`` is ``name`` or ``ns/name``.
   Either missing is a 400; an unknown source, or a destination that is no upstream,
   no chain target and no service in the catalog, is a 404 naming it.
2. ACLs are the snapshot endpoint's: ``service:write`` on the source proxy, since the
   trace reads its snapshot (and shows nothing the snapshot does not hold, but for
   the identity and expiry of other local sidecars' leaves, never their keys).
3. The trace reads the snapshots the agent publishes, the registry's record of the
   source's data plane, and the intentions index at this revision; it never waits for
   a snapshot: a proxy without one yet fails the first step.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from trellis.acl import Access
from trellis.api.app import AUTHZ, CTX, json_response
from trellis.api.codec_trace import encode_trace
from trellis.catalog.gateway import with_effective_kind
from trellis.catalog.model import ServiceKind
from trellis.errors import InvalidInput, NotFound, Unavailable
from trellis.proxycfg import trace as tracer
from trellis.proxycfg.model import ConnectProxySnapshot
from trellis.proxycfg.watcher import STALE_AFTER

PATH = "/v1/agent/connect/trace"


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get(PATH, trace)


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise InvalidInput(name, message=f"required query parameter '{name}' not set")
    return value


async def trace(request: web.Request) -> web.Response:
    source, destination = _required(request, "source"), _required(request, "destination")
    ns, name = tracer.parse_destination(destination)
    ctx = request.app[CTX]
    w = ctx.proxies
    if w is None:
        raise Unavailable("Connect is not enabled on this agent: there are no proxy snapshots to trace")
    local = [s for s in (with_effective_kind(ctx.view, s)[0] for s in ctx.view["services"].on_node(w.node))
             if s.kind in (ServiceKind.CONNECT_PROXY, ServiceKind.INGRESS_GATEWAY)]
    proxy = tracer.select_source([*local, *w.ephemeral.values()], source)
    request[AUTHZ].require("service", proxy.name, Access.WRITE)
    snap: ConnectProxySnapshot | None = w.snapshots.get(proxy.id)
    if snap is None:
        found = tracer.trace_without_snapshot(proxy.id, tracer.source_service(proxy), proxy.namespace,
                                              destination, "its leaf certificate is not issued yet, or the "
                                              "agent has just started")
        return json_response(request, encode_trace(found))
    _require_known(ctx.view, snap, ns or snap.namespace, name, destination)
    index = ctx.view["config"].intention_index()
    default = ctx.intention_default
    found = tracer.trace(
        snap, destination, now=time.time(), status=_state(w, proxy.id),
        decide=lambda src, dst: index.decide(src, dst, default=default),
        destination_snapshots=tuple(s for pid, s in w.snapshots.items() if pid != proxy.id),
    )
    return json_response(request, encode_trace(found))


def _require_known(view: Any, snap: ConnectProxySnapshot, ns: str, name: str, shown: str) -> None:
    """Rule 1: a name nothing knows is a typo, not a broken path."""
    if tracer.select_upstreams(snap, shown):
        return
    if any(u.chain is not None and any(t.service == name for t in u.chain.targets) for u in snap.upstreams):
        return
    if view["services"].named(ns, name):
        return
    raise NotFound(f"unknown destination {shown!r}: no upstream of {snap.proxy_id} and no service in the "
                   f"catalog has that name")


def _state(w: Any, proxy_id: str) -> tracer.ProxyState | None:
    """The registry's record of the proxy (watcher.py rule 3), as the core reads it."""
    st = w.status.get(proxy_id)
    if st is None:
        return None
    lag, in_sync = w.lag(proxy_id)
    found = st.extra.get("problems") if st.extra else None
    problems = tuple(str(p) for p in found) if isinstance(found, list) else ()
    return tracer.ProxyState(data_plane=st.data_plane, applied_version=st.applied_version, in_sync=in_sync,
                             lag_seconds=round(lag, 4), stale=not in_sync and lag > STALE_AFTER, problems=problems)
