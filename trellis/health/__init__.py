"""Health: the agent's check runners (shell) and the status transition rules (pure).

``CheckRunner`` runs checks and reports status changes; ``rules`` decides what a
probe result means; ``model`` holds the value types. See docs/health.md.
"""

from trellis.health.errors import NotTTLCheck
from trellis.health.model import CheckKey, CheckState, ProbeResult, ServiceKey, Thresholds, Transition
from trellis.health.runner import CheckRunner

__all__ = [
    "CheckKey",
    "CheckRunner",
    "CheckState",
    "NotTTLCheck",
    "ProbeResult",
    "ServiceKey",
    "Thresholds",
    "Transition",
]
