"""xds: proxy snapshots as Envoy resources, served over incremental (delta) ADS.

    ProxyWatcher (proxycfg) ──snapshot──▶ resources.build_resources (pure) ──▶ {type URL: {name: proto}}
                                                       │ per-resource version = hash of its bytes
    Envoy ◀══ DeltaAggregatedResources ══ server.XdsServer: what changed since the last ACK,
                                          make-before-break order, ACK/NACK per nonce

``types.py`` names the resource types; the translation lives in ``resources.py`` (and the
modules it uses), the protocol in ``server.py``.
"""
