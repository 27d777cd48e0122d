"""Consul service and check definitions: decode, validate, build registrations (pure).

The public entry: callers import from here; the work is done in the modules below,
which this one re-exports unchanged.

Data flow::

    JSON body / config file ──decode_service──▶ ServiceDefinition ──build_registration──▶ Registration
         (Mapping)              decode_check       (validated)          (+ sidecar.py)      Service + Checks
                                                                                            [+ sidecar Registration]

Modules (each imports only those above it; ``sidecar.py`` sits between ``spec`` and
``validate``)::

    spec.py      ServiceDefinition, CheckSpec, Registration; detect_check_type, deregister_after
    address.py   ip_family, join_host_port, upstream_bind_address (Go's address text)
    gateway.py   a gateway's bind config (checked in both forms) and its effective kind
    keymatch.py  At, Schema, match_fields, the read_* scalar readers (rules 1–2)
    schema.py    one Schema per Consul struct; which check spellings apply where
    validate.py  Consul's rules and messages: validate_service/validate_check, *_problem(s) (rule 3)
    decode.py    decode_service, decode_service_file, decode_check and their readers (rules 1–3, 5)
    build.py     build_registration, build_check: agent defaults, check IDs, tagged addresses (rule 4)

Rules:
1. Keys match case-insensitively on the Go field name *and* on the snake_case
   form, at every level and for both origins (``EnableTagOverride``,
   ``enabletagoverride``, ``enable_tag_override``). When a field is given in both
   forms the Go form wins (Consul: "CamelCase wins"). Free-form maps (``meta``,
   ``proxy.config``, upstream ``config``, check ``header``, tagged-address keys,
   ``connect.gateway.proxy``) keep their keys verbatim.
2. Unknown keys are errors at every level. ``origin="api"`` uses Consul's text
   (``Request decode failed: json: unknown field "xyz"``); ``origin="config"``
   names the key path (``services[0].connect.sidecar_service: unknown field "foo"``).
   JSON ``null`` means "not given", as in Go.
3. ``decode_service`` and ``decode_check`` return only values that pass every
   check Consul makes before it writes, in Consul's order and with Consul's
   messages (agent/agent_endpoint.go ``AgentRegisterService``). For config files
   the message is prefixed with the key path.
4. ``build_registration`` needs no validation of its own except the sidecar port
   (the only input that depends on agent state, passed in as a ``PortPool``).
5. Nested raw objects that trellis stores but does not model (``mesh_gateway``,
   ``transparent_proxy``, ``expose``, ``access_logs``, ``envoy_extensions``) are
   decoded strictly too and stored with canonical snake_case keys, only the keys given.
"""

from __future__ import annotations

from trellis.catalog.address import ip_family, join_host_port, upstream_bind_address
from trellis.catalog.build import (
    build_check,
    build_registration,
    build_service_checks,
    default_tagged_addresses,
)
from trellis.catalog.decode import decode_check, decode_service, decode_service_file
from trellis.catalog.keymatch import Origin, snake_of
from trellis.catalog.spec import (
    MIN_CHECK_INTERVAL,
    MIN_DEREGISTER_AFTER,
    CheckSpec,
    Registration,
    ServiceDefinition,
    deregister_after,
    detect_check_type,
)
from trellis.catalog.validate import (
    META_KEY_MAX,
    META_MAX_PAIRS,
    META_VALUE_MAX,
    STATUS_ERROR,
    agent_problems,
    check_problem,
    definition_warnings,
    format_multierror,
    meta_problem,
    service_problems,
    tagged_address_problem,
    upstream_problems,
    weights_problem,
)

__all__ = [
    "META_KEY_MAX",
    "META_MAX_PAIRS",
    "META_VALUE_MAX",
    "MIN_CHECK_INTERVAL",
    "MIN_DEREGISTER_AFTER",
    "STATUS_ERROR",
    "CheckSpec",
    "Origin",
    "Registration",
    "ServiceDefinition",
    "agent_problems",
    "build_check",
    "build_registration",
    "build_service_checks",
    "check_problem",
    "decode_check",
    "decode_service",
    "decode_service_file",
    "default_tagged_addresses",
    "definition_warnings",
    "deregister_after",
    "detect_check_type",
    "format_multierror",
    "ip_family",
    "join_host_port",
    "meta_problem",
    "service_problems",
    "snake_of",
    "tagged_address_problem",
    "upstream_bind_address",
    "upstream_problems",
    "weights_problem",
]
