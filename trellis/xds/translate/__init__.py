"""Snapshot -> Envoy resources, one module per resource type (pure).

    ConnectProxySnapshot ─┬─ secrets.build_secrets    leaf/<ns>/<service>, roots
                          ├─ clusters.build_clusters  local_app, one EDS cluster per served upstream
                          ├─ endpoints.build_endpoints one ClusterLoadAssignment per EDS cluster
                          └─ listeners.build_listeners public_listener (TLS + RBAC, plaintext /health),
                                                       one outbound listener per served upstream
    ConnectProxySnapshot ─── problems.problems         why a piece is left out or defaulted, one sentence
                                                       each (the xDS server logs them; connect proxy -list)
    shared: knobs.py (which upstreams are served, proxy-config values), tls.py (TLS contexts
            naming SDS secrets), rbac.py (intentions -> RBAC rules, used by listeners.py),
            core.py (addresses, durations, config sources, Any packing)

Every function here takes the snapshot (or a piece of it) and returns new protos (problems.py:
sentences); nothing reads a clock, a file or the network, and every list comes out in a fixed
order.
"""
