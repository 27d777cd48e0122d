"""The decision: which intention, if any, decides a connection or a request, and how (pure).

Consul's evaluation (agent/agent_endpoint.go ``AgentConnectAuthorize``, agent/xds/rbac.go),
for source S and destination D:

Rule 1: the candidates are the intentions whose destination matches D (name equal or
``*``, namespace equal or ``*``), in evaluation order (precedence.py rule 3).
Rule 2: the first candidate whose source matches S the same way decides. Nothing
below it is looked at, whatever it says.
Rule 3: an L4 intention decides by its action: ``Matched L4 intention: <intention>``.
Rule 4: an L7 intention (one with permissions) denies when there is no HTTP request to
look at: the ``/check`` and ``/authorize`` endpoints and TCP listeners. The reason is
``Matched L7 intention: <intention>``.
Rule 5: with a request, the first permission whose criteria all match (l7.py) decides,
and ``Decision.permission_index`` says which. When none matches, the default decides,
and it is NOT a fall-through to lower-precedence intentions: the intention stays in the
decision (model.py rule 3) with ``permission_index`` None.
Rule 6: when no intention matches, the default decides, with ``Decision.intention``
None. The default is ``default_intention_policy`` when it is set (reason ``Default
intention policy``), else the ACL default policy (``Default behavior configured by
ACLs``; allow when ACLs are off).
Rule 7: ``format_intention`` is Consul's ``Intention.String()``:
``default/web => default/db (Precedence: 9, Action: ALLOW)``; a legacy intention puts
``ID: <uuid>, `` first inside the parentheses, and an L7 intention shows
``Permissions: <count>`` where an L4 one shows its action (Consul 1.9+; partitions,
peers and sameness groups, which trellis does not have, would prefix the names).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from trellis.connect.intentions import l7
from trellis.connect.intentions.model import WILDCARD, Action, Decision, HTTPRequest, Intention
from trellis.connect.intentions.precedence import precedence_of
from trellis.errors import InvalidInput

DEFAULT_POLICY_REASON = "Default intention policy"
ACL_DEFAULT_REASON = "Default behavior configured by ACLs"


@dataclass(frozen=True, slots=True)
class Default:
    """What decides when no intention does (rule 6), with the reason Consul reports."""

    allowed: bool
    reason: str

    def decision(self) -> Decision:
        return Decision(allowed=self.allowed, intention=None, reason=self.reason)


def select_default(default_intention_policy: str, acl_default_allow: bool) -> Default:
    """Rule 6: the agent's ``default_intention_policy`` (``""``, ``allow``, ``deny``) wins over ACLs. Pure.

    ``acl_default_allow`` is True when ACLs are off or ``acl.default_policy`` is allow.
    Raises ``InvalidInput`` for any other policy text.
    """
    if default_intention_policy in ("allow", "deny"):
        return Default(allowed=default_intention_policy == "allow", reason=DEFAULT_POLICY_REASON)
    if default_intention_policy:
        raise InvalidInput("default_intention_policy", default_intention_policy, 'must be "allow" or "deny"')
    return Default(allowed=acl_default_allow, reason=ACL_DEFAULT_REASON)


def format_intention(ixn: Intention) -> str:
    """Rule 7: Consul's ``Intention.String()``. Pure."""
    id_part = f"ID: {ixn.legacy_id}, " if ixn.legacy_id else ""
    if ixn.l7:
        detail = f"Permissions: {len(ixn.permissions)}"
    else:
        detail = f"Action: {str(ixn.action or '').upper()}"
    return (
        f"{ixn.source_ns}/{ixn.source_name} => {ixn.destination_ns}/{ixn.destination_name} "
        f"({id_part}Precedence: {precedence_of(ixn)}, {detail})"
    )


def matches(pattern_ns: str, pattern_name: str, ns: str, name: str) -> bool:
    """Whether the intention side ``pattern_ns/pattern_name`` covers ``ns/name`` (rules 1-2). Pure."""
    return (pattern_name == name or pattern_name == WILDCARD) and (pattern_ns == ns or pattern_ns == WILDCARD)


def source_matches(ixn: Intention, source: tuple[str, str]) -> bool:
    """Rule 2: whether ``ixn``'s source covers ``source`` = (ns, name). Pure."""
    return matches(ixn.source_ns, ixn.source_name, source[0], source[1])


def destination_matches(ixn: Intention, destination: tuple[str, str]) -> bool:
    """Rule 1: whether ``ixn``'s destination covers ``destination`` = (ns, name). Pure."""
    return matches(ixn.destination_ns, ixn.destination_name, destination[0], destination[1])


def decide(
    candidates: Iterable[Intention],
    source: tuple[str, str],
    *,
    default: Default,
    request: HTTPRequest | None = None,
) -> Decision:
    """Rules 2-6: the decision for ``source`` over ``candidates``. Pure; loop-safe.

    ``candidates`` are the intentions whose destination matches, in evaluation order
    (``IntentionIndex.candidates`` gives exactly that). ``request`` is None for the
    check/authorize endpoints and TCP listeners. Raises ``l7.InvalidRegex`` only for a
    pattern that validation should have refused.
    """
    for ixn in candidates:
        if source_matches(ixn, source):
            return conclude(ixn, default=default, request=request)
    return default.decision()


def conclude(ixn: Intention, *, default: Default, request: HTTPRequest | None = None) -> Decision:
    """Rules 3-5: the decision once ``ixn`` is the first matching intention. Pure."""
    if not ixn.l7:
        return Decision(allowed=ixn.action == Action.ALLOW, intention=ixn, reason=l4_reason(ixn))
    if request is None:
        return Decision(allowed=False, intention=ixn, reason=f"Matched L7 intention: {format_intention(ixn)}")
    for index, permission in enumerate(ixn.permissions):
        if l7.match_http(permission.http, request):
            return Decision(
                allowed=permission.action == Action.ALLOW,
                intention=ixn,
                reason=f"Matched L7 intention: {format_intention(ixn)}, permission {index}",
                permission_index=index,
            )
    return Decision(
        allowed=default.allowed,
        intention=ixn,
        reason=f"Matched L7 intention: {format_intention(ixn)}, no permission matched: {default.reason}",
    )


def l4_reason(ixn: Intention) -> str:
    """Rule 3's reason text. Pure."""
    return f"Matched L4 intention: {format_intention(ixn)}"
