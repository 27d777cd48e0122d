"""Catalog errors: subclasses of the shared vocabulary in ``trellis.errors``.

Edges map them by type: every class here is an ``InvalidInput`` (HTTP 400, CLI
exit 1). Messages reproduce Consul's text where Consul has one.
"""

from __future__ import annotations

from typing import Any

from trellis.errors import InvalidInput


class InvalidDefinition(InvalidInput):
    """A service or check definition that would not be accepted.

    ``field`` is the key path of the offending value when known
    (``services[0].checks[1].interval`` for config files, ``Port`` for API bodies);
    ``message`` is the complete text for the user.
    """

    def __init__(self, message: str, *, field: str = "", value: Any = None) -> None:
        super().__init__(field, value, message, message=message)


class SidecarPortUnavailable(InvalidDefinition):
    """No port was given for a ``sidecar_service`` and none could be assigned."""
