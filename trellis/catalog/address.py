"""Addresses as Go and Consul's agent write and read them (pure).

Owns ``ip_family`` (Go's ``net.ParseIP`` view of an address), ``join_host_port`` (Go's
``net.JoinHostPort``) and ``upstream_bind_address`` (Consul's
``UpstreamAddressToString``). Used by validation (tagged-address families, upstream
bind clashes), by registration building (default tagged addresses) and by sidecar
expansion (the listening check's target).

Rule: results match Go's text byte for byte: IPv6 literals are bracketed, a
v4-mapped IPv6 address counts as IPv4.
"""

from __future__ import annotations

import functools
import ipaddress

from trellis.catalog.model import Upstream


@functools.lru_cache(maxsize=4096)
def ip_family(address: str) -> int:
    """4 or 6 as Go's ``net.ParseIP(...).To4()`` sees it (v4-mapped v6 counts as 4); 0 otherwise."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 0
    if isinstance(ip, ipaddress.IPv6Address):
        return 4 if ip.ipv4_mapped is not None else 6
    return 4


def join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: IPv6 literals get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def upstream_bind_address(u: Upstream) -> str:
    """Consul's ``UpstreamAddressToString``: the socket path, or host:port (127.0.0.1 default)."""
    if u.local_bind_port == 0 and not u.local_bind_address and u.local_bind_socket_path:
        return u.local_bind_socket_path
    return join_host_port(u.local_bind_address or "127.0.0.1", u.local_bind_port)
