"""The Go structs a service or check definition is decoded against (pure tables).

One ``Schema`` per Consul struct (``structs.ServiceDefinition``, ``structs.CheckType``,
``structs.ConnectProxyConfig`` ...): which fields it has, their Go names and the Go
types named in API error messages. ``decode.py`` reads through these tables; a field
missing here is an unknown key (``definition.py`` rule 2).

Rules:
1. A field's snake_case spelling is derived from its Go name unless ``Field.snake``
   says otherwise (``""``: no snake spelling).
2. Check fields depend on where the check sits (``check_schema``): ``CheckID`` inside
   a service, ``ID``/``Token`` on /v1/agent/check/register, all of them in config files.
3. The closed sets of string values (kinds, proxy modes ...) are listed here too.
"""

from __future__ import annotations

from trellis.catalog.keymatch import Field, Schema
from trellis.catalog.model import ServiceKind

SERVICE = Schema("ServiceDefinition", [
    ("kind", "Kind", "structs.ServiceKind"),
    ("id", "ID", "string"),
    ("name", "Name", "string"),
    ("namespace", "Namespace", "string"),
    ("tags", "Tags", "[]string"),
    ("address", "Address", "string"),
    ("tagged_addresses", "TaggedAddresses", "map[string]structs.ServiceAddress"),
    ("meta", "Meta", "map[string]string"),
    ("port", "Port", "int"),
    ("socket_path", "SocketPath", "string"),
    ("check", "Check", "structs.CheckType"),
    ("checks", "Checks", "structs.CheckTypes"),
    ("weights", "Weights", "structs.Weights"),
    ("token", "Token", "string"),
    ("enable_tag_override", "EnableTagOverride", "bool"),
    ("proxy", "Proxy", "structs.ConnectProxyConfig"),
    ("connect", "Connect", "structs.ServiceConnect"),
    ("locality", "Locality", "structs.Locality"),
])
CONNECT = Schema("ServiceConnect", [
    ("native", "Native", "bool"),
    ("sidecar_service", "SidecarService", "structs.ServiceDefinition"),
    ("gateway", "Gateway", "trellis.GatewayConnect"),  # the seed's connect.gateway (not Consul's)
])
# The seed's ``connect.gateway``: only ``proxy``, a free-form object like Proxy.Config.
GATEWAY_CONNECT = Schema("GatewayConnect", [("proxy", "Proxy", "map[string]interface {}")])
PROXY = Schema("ConnectProxyConfig", [
    ("destination_service_name", "DestinationServiceName", "string"),
    ("destination_service_id", "DestinationServiceID", "string"),
    ("local_service_address", "LocalServiceAddress", "string"),
    ("local_service_port", "LocalServicePort", "int"),
    ("local_service_socket_path", "LocalServiceSocketPath", "string"),
    ("mode", "Mode", "structs.ProxyMode"),
    ("transparent_proxy", "TransparentProxy", "structs.TransparentProxyConfig"),
    ("config", "Config", "map[string]interface {}"),
    ("upstreams", "Upstreams", "structs.Upstreams"),
    ("mesh_gateway", "MeshGateway", "structs.MeshGatewayConfig"),
    ("expose", "Expose", "structs.ExposeConfig"),
    ("access_logs", "AccessLogs", "structs.AccessLogsConfig"),
    ("envoy_extensions", "EnvoyExtensions", "[]structs.EnvoyExtension"),
])
UPSTREAM = Schema("Upstream", [
    ("destination_type", "DestinationType", "string"),
    ("destination_namespace", "DestinationNamespace", "string"),
    ("destination_partition", "DestinationPartition", "string"),
    ("destination_peer", "DestinationPeer", "string"),
    ("destination_name", "DestinationName", "string"),
    ("datacenter", "Datacenter", "string"),
    ("local_bind_address", "LocalBindAddress", "string"),
    ("local_bind_port", "LocalBindPort", "int"),
    ("local_bind_socket_path", "LocalBindSocketPath", "string"),
    ("local_bind_socket_mode", "LocalBindSocketMode", "string"),
    ("config", "Config", "map[string]interface {}"),
    ("mesh_gateway", "MeshGateway", "structs.MeshGatewayConfig"),
    ("centrally_configured", "CentrallyConfigured", "bool"),
])
SERVICE_ADDRESS = Schema("ServiceAddress", [("address", "Address", "string"), ("port", "Port", "int")])
WEIGHTS = Schema("Weights", [("passing", "Passing", "int"), ("warning", "Warning", "int")])
LOCALITY = Schema("Locality", [("region", "Region", "string"), ("zone", "Zone", "string")])
MESH_GATEWAY = Schema("MeshGatewayConfig", [("mode", "Mode", "structs.MeshGatewayMode")])
TRANSPARENT_PROXY = Schema("TransparentProxyConfig", [
    ("outbound_listener_port", "OutboundListenerPort", "int"),
    ("dialed_directly", "DialedDirectly", "bool"),
])
EXPOSE = Schema("ExposeConfig", [("checks", "Checks", "bool"), ("paths", "Paths", "[]structs.ExposePath")])
EXPOSE_PATH = Schema("ExposePath", [
    ("listener_port", "ListenerPort", "int"),
    ("path", "Path", "string"),
    ("local_path_port", "LocalPathPort", "int"),
    ("protocol", "Protocol", "string"),
    ("parsed_from_check", "ParsedFromCheck", "bool"),
])
ACCESS_LOGS = Schema("AccessLogsConfig", [
    ("enabled", "Enabled", "bool"),
    ("disable_listener_logs", "DisableListenerLogs", "bool"),
    ("type", "Type", "structs.LogSinkType"),
    ("path", "Path", "string"),
    ("json_format", "JSONFormat", "string"),
    ("text_format", "TextFormat", "string"),
])
ENVOY_EXTENSION = Schema("EnvoyExtension", [
    ("name", "Name", "string"),
    ("required", "Required", "bool"),
    ("arguments", "Arguments", "map[string]interface {}"),
    ("consul_version", "ConsulVersion", "string"),
    ("envoy_version", "EnvoyVersion", "string"),
])
CHECK_ALL = Schema("CheckType", [
    ("check_id", "CheckID", "types.CheckID"),
    ("id", "ID", "string"),
    ("name", "Name", "string"),
    ("notes", "Notes", "string"),
    ("status", "Status", "string"),
    ("service_id", "ServiceID", "string"),
    ("token", "Token", "string"),
    # Consul reads ScriptArgs, then `args`, then `script_args`; the first non-empty wins.
    Field("script_args", "ScriptArgs", "[]string", snake=""),
    ("args", "Args", "[]string"),
    Field("script_args_snake", "", "[]string", snake="script_args"),
    ("http", "HTTP", "string"),
    ("header", "Header", "map[string][]string"),
    ("method", "Method", "string"),
    ("body", "Body", "string"),
    ("disable_redirects", "DisableRedirects", "bool"),
    ("tcp", "TCP", "string"),
    ("tcp_use_tls", "TCPUseTLS", "bool"),
    ("udp", "UDP", "string"),
    ("grpc", "GRPC", "string"),
    ("grpc_use_tls", "GRPCUseTLS", "bool"),
    Field("h2ping", "H2PING", "string", snake=""),
    Field("h2ping_use_tls", "H2PingUseTLS", "bool", snake="h2ping_use_tls"),
    ("os_service", "OSService", "string"),
    ("docker_container_id", "DockerContainerID", "string"),
    ("shell", "Shell", "string"),
    ("alias_node", "AliasNode", "string"),
    ("alias_service", "AliasService", "string"),
    ("interval", "Interval", "time.Duration"),
    ("timeout", "Timeout", "time.Duration"),
    ("ttl", "TTL", "time.Duration"),
    ("deregister_critical_service_after", "DeregisterCriticalServiceAfter", "time.Duration"),
    ("tls_server_name", "TLSServerName", "string"),
    ("tls_skip_verify", "TLSSkipVerify", "bool"),
    ("success_before_passing", "SuccessBeforePassing", "int"),
    ("failures_before_warning", "FailuresBeforeWarning", "int"),
    ("failures_before_critical", "FailuresBeforeCritical", "int"),
    ("output_max_size", "OutputMaxSize", "int"),
])
# Consul: CheckID inside service definitions, ID on /v1/agent/check/register; each
# endpoint rejects the other spelling. Config files accept both (and `id` is usual).
CHECK_IN_SERVICE = CHECK_ALL.without("id", "token")
CHECK_STANDALONE = CHECK_ALL.without("check_id")
CHECK_CONFIG = CHECK_ALL

KINDS = tuple(k.value for k in ServiceKind)
PROXY_MODES = ("", "direct", "transparent")
MESH_GATEWAY_MODES = ("", "none", "local", "remote")
ACCESS_LOG_TYPES = ("", "file", "stderr", "stdout")


def check_schema(origin: str, *, in_service: bool) -> Schema:
    """The ``CheckType`` spellings accepted for a check from ``origin`` (rule 2)."""
    if origin == "config":
        return CHECK_CONFIG
    return CHECK_IN_SERVICE if in_service else CHECK_STANDALONE
