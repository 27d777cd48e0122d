"""Reads of the CA state from the view, with their watch sets (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from trellis.connect.ca.errors import CANotReady
from trellis.connect.ca.model import CAConfigDoc, CARoot
from trellis.connect.ca.tables import CATable
from trellis.store.view import Result, View

ROOTS_WATCH = (("ca-roots",), ("ca-config",))
CONFIG_WATCH = (("ca-config",),)


@dataclass(frozen=True, slots=True)
class Roots:
    active_root_id: str
    trust_domain: str
    roots: tuple[CARoot, ...]


def roots(view: View) -> Result[Roots]:
    """The trust bundle: every root still trusted, oldest first, and the active one's ID."""
    t: CATable = view["ca"]  # type: ignore[assignment]
    active = t.active_root()
    value = Roots(active.id if active else "", t.trust_domain, tuple(t.ordered_roots()))
    return view.result(value, ROOTS_WATCH)


def configuration(view: View) -> Result[CAConfigDoc]:
    t: CATable = view["ca"]  # type: ignore[assignment]
    if t.config is None:
        raise CANotReady()
    return view.result(t.config, CONFIG_WATCH)
