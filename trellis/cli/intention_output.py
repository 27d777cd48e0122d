"""Output of ``trellis intention``: Consul's intention strings, the ``get`` table, the
``list`` columns, dry-run and ``apply`` reports (pure).

Rule: an intention prints as Consul's ``Intention.String()`` (``web => db (allow)``,
``frontend/* => * (deny)``, ``web => db (2 permissions)``); a namespace shows only when
it is not ``default``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from trellis.cli import output
from trellis.connect.intentions.names import DEFAULT_NAMESPACE
from trellis.connect.intentions.rules import Change, Op, Plan, Ref

NO_DECISION_CHANGES = "No decision between registered services would change."
ZERO_TIME = "Monday, 01-Jan-01 00:00:00 UTC"  # Go's zero time.Time, as RFC 850
_FRACTION = re.compile(r"(\.\d{6})\d+")
_OPS = {Op.CREATE: "+", Op.CHANGE: "~", Op.DELETE: "-"}


def body_ref(body: Mapping[str, Any], side: str) -> Ref:
    """``(ns, name)`` of one side of an intention body or API intention. Pure."""
    return (body.get(f"{side}NS") or DEFAULT_NAMESPACE, body.get(f"{side}Name") or "")


def format_ref(ref: Ref) -> str:
    """Rule 2: ``name``, or ``ns/name`` outside the default namespace. Pure."""
    ns, name = ref
    return name if ns in ("", DEFAULT_NAMESPACE) else f"{ns}/{name}"


def format_pair(source: Ref, destination: Ref) -> str:
    """``web => db``. Pure."""
    return f"{format_ref(source)} => {format_ref(destination)}"


def intention_detail(ixn: Mapping[str, Any]) -> str:
    """``allow``, ``deny``, ``1 permission`` or ``N permissions``. Pure."""
    count = len(ixn.get("Permissions") or [])
    if count == 0:
        return str(ixn.get("Action") or "")
    return "1 permission" if count == 1 else f"{count} permissions"


def format_intention(ixn: Mapping[str, Any]) -> str:
    """Rule 2: Consul's ``Intention.String()``, ``web => db (allow)``. Pure."""
    return f"{format_pair(body_ref(ixn, 'Source'), body_ref(ixn, 'Destination'))} ({intention_detail(ixn)})"


def format_get(ixn: Mapping[str, Any], tz: dt.tzinfo | None = None) -> str:
    """``intention get``'s key/value table, then ``Permissions:`` and their JSON for L7.

    ``tz`` is where ``Created At`` is shown; None is the process's local zone, as
    Consul's ``CreatedAt.Local()`` (the one input that is not an argument).
    """
    rows = [["Source:", format_ref(body_ref(ixn, "Source"))],
            ["Destination:", format_ref(body_ref(ixn, "Destination"))]]
    if ixn.get("Action") and not ixn.get("Permissions"):
        rows.append(["Action:", str(ixn["Action"])])
    if ixn.get("ID"):
        rows.append(["ID:", str(ixn["ID"])])
    if ixn.get("Description"):
        rows.append(["Description:", str(ixn["Description"])])
    meta = ixn.get("Meta") or {}
    rows.extend([f"Meta[{k}]:", str(meta[k])] for k in sorted(meta))
    rows.append(["Created At:", format_created_at(ixn.get("CreatedAt") or "", tz)])
    text = output.columnize(rows)
    if ixn.get("Permissions"):
        text += "\nPermissions:\n" + json.dumps(ixn["Permissions"], indent=2, ensure_ascii=False)
    return text


def format_created_at(text: str, tz: dt.tzinfo | None = None) -> str:
    """RFC 3339 → Go's ``time.RFC850`` (``Monday, 02-Jan-06 15:04:05 MST``) in ``tz``.

    No time (a config-entry intention) is Go's zero time; text that does not parse
    is shown as given.
    """
    if not text:
        return ZERO_TIME
    try:
        when = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", text))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    local = when.astimezone(tz)
    return f"{local:%A, %d-%b-%y %H:%M:%S} {local.tzname()}"


def format_list(ixns: Sequence[Mapping[str, Any]]) -> str:
    """``ID Source Action Destination Precedence``, in the API's order. Pure.

    The ID is blank for an intention from a config entry, the Action for an L7 one.
    """
    rows = [["ID", "Source", "Action", "Destination", "Precedence"]]
    for ixn in ixns:
        action = "" if ixn.get("Permissions") else str(ixn.get("Action") or "")
        rows.append([str(ixn.get("ID") or ""), format_ref(body_ref(ixn, "Source")), action,
                     format_ref(body_ref(ixn, "Destination")), str(ixn.get("Precedence", 0))])
    return output.columnize(rows)


def format_dry_run(answer: Mapping[str, Any]) -> str:
    """The decisions a dry run would change as a ``SOURCE DESTINATION BEFORE AFTER``
    table, or ``NO_DECISION_CHANGES``. Pure."""
    changes = answer.get("Changes") or []
    if not changes:
        return NO_DECISION_CHANGES
    rows = [["SOURCE", "DESTINATION", "BEFORE", "AFTER"]]
    for c in changes:
        rows.append([_shown(c.get("Source") or ""), _shown(c.get("Destination") or ""),
                     str(c.get("Before") or ""), str(c.get("After") or "")])
    return output.columnize(rows)


def _shown(text: str) -> str:
    """The agent's ``ns/name`` as the rest of the CLI shows names (rule 2)."""
    ns, sep, name = text.rpartition("/")
    return format_ref((ns, name)) if sep else text


def format_change(change: Change) -> str:
    """``+ web => api (allow)``, ``~ web => * (allow -> deny)``, ``- web => old (allow)``. Pure."""
    pair = format_pair(change.source, change.destination)
    if change.op is Op.CHANGE:
        return f"{_OPS[change.op]} {pair} ({change.before} -> {change.after})"
    return f"{_OPS[change.op]} {pair} ({change.after or change.before})"


def format_summary(plan: Plan, filename: str, *, dry_run: bool) -> str:
    """The last line of ``apply``: what was (or would be) done. Pure."""
    created, changed, deleted = (plan.count(op) for op in (Op.CREATE, Op.CHANGE, Op.DELETE))
    if dry_run:
        return (f"Dry run of {filename}: {created} to create, {changed} to change, {deleted} to delete, "
                f"{plan.unchanged} unchanged; nothing was written.")
    return f"Applied {filename}: {created} created, {changed} changed, {deleted} deleted, {plan.unchanged} unchanged."


def format_no_changes(plan: Plan, filename: str) -> str:
    """``apply`` when the agent already holds what the file asks for. Pure."""
    n = plan.unchanged
    what = "1 intention already matches" if n == 1 else f"{n} intentions already match"
    return f"No changes: {what} {filename}."
