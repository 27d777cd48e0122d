"""Integration fixtures: a real ``trellis agent -dev`` subprocess per module."""

from __future__ import annotations

import pytest

from trellis.testing.agent import AgentProcess, start_agent


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("agent"))
    yield proc
    rc = proc.stop()
    assert rc == 0, f"agent did not stop cleanly ({rc}):\n{proc.log()}"


@pytest.fixture()
def consul_client(agent):
    import consul

    return consul.Consul(host="127.0.0.1", port=agent.http_port)
