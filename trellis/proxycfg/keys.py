"""Reading ``Proxy.Config`` (and an upstream's ``Config``) as Consul does (pure).

Consul decodes these free-form maps with mapstructure, whose key match is
case-insensitive: ``bind_port``, ``Bind_Port`` and ``BIND_PORT`` are one key. Every reader
of a proxy config in trellis (the snapshot builder, the Envoy translation, its problem
report) goes through ``lookup`` so they agree on which value was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lookup(config: Mapping[str, Any] | None, key: str) -> Any:
    """``config[key]`` with the key compared case-insensitively (an exact match first), or None."""
    if not isinstance(config, Mapping):
        return None
    if key in config:
        return config[key]
    wanted = key.lower()
    return next((v for k, v in config.items() if isinstance(k, str) and k.lower() == wanted), None)
