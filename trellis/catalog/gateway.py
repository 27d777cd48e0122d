"""Gateway services in the catalog: their effective kind and their bind config (pure).

A gateway is registered in one of two shapes, and both are stored the same way: a
service whose ``proxy.config`` holds the ``envoy_gateway_*`` keys.

* Consul's: ``Kind: "ingress-gateway"`` (or ``terminating-gateway``) with
  ``Proxy.Config.envoy_gateway_bind_addresses`` and friends.
* The seed guide's (not Consul's): ``connect.gateway.proxy.{envoy_gateway_*}`` and
  usually no ``kind``. decode.py copies the ``proxy`` object into ``proxy.config`` and
  marks the service with ``connect.gateway = True``.

Rules:
1. The effective kind of a service is its registered ``kind`` when it has one. A
   service without one (``""``) that carries the ``connect.gateway`` mark takes the
   kind of the gateway config entry with its namespace and name: an
   ``ingress-gateway`` entry makes it an ingress gateway, a ``terminating-gateway``
   entry a terminating one (graph.py rule 2: never both). With neither entry it stays
   a typical service. Any other service keeps its kind, whatever entries exist.
2. The kind is decided when the service is read, never stored: an entry written
   after the registration (as the seed guide does) takes effect at once, and
   deleting it turns the service back into a typical one, without re-registering.
3. A read that applies rule 1 adds ``kind_watch(service)`` to its watch set (the two
   ``("config-entry", kind, ns, name)`` keys), so writing or deleting the entry wakes
   the blocking queries, DNS cache slots and snapshots that read the service. Other
   services add nothing.
4. ``envoy_gateway_bind_tagged_addresses`` is a bool in Consul (bind one listener per
   tagged address of the service). The seed also writes it as an object of named
   ``{address, port}``; that form means "bind exactly these named addresses" and is
   kept apart (``GatewayBinds.tagged``) so the bool keeps Consul's meaning.
5. Bind config is read the way Consul's weak decoder reads it: a bool may be given as
   Go's ``strconv.ParseBool`` text, a port as decimal text. Anything else of the wrong
   type, an unknown key inside an address, an address that is no IP, or a port outside
   1-65535 is a problem naming the key (``gateway_config_problem``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from trellis.catalog.errors import InvalidDefinition
from trellis.catalog.model import Service, ServiceAddress, ServiceKind
from trellis.store.view import View, WatchKey

BIND_ADDRESSES = "envoy_gateway_bind_addresses"
NO_DEFAULT_BIND = "envoy_gateway_no_default_bind"
BIND_TAGGED_ADDRESSES = "envoy_gateway_bind_tagged_addresses"
BIND_KEYS = (BIND_ADDRESSES, NO_DEFAULT_BIND, BIND_TAGGED_ADDRESSES)

# The gateway kinds a config entry can give a kind-less connect.gateway service (rule 1).
ENTRY_KINDS = (ServiceKind.INGRESS_GATEWAY, ServiceKind.TERMINATING_GATEWAY)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


# -- the effective kind (rules 1-3) -------------------------------------------------------


def takes_kind_from_entry(service: Service) -> bool:
    """True when rule 1 looks for a config entry to decide ``service``'s kind. Pure."""
    return service.kind is ServiceKind.TYPICAL and bool(service.connect.gateway)


def kind_watch(service: Service) -> tuple[WatchKey, ...]:
    """The view keys ``effective_kind`` reads for ``service`` (``()`` for most). Pure."""
    if not takes_kind_from_entry(service):
        return ()
    return tuple(("config-entry", k.value, service.namespace, service.name) for k in ENTRY_KINDS)


def effective_kind(view: View, service: Service) -> tuple[ServiceKind, tuple[WatchKey, ...]]:
    """``service``'s kind as every API shows it, and the watch keys that decided it.

    Rules 1-3. Pure: reads the view's config-entry table at its current revision (a
    view without one, as in some unit tests, has no entries); loop-safe like any view
    read. The proxy snapshot builder calls this to pick a gateway snapshot.
    """
    watch = kind_watch(service)
    if not watch:
        return service.kind, ()
    entries = view.tables.get("config")
    if entries is not None:
        for kind in ENTRY_KINDS:
            if entries.get(kind.value, service.namespace, service.name) is not None:  # type: ignore[attr-defined]
                return kind, watch
    return service.kind, watch


def with_effective_kind(view: View, service: Service) -> tuple[Service, tuple[WatchKey, ...]]:
    """``service`` with its effective kind (the same object when nothing changes) and the
    watch keys read. Pure."""
    kind, watch = effective_kind(view, service)
    return (service if kind is service.kind else replace(service, kind=kind)), watch


# -- bind config (rules 4-5) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayBinds:
    """Where a gateway's Envoy binds its listeners, read from ``proxy.config``.

    ``addresses``: ``envoy_gateway_bind_addresses`` (name → address). ``no_default_bind``:
    do not also bind the service's own address and port. ``bind_tagged_addresses``:
    Consul's bool form of ``envoy_gateway_bind_tagged_addresses``; ``tagged``: its
    object form (rule 4).
    """

    addresses: dict[str, ServiceAddress] = field(default_factory=dict)
    no_default_bind: bool = False
    bind_tagged_addresses: bool = False
    tagged: dict[str, ServiceAddress] = field(default_factory=dict)


class _Bad(Exception):
    """A problem at a key path inside a gateway's config (internal to this module)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


def parse_gateway_binds(config: Mapping[str, Any]) -> GatewayBinds:
    """The bind keys of a gateway's ``proxy.config``; other keys are ignored.

    Pure. Raises InvalidDefinition with ``gateway_config_problem``'s text.
    """
    try:
        return _binds(config)
    except _Bad as exc:
        raise InvalidDefinition(str(exc), field=exc.path) from None


def gateway_config_problem(config: Mapping[str, Any]) -> str | None:
    """What is wrong with the bind keys of ``config`` (``key[...]: reason``), else None. Pure."""
    try:
        _binds(config)
    except _Bad as exc:
        return str(exc)
    return None


def _binds(config: Mapping[str, Any]) -> GatewayBinds:
    tagged_value = config.get(BIND_TAGGED_ADDRESSES)
    tagged_bool, tagged_map = False, {}
    if isinstance(tagged_value, Mapping):
        tagged_map = _address_map(BIND_TAGGED_ADDRESSES, tagged_value)
    elif tagged_value is not None:
        tagged_bool = _bool(BIND_TAGGED_ADDRESSES, tagged_value, "a boolean or an object of {address, port}")
    addresses = config.get(BIND_ADDRESSES)
    if addresses is not None and not isinstance(addresses, Mapping):
        raise _Bad(BIND_ADDRESSES, f"expected an object of {{address, port}}, got {_shown(addresses)}")
    no_default = config.get(NO_DEFAULT_BIND)
    return GatewayBinds(
        addresses=_address_map(BIND_ADDRESSES, addresses or {}),
        no_default_bind=False if no_default is None else _bool(NO_DEFAULT_BIND, no_default, "a boolean"),
        bind_tagged_addresses=tagged_bool,
        tagged=tagged_map,
    )


def _address_map(key: str, value: Mapping[str, Any]) -> dict[str, ServiceAddress]:
    out = {}
    for name, item in value.items():
        path = f"{key}[{json.dumps(str(name))}]"
        if not str(name):
            raise _Bad(path, "an address needs a name")
        out[str(name)] = _address(path, item)
    return out


def _address(path: str, item: Any) -> ServiceAddress:
    if not isinstance(item, Mapping):
        raise _Bad(path, f"expected an object of address and port, got {_shown(item)}")
    given: dict[str, Any] = {}
    for k, v in item.items():
        name = str(k).lower()
        if name not in ("address", "port"):
            raise _Bad(path, f'unknown field "{k}" (an address has "address" and "port")')
        given[name] = v
    address, port = given.get("address"), given.get("port")
    if not isinstance(address, str) or not is_ip_literal(address):
        raise _Bad(f"{path}.address", f"expected an IP address, got {_shown(address)}")
    return ServiceAddress(address=address.strip("[]"), port=_port(f"{path}.port", port))


def _port(path: str, value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Bad(path, f"expected a port number (1-65535), got {_shown(value)}")
    return value


def _bool(path: str, value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE | _FALSE:
        return value in _TRUE
    raise _Bad(path, f"expected {wanted}, got {_shown(value)}")


def is_ip_literal(text: str) -> bool:
    """An IP address, IPv6 possibly in brackets."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"bool {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__
