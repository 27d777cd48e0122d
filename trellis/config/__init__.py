"""Decoding of every file a user writes: JSON/HCL text, Go durations, agent config.

Re-exports the public surface. The agent-config names are loaded on first use
(PEP 562) because ``agent_config`` depends on ``trellis.catalog.definition``, which
itself uses ``trellis.config.duration``: importing them eagerly here would make
``import trellis.catalog.definition`` circular.
"""

from __future__ import annotations

from typing import Any

from trellis.config.duration import (
    DurationError,
    decode_duration,
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)
from trellis.config.hcl import ConfigSyntaxError, detect_format, parse_text

_AGENT_CONFIG = frozenset({
    "ACLConfig", "Addresses", "AgentConfig", "ConfigFragment", "ConnectConfig", "DNSConfig",
    "InvalidConfig", "Ports", "SOAConfig", "combine", "decode_agent_config", "load_config_files",
    "merge", "parse_agent_config", "resolve",
})

__all__ = [
    "ConfigSyntaxError", "DurationError", "decode_duration", "detect_format", "format_duration",
    "format_duration_ns", "parse_duration", "parse_duration_ns", "parse_text", *sorted(_AGENT_CONFIG),
]


def __getattr__(name: str) -> Any:
    if name in _AGENT_CONFIG:
        from trellis.config import agent_config

        return getattr(agent_config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
