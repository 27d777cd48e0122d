"""Normalising a decoded config entry before it is validated and stored (pure).

Rules (Consul's ``Normalize()`` of each kind):
1. service-defaults: ``Protocol`` and upstream protocols are lower-cased.
2. proxy-defaults: an empty Name is ``global``.
3. service-intentions: actions lower-cased; ``Type`` defaults to ``consul``; a
   source's namespace defaults to the entry's; HTTP methods upper-cased; every
   source's ``Precedence`` is computed; sources are sorted by precedence (stable).
   Consul leaves ``Action`` as given (``ALLOW`` then fails); trellis lower-cases it.
4. Anything else is kept as given; ``namespace`` comes from the entry, else the request.
"""

from __future__ import annotations

import dataclasses
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
from trellis.connect.intentions.precedence import precedence


def normalize(entry: Any) -> Any:
    if isinstance(entry, ServiceDefaults):
        return _service_defaults(entry)
    if isinstance(entry, ProxyDefaults):
        return entry if entry.name else dataclasses.replace(entry, name="global")
    if isinstance(entry, ServiceIntentions):
        return _intentions(entry)
    return entry


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

