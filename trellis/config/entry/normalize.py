"""Normalising a decoded config entry before it is validated and stored (pure).

Rules (Consul's ``Normalize()`` of each kind):
1. service-defaults: ``Protocol`` and upstream protocols are lower-cased.
2. proxy-defaults: an empty Name is ``global``.
3. service-intentions: actions lower-cased; ``Type`` defaults to ``consul``; a
   source's namespace defaults to the entry's; HTTP methods upper-cased; every
   source's ``Precedence`` is computed; sources are sorted by precedence (stable).
   Consul leaves ``Action`` as given (``ALLOW`` then fails); trellis lower-cases it.
4. ingress-gateway: a listener's ``Protocol`` is lower-cased, empty is ``tcp``.
5. service-router: HTTP methods upper-cased.
6. service-splitter: each ``Weight`` is rounded to two decimals the way Consul does
   it (in float32, half away from zero: ``33.333`` is ``33.33``), so weights are
   whole hundredths of a percent.
7. Anything else is kept as given; ``namespace`` comes from the entry, else the request.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

from trellis.config.entry.model import (
    IntentionPermission,
    ProxyDefaults,
    ServiceDefaults,
    ServiceIntentions,
    SourceIntention,
    UpstreamConfig,
    UpstreamConfiguration,
)
from trellis.config.entry.model_chain import ServiceRouter, ServiceSplitter
from trellis.config.entry.model_gateway import IngressGateway
from trellis.connect.intentions.precedence import precedence


def normalize(entry: Any) -> Any:
    if isinstance(entry, ServiceDefaults):
        return _service_defaults(entry)
    if isinstance(entry, ProxyDefaults):
        return entry if entry.name else dataclasses.replace(entry, name="global")
    if isinstance(entry, ServiceIntentions):
        return _intentions(entry)
    if isinstance(entry, IngressGateway):
        return dataclasses.replace(entry, listeners=tuple(
            dataclasses.replace(li, protocol=li.protocol.lower() or "tcp") for li in entry.listeners))
    if isinstance(entry, ServiceRouter):
        return _router(entry)
    if isinstance(entry, ServiceSplitter):
        return dataclasses.replace(entry, splits=tuple(
            dataclasses.replace(s, weight=split_weight(s.weight)) for s in entry.splits))
    return entry


def _float32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def scaled_weight(weight: float) -> int:
    """A weight in hundredths of a percent, as Consul's ``scaleWeight`` (float32, then
    Go's ``math.Round``: half away from zero). Pure."""
    if not abs(weight) < 1e30:  # far outside 0..100 (validation refuses it); no float32 for it
        return round(weight * 100)
    scaled = _float32(_float32(weight) * 100.0)
    return int(math.copysign(math.floor(abs(scaled) + 0.5), scaled))


def split_weight(weight: float) -> float:
    """Rule 6."""
    return scaled_weight(weight) / 100


def _router(e: ServiceRouter) -> ServiceRouter:
    routes = []
    for r in e.routes:
        http = r.match.http if r.match else None
        if http is not None and http.methods:
            r = dataclasses.replace(r, match=dataclasses.replace(r.match, http=dataclasses.replace(
                http, methods=tuple(m.upper() for m in http.methods))))
        routes.append(r)
    return dataclasses.replace(e, routes=tuple(routes))


def _upstream(u: UpstreamConfig | None) -> UpstreamConfig | None:
    return None if u is None else dataclasses.replace(u, protocol=u.protocol.lower())


def _service_defaults(e: ServiceDefaults) -> ServiceDefaults:
    uc = e.upstream_config
    if uc is not None:
        uc = UpstreamConfiguration(tuple(_upstream(o) for o in uc.overrides), _upstream(uc.defaults))  # type: ignore[misc]
    return dataclasses.replace(e, protocol=e.protocol.lower(), upstream_config=uc)


def _permission(p: IntentionPermission) -> IntentionPermission:
    http = p.http
    if http is not None:
        http = dataclasses.replace(http, methods=tuple(m.upper() for m in http.methods))
    return IntentionPermission(action=p.action.lower(), http=http)


def _source(e: ServiceIntentions, s: SourceIntention) -> SourceIntention:
    ns = s.namespace or e.namespace
    return dataclasses.replace(
        s, namespace=ns, action=s.action.lower(), type=s.type or "consul",
        permissions=tuple(_permission(p) for p in s.permissions),
        precedence=precedence(ns, s.name, e.namespace, e.name),
    )


def _intentions(e: ServiceIntentions) -> ServiceIntentions:
    sources = [_source(e, s) for s in e.sources]
    sources.sort(key=lambda s: -s.precedence)  # stable: ties keep their order, as Consul's SliceStable
    return dataclasses.replace(e, sources=tuple(sources))

