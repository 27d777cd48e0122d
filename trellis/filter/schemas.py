"""The schemas of the Consul documents trellis filters: one per document type.

Each schema mirrors the Go struct Consul hands to go-bexpr for that endpoint, minus the
fields tagged ``bexpr:"-"`` (RaftIndex, EnterpriseMeta, Locality, HealthCheck.Definition,
Proxy.Config, ...). Sources: hashicorp/consul ``agent/structs/structs.go`` (Node,
ServiceNode, NodeService, HealthCheck, CheckServiceNode), ``agent/structs/
connect_proxy_config.go`` (ConnectProxyConfig, Upstream, ExposeConfig) and ``api/agent.go``
(AgentService, AgentMember).

Rule: these constants are the single source of truth for what a selector may say;
endpoint code passes one to ``compile`` and never lists selectors itself. To add a
schema (config entries, intentions), build it here from ``struct``/``list_of``/
``map_of`` and the shared parts below, and add it to ``BY_NAME``.
"""

from __future__ import annotations

from trellis.filter.schema import BOOL, INT, STRING, Field, list_of, map_of, struct

# -- shared parts ---------------------------------------------------------------------

WEIGHTS = struct(Passing=INT, Warning=INT)
SERVICE_ADDRESS = struct(Address=STRING, Port=INT)
MESH_GATEWAY = struct(Mode=STRING)

UPSTREAM = struct(
    DestinationType=STRING,
    DestinationNamespace=STRING,
    DestinationPartition=STRING,
    DestinationPeer=STRING,
    DestinationName=STRING,
    Datacenter=STRING,
    LocalBindAddress=STRING,
    LocalBindPort=INT,
    LocalBindSocketPath=STRING,
    LocalBindSocketMode=STRING,
    MeshGateway=MESH_GATEWAY,
)

EXPOSE = struct(
    Checks=BOOL,
    Paths=list_of(
        struct(
            ListenerPort=INT,
            Path=STRING,
            LocalPathPort=INT,
            Protocol=STRING,
            ParsedFromCheck=BOOL,
        )
    ),
)

PROXY = struct(
    DestinationServiceName=STRING,
    DestinationServiceID=STRING,
    LocalServiceAddress=STRING,
    LocalServicePort=INT,
    LocalServiceSocketPath=STRING,
    Mode=STRING,
    Upstreams=list_of(UPSTREAM),
    MeshGateway=MESH_GATEWAY,
    Expose=EXPOSE,
    TransparentProxy=struct(OutboundListenerPort=INT, DialedDirectly=BOOL),
    AccessLogs=struct(
        Enabled=BOOL,
        DisableListenerLogs=BOOL,
        Type=STRING,
        Path=STRING,
        JSONFormat=STRING,
        TextFormat=STRING,
    ),
)

CONNECT = struct(Native=BOOL)

# -- documents --------------------------------------------------------------------------

# structs.Node: /v1/catalog/nodes elements, and CheckServiceNode.Node.
NODE = struct(
    ID=STRING,
    Node=STRING,
    Address=STRING,
    Datacenter=STRING,
    Partition=STRING,
    PeerName=STRING,
    TaggedAddresses=map_of(STRING),
    Meta=map_of(STRING),
)

# structs.ServiceNode: /v1/catalog/service/:service and /v1/catalog/connect/:service elements.
SERVICE_NODE = struct(
    ID=STRING,
    Node=STRING,
    Address=STRING,
    Datacenter=STRING,
    TaggedAddresses=map_of(STRING),
    NodeMeta=map_of(STRING),
    ServiceKind=STRING,
    ServiceID=STRING,
    ServiceName=STRING,
    ServiceTags=list_of(STRING),
    ServiceAddress=STRING,
    ServiceTaggedAddresses=map_of(SERVICE_ADDRESS),
    ServiceWeights=WEIGHTS,
    ServiceMeta=map_of(STRING),
    ServicePort=INT,
    ServiceSocketPath=STRING,
    ServiceEnableTagOverride=BOOL,
    ServiceProxy=PROXY,
    ServiceConnect=CONNECT,
    PeerName=STRING,
)

# structs.NodeService (/v1/catalog/node/:node services, CheckServiceNode.Service) and
# api.AgentService (/v1/agent/services values): the union of both, so a selector that
# is valid on either endpoint is valid here.
NODE_SERVICE = struct(
    Kind=STRING,
    ID=STRING,
    Service=STRING,
    Tags=list_of(STRING),
    Address=STRING,
    TaggedAddresses=map_of(SERVICE_ADDRESS),
    Meta=map_of(STRING),
    Port=INT,
    SocketPath=STRING,
    Weights=WEIGHTS,
    EnableTagOverride=BOOL,
    Proxy=PROXY,
    Connect=CONNECT,
    PeerName=STRING,
    Datacenter=STRING,
)

# structs.HealthCheck: /v1/health/node, /health/checks, /health/state, /agent/checks values.
HEALTH_CHECK = struct(
    Node=STRING,
    CheckID=STRING,
    Name=STRING,
    Status=STRING,
    Notes=STRING,
    Output=STRING,
    ServiceID=STRING,
    ServiceName=STRING,
    ServiceTags=list_of(STRING),
    Type=STRING,
    Interval=STRING,
    Timeout=STRING,
    ExposedPort=INT,
    PeerName=STRING,
)

# structs.CheckServiceNode: /v1/health/service/:service and /health/connect elements.
CHECK_SERVICE_NODE = struct(
    Node=NODE,
    Service=NODE_SERVICE,
    Checks=list_of(HEALTH_CHECK),
)

# api.AgentMember: /v1/agent/members elements (Status is serf's numeric member status).
MEMBER = struct(
    Name=STRING,
    Addr=STRING,
    Port=INT,
    Tags=map_of(STRING),
    Status=INT,
    ProtocolMin=INT,
    ProtocolMax=INT,
    ProtocolCur=INT,
    DelegateMin=INT,
    DelegateMax=INT,
    DelegateCur=INT,
)

# structs.Intention: /v1/connect/intentions elements (agent/structs/intention.go).
INTENTION_HTTP_HEADER = struct(Name=STRING, Present=BOOL, Exact=STRING, Prefix=STRING, Suffix=STRING,
                               Contains=STRING, Regex=STRING, Invert=BOOL, IgnoreCase=BOOL)
INTENTION = struct(
    ID=STRING,
    Description=STRING,
    SourcePeer=STRING,
    SourceNS=STRING,
    SourceName=STRING,
    DestinationNS=STRING,
    DestinationName=STRING,
    SourceType=STRING,
    Action=STRING,
    Permissions=list_of(struct(
        Action=STRING,
        HTTP=struct(PathExact=STRING, PathPrefix=STRING, PathRegex=STRING, Header=list_of(INTENTION_HTTP_HEADER),
                    Methods=list_of(STRING)),
    )),
    Meta=map_of(STRING),
    Precedence=INT,
)

# structs.ServiceConfigEntry: GET /v1/config/service-defaults?filter= (the one kind Consul filters).
SERVICE_DEFAULTS = struct(
    Kind=STRING,
    Name=STRING,
    Protocol=STRING,
    Mode=STRING,
    MutualTLSMode=STRING,
    ExternalSNI=STRING,
    MaxInboundConnections=INT,
    LocalConnectTimeoutMs=INT,
    LocalRequestTimeoutMs=INT,
    BalanceInboundConnections=STRING,
    MeshGateway=MESH_GATEWAY,
    TransparentProxy=struct(OutboundListenerPort=INT, DialedDirectly=BOOL),
    Meta=map_of(STRING),
)

BY_NAME: dict[str, Field] = {
    "NODE": NODE,
    "SERVICE_NODE": SERVICE_NODE,
    "NODE_SERVICE": NODE_SERVICE,
    "HEALTH_CHECK": HEALTH_CHECK,
    "CHECK_SERVICE_NODE": CHECK_SERVICE_NODE,
    "MEMBER": MEMBER,
    "INTENTION": INTENTION,
    "SERVICE_DEFAULTS": SERVICE_DEFAULTS,
}
