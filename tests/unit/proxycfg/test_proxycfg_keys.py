"""Proxy.Config keys compare case-insensitively, as Consul's mapstructure decoding does, in
the snapshot builder as in the Envoy translation (proxycfg/keys.py)."""

from __future__ import annotations

import pytest

from trellis.catalog.model import Upstream
from trellis.proxycfg import build as builder
from trellis.proxycfg.keys import lookup
from trellis.proxycfg.model import DefaultDecision
from test_proxycfg_build import mesh, put, sidecar

ALLOW = DefaultDecision(True, "Default intention policy")


@pytest.mark.parametrize(("config", "key", "expected"), [
    ({"bind_port": 1}, "bind_port", 1),
    ({"Bind_Port": 2}, "bind_port", 2),
    ({"BIND_PORT": 3, "bind_port": 4}, "bind_port", 4),  # an exact match wins
    ({"other": 5}, "bind_port", None),
    (None, "bind_port", None),
    ({1: "not a string key"}, "bind_port", None),
])
def test_lookup(config, key, expected):
    assert lookup(config, key) == expected


async def test_the_builder_reads_proxy_config_keys_in_any_case():
    async with mesh() as (view, writer, _):
        web = sidecar("web", 21000, config={"Bind_Port": 21500, "BIND_ADDRESS": "127.0.0.9", "Protocol": "HTTP",
                                            "Local_Connect_Timeout_MS": 250},
                      upstreams=(Upstream(destination_name="api", local_bind_port=9191,
                                          config={"Connect_Timeout_MS": 700, "PROTOCOL": "http2"}),))
        await put(writer, view, web)
        snap = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value
        p = snap.public
        assert (p.bind_address, p.bind_port, p.protocol, p.local_connect_timeout_ms) == ("127.0.0.9", 21500, "http", 250)
        (up,) = snap.upstreams
        assert (up.connect_timeout_ms, up.protocol) == (700, "http2")
