"""Envoy ``config.core`` values every translator uses: addresses, durations, config
sources and typed configs (pure).

Rules:
1. A typed config is the generated proto packed into an ``Any`` (``Any.Pack`` writes the
   ``type.googleapis.com/`` URL); nothing is built from dicts.
2. Resources that travel on the ADS stream (EDS load assignments, SDS secrets) name the
   stream itself as their source, API version V3.
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, config_source_pb2
from google.protobuf import any_pb2, duration_pb2, message


def pack(config: message.Message) -> any_pb2.Any:
    """Rule 1."""
    packed = any_pb2.Any()
    packed.Pack(config, deterministic=True)  # same bytes for the same config: stable versions
    return packed


def ads_source() -> config_source_pb2.ConfigSource:
    """Rule 2."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3,
    )


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def duration(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d
