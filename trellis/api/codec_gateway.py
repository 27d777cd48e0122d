"""Consul's JSON for gateway rows: ``/v1/catalog/gateway-services/:gateway`` (pure).

Field names and order follow Consul's ``structs.GatewayService`` (the server's type,
which adds ``ServiceKind``, the Raft indexes and ``AutoHostRewrite`` to
``api.GatewayService``): ``Gateway``, ``Service`` and ``GatewayKind`` are always
present, every other field is ``omitempty``. A ``ServiceName`` is ``{"Name"}`` as
Consul CE prints it, plus ``Namespace`` outside the default namespace (codec.py rule 6).
"""

from __future__ import annotations

from typing import Any

from trellis.catalog.gateway_services import GatewayService, ServiceName
from trellis.catalog.model import DEFAULT_NAMESPACE


def encode_service_name(n: ServiceName) -> dict[str, str]:
    out = {"Name": n.name}
    if n.namespace != DEFAULT_NAMESPACE:
        out["Namespace"] = n.namespace
    return out


def encode_gateway_service(g: GatewayService) -> dict[str, Any]:
    out: dict[str, Any] = {"Gateway": encode_service_name(g.gateway), "Service": encode_service_name(g.service),
                           "GatewayKind": g.gateway_kind.value}
    for key, value in (
        ("Port", g.port), ("Protocol", g.protocol), ("Hosts", list(g.hosts)), ("CAFile", g.ca_file),
        ("CertFile", g.cert_file), ("KeyFile", g.key_file), ("SNI", g.sni), ("FromWildcard", g.from_wildcard),
        ("ServiceKind", g.service_kind),
    ):
        if value:
            out[key] = value
    out.update(CreateIndex=g.create_index, ModifyIndex=g.modify_index)
    if g.auto_host_rewrite:
        out["AutoHostRewrite"] = True
    return out
