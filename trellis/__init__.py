"""trellis: a service mesh that speaks Consul's HTTP API and CLI."""

__version__ = "0.1.0"

# The Consul API version trellis implements; clients gate features on it
# (reported as Config.Version by /v1/agent/self).
CONSUL_API_VERSION = "1.22.0"
