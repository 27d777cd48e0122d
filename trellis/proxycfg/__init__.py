"""proxycfg: everything one proxy needs, as one versioned snapshot built from the view.

    view tables ──┐
    leaf (agent) ─┼─▶ build (pure) ─▶ ConnectProxySnapshot + the keys it read ─▶ hash ─▶ version
    CA roots ─────┘                                                                 │
                       ProxyWatcher (shell): wait on those keys / the leaf, debounce ◀┘
                       ─▶ GET /v1/agent/connect/proxy-snapshot/:id (blocking) ─▶ built-in proxy
                       ─▶ (next issue) xDS translation ─▶ Envoy

Both data planes consume the same snapshot; see model.py for its shape.
"""
