"""Agent configuration key schema: the value readers and the ``_Leaf`` tables.

Owns what each key accepts and how it merges: the readers turn a raw value into
its typed, canonical form (durations become float seconds) or raise ``_Bad`` with
the key path; the tables (``_TOP`` and its sections) map every known key to a
reader and a merge rule (replace | append | update). ``agent_config`` walks them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from trellis.catalog.keymatch import json_type
from trellis.catalog.definition import meta_problem
from trellis.config.duration import DurationError, parse_duration


class _Leaf(NamedTuple):
    read: Callable[[Any, str], Any]  # (value, key path) -> typed value; raises _Bad
    merge: str = "replace"  # replace | append | update


class _Bad(Exception):
    """A value problem; turned into InvalidConfig with the file name."""

    def __init__(self, path: str, detail: str, *, located: bool = False) -> None:
        super().__init__(detail if located else f"{path}: {detail}")
        self.path = path


def _wrong(path: str, value: Any, wanted: str) -> _Bad:
    shown = f" {json.dumps(value)}" if isinstance(value, (str, int, float)) else ""
    return _Bad(path, f"expected {wanted}, got {json_type(value)}{shown}")


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _wrong(path, value, "a string")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(path, value, "a boolean")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise _wrong(path, value, "an integer")
    return int(value)


def _natural(value: Any, path: str) -> int:
    number = _int(value, path)
    if number < 0:
        raise _Bad(path, f"must not be negative, got {number}")
    return number


def _fraction(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _wrong(path, value, "a fraction between 0 and 1")
    return float(value)


def _port(value: Any, path: str) -> int:
    number = _int(value, path)
    if not -1 <= number <= 65535:
        raise _Bad(path, f"invalid port {number}: must be -1 (disabled) or 0-65535")
    return number


def _duration(value: Any, path: str) -> float:
    if not isinstance(value, str):
        raise _wrong(path, value, 'a duration string such as "10s"')
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise _Bad(path, exc.message) from None


def _str_list(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):  # a single value where Consul takes a list
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise _wrong(path, value, "a list of strings")
    return tuple(_str(v, f"{path}[{i}]") for i, v in enumerate(value))


def _str_map(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "an object of strings")
    return {str(k): _str(v, f"{path}.{k}") for k, v in value.items()}


def _duration_map(value: Any, path: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "an object of durations")
    return {str(k): _duration(v, f"{path}.{k}") for k, v in value.items()}


def _free_map(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "an object")
    return dict(value)


def _one_of(*allowed: str, fold: bool = False) -> Callable[[Any, str], str]:
    def read(value: Any, path: str) -> str:
        text = _str(value, path)
        if (text.lower() if fold else text) not in allowed:
            choices = ", ".join(json.dumps(a) for a in allowed)
            raise _Bad(path, f"invalid value {json.dumps(text)}: must be one of {choices}")
        return text.lower() if fold else text

    return read


def _node_meta(value: Any, path: str) -> dict[str, str]:
    meta = _str_map(value, path)
    if problem := meta_problem(meta):
        raise _Bad(path, problem)
    return meta


def _domain(value: Any, path: str) -> str:
    text = _str(value, path).strip()
    if not text.strip("."):
        raise _Bad(path, "must not be empty")
    return text if text.endswith(".") else text + "."


def _datacenter(value: Any, path: str) -> str:
    text = _str(value, path).lower()  # Consul lower-cases the datacenter
    if not re.fullmatch(r"[a-z0-9_-]+", text):
        raise _Bad(path, "datacenter can only contain lowercase alphanumeric, - or _ characters.")
    return text


_Schema = dict  # key -> _Leaf | nested _Schema

_PORTS: _Schema = {name: _Leaf(_port) for name in (
    "http", "https", "dns", "grpc", "grpc_tls", "server", "serf_lan", "serf_wan",
    "sidecar_min_port", "sidecar_max_port", "expose_min_port", "expose_max_port")}
_ADDRESSES: _Schema = {name: _Leaf(_str) for name in ("http", "https", "dns", "grpc", "grpc_tls")}
_SOA: _Schema = {name: _Leaf(_natural) for name in ("min_ttl", "refresh", "retry", "expire")}
_DNS: _Schema = {
    "allow_stale": _Leaf(_bool),
    "max_stale": _Leaf(_duration),
    "node_ttl": _Leaf(_duration),
    "service_ttl": _Leaf(_duration_map, "update"),
    "udp_answer_limit": _Leaf(_natural),
    "a_record_limit": _Leaf(_natural),
    "only_passing": _Leaf(_bool),
    "enable_truncate": _Leaf(_bool),
    "enable_additional_node_meta_txt": _Leaf(_bool),
    "soa": _SOA,
    "disable_compression": _Leaf(_bool),
    "recursor_timeout": _Leaf(_duration),
    "recursor_strategy": _Leaf(_one_of("sequential", "random")),
    "use_cache": _Leaf(_bool),
    "cache_max_age": _Leaf(_duration),
}
_CONNECT: _Schema = {
    "enabled": _Leaf(_bool),
    "ca_provider": _Leaf(_one_of("consul", "vault", "aws-pca")),
    "ca_config": _Leaf(_free_map, "update"),
    # trellis settings (not Consul's): when leaves renew, how a root change is spread
    # over the agent's leaves, how often rotated-out roots are pruned
    "leaf_renew_after": _Leaf(_fraction),
    "leaf_renew_before": _Leaf(_fraction),
    "root_change_jitter": _Leaf(_duration),
    "root_prune_interval": _Leaf(_duration),
}
_ACL_TOKENS = ("initial_management", "master", "default", "agent", "agent_recovery", "agent_master",
               "replication", "dns", "config_file_service_registration")


def _acl_tokens(value: Any, path: str) -> dict[str, str]:
    tokens = _str_map(value, path)
    for key in tokens:
        if key not in _ACL_TOKENS:
            raise _Bad(f"{path}.{key}", f'invalid config key "{path}.{key}"', located=True)
    return tokens


_ACL: _Schema = {
    "enabled": _Leaf(_bool),
    "default_policy": _Leaf(_one_of("allow", "deny")),
    "down_policy": _Leaf(_one_of("allow", "deny", "extend-cache", "async-cache")),
    "enable_token_persistence": _Leaf(_bool),
    "enable_token_replication": _Leaf(_bool),
    "token_ttl": _Leaf(_duration),
    "policy_ttl": _Leaf(_duration),
    "role_ttl": _Leaf(_duration),
    "tokens": _Leaf(_acl_tokens, "update"),
}
_UI_CONFIG: _Schema = {"enabled": _Leaf(_bool), "dir": _Leaf(_str), "content_path": _Leaf(_str)}
_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "err", "error", "off")
_TOP: _Schema = {
    "node_name": _Leaf(_str),
    "node_id": _Leaf(_str),
    "datacenter": _Leaf(_datacenter),
    "primary_datacenter": _Leaf(_datacenter),
    "data_dir": _Leaf(_str),
    "server": _Leaf(_bool),
    "bootstrap": _Leaf(_bool),
    "bootstrap_expect": _Leaf(_natural),
    "client_addr": _Leaf(_str),
    "bind_addr": _Leaf(_str),
    "advertise_addr": _Leaf(_str),
    "domain": _Leaf(_domain),
    "log_level": _Leaf(_one_of(*_LOG_LEVELS, fold=True)),
    "log_json": _Leaf(_bool),
    "ports": _PORTS,
    "addresses": _ADDRESSES,
    "dns_config": _DNS,
    "enable_script_checks": _Leaf(_bool),
    "enable_local_script_checks": _Leaf(_bool),
    "enable_central_service_config": _Leaf(_bool),
    "default_intention_policy": _Leaf(_one_of("", "allow", "deny")),
    "connect": _CONNECT,
    "acl": _ACL,
    "node_meta": _Leaf(_node_meta, "update"),
    "recursors": _Leaf(_str_list, "append"),
    "retry_join": _Leaf(_str_list, "append"),
    "ui": _Leaf(_bool),
    "ui_config": _UI_CONFIG,
}
_BLOCKS = ("service", "services", "check", "checks", "config_entries")
