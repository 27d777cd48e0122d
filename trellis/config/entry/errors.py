"""The error every config-entry validation raises (validate.py rule 1)."""

from __future__ import annotations

from trellis.errors import InvalidInput


class InvalidEntry(InvalidInput):
    """An entry that decodes but breaks a rule, alone or against the other entries.

    ``field`` is the path of the offending field (``Listeners[0].Services[1].Hosts``);
    the message is Consul's text where Consul has one. The API answers 400.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, None, message, message=message)
