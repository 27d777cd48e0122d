"""A service DNS cannot serve is registered (Consul accepts it) and the agent logs why,
as Consul's does, for registrations over the API."""

from __future__ import annotations

import pytest

from trellis.testing.agent import start_agent
from trellis.testing.apps import eventually

pytestmark = pytest.mark.integration


def test_a_name_and_a_tag_dns_cannot_serve_are_accepted_and_logged(tmp_path):
    agent = start_agent(tmp_path)
    try:
        status, _, text = agent.request("PUT", "/v1/agent/service/register",
                                        {"Name": "web_api", "Port": 80, "Tags": ["ok", "v1.2_beta"]})
        assert status == 200, text
        eventually(lambda: "Service name 'web_api' will not be discoverable via DNS" in agent.log(),
                   "the name warning in the agent's log")
        assert "Service tag 'v1.2_beta' will not be discoverable via DNS" in agent.log()
        assert "Service tag 'ok'" not in agent.log()
    finally:
        agent.stop()
