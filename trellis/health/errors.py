"""Errors the check runners raise on purpose (subclasses of the shared vocabulary)."""

from __future__ import annotations

from trellis.errors import Conflict
from trellis.health.model import CheckKey


class NotTTLCheck(Conflict):
    """A TTL update named a check the runner has no TTL timer for.

    Consul answers this with a 500 and the text below (agent ``updateTTLCheck``);
    the API checks that the check exists (404) before it asks the runner.
    """

    error_status_hint = 500

    def __init__(self, key: CheckKey) -> None:
        self.key = key
        super().__init__(f'CheckID "{key.check_id}" does not have associated TTL')
