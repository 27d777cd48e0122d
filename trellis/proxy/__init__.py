"""The built-in sidecar proxy: an asyncio L4 data plane fed by the agent's proxy snapshot.

    agent ── GET /v1/agent/connect/proxy-snapshot/:id (blocking) ──▶ server.ProxyServer
                                                                       │ plan.build_plan (pure)
                                                                       │ tls.build_contexts
                                                                       │ authz.Authorizer (pure)
                                                                       ▼
    peer proxy ══mTLS══▶ public listener ─ preface / authz ─▶ local service
    local app ──tcp──▶ upstream listener ─ balance (pure) ══mTLS══▶ upstream proxy

Pure cores: plan.py, balance.py, preface.py, authz.py, health.py. Shells: server.py,
listener.py, pump.py, tls.py, agent_client.py, metrics.py. docs/proxy.md has the
config keys and where trellis differs from Consul.
"""

from trellis.proxy.server import serve

__all__ = ["serve"]
