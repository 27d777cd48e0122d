"""A rules file → the intentions it asks for → the changes that get there (pure).

    text ──parse_rules──▶ RuleSet (owned sources + desired Rules) ──diff(current)──▶ Plan

A rules file is what the seed guide writes for ``trellis intention apply``:

    service "web"   { policy = "write" }                         # web => * (allow)
    service "admin" { policy = "deny" }                          # admin => * (deny)
    service "web"   { policy = "write"  intentions = ["api"] }   # web => api (allow), web => * (deny)

Rules:
1. The file is HCL or JSON holding only ``service "<name>" { ... }`` blocks with
   ``policy`` and ``intentions``. ``<name>`` is ``name``, ``ns/name`` or ``*``; a name
   without a namespace is in ``default_ns``. Destinations are read the same way.
2. Blocks with the same label merge: their ``intentions`` lists are united, in order
   of first appearance, and their policies must agree; a second, different policy
   is an error naming the service.
3. ``POLICIES`` maps a merged block to its intentions (X is the label):
   ``deny`` → ``X => * (deny)``; ``write`` alone → ``X => * (allow)``; ``write`` with
   ``intentions = [D...]`` → ``X => D (allow)`` for each D, and ``X => * (deny)``.
   Any other policy, ``intentions`` without ``write``, or ``*`` among the intentions
   (which would allow and deny ``X => *`` at once) is an error naming the service.
4. A file owns exactly the intentions whose source is a service it names (the exact
   ``(ns, name)``, not wildcards that cover it). ``diff`` creates what is missing,
   changes what differs, deletes owned intentions the file does not ask for, and
   never touches any other intention.
5. Only the action (or, for an existing L7 intention, its permissions) is compared;
   descriptions and metadata are not the file's to manage.
6. Changes come sorted by (source, destination), creates, changes and deletes mixed,
   so that a plan reads and applies in the same, stable order.

NOTE: config files merge blocks that repeat a label and refuse an attribute set in
two of them (config/hcl.py rule 4); the seed's rules file sets ``policy`` in both
``service "web"`` blocks, so ``read_blocks`` asks the parser to keep such blocks apart
(``merge_labels=False``) and merges them here by rule 2.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trellis.config import hcl
from trellis.connect.intentions.model import WILDCARD, Action
from trellis.connect.intentions.names import DEFAULT_NAMESPACE, InvalidIntentionName, name_problems, parse_name
from trellis.errors import InvalidInput

Ref = tuple[str, str]  # (namespace, name)

BLOCK = "service"
POLICY, INTENTIONS = "policy", "intentions"
WRITE, DENY = "write", "deny"

# Rule 3, as (policy, with intentions?) → what the block asks for; docs/intentions.md shows it.
POLICIES: tuple[tuple[str, bool, str], ...] = (
    (DENY, False, "X => * (deny)"),
    (WRITE, False, "X => * (allow)"),
    (WRITE, True, "X => D (allow) for each listed D, and X => * (deny)"),
)


class RulesError(InvalidInput):
    """A rules file that parses but does not say something this module can map.

    ``str()`` names the service block: ``service "web": unknown policy "read" ...``.
    """

    def __init__(self, service: str, reason: str) -> None:
        where = f'service "{service}": ' if service else ""
        super().__init__(BLOCK, service, reason, message=where + reason)


@dataclass(frozen=True, slots=True)
class Rule:
    """One intention, as far as a rules file cares: who, to whom, which action.

    ``action`` is None (and ``permissions`` the count) only for an existing L7
    intention found on the agent; a rules file only ever asks for L4 ones.
    """

    source: Ref
    destination: Ref
    action: Action | None
    permissions: int = 0

    @property
    def detail(self) -> str:
        """``allow``, ``deny``, ``1 permission`` or ``N permissions`` (Consul's ``String()``)."""
        if self.action is not None:
            return self.action.value
        return "1 permission" if self.permissions == 1 else f"{self.permissions} permissions"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """What a rules file asks for: the sources it owns and every intention it wants."""

    sources: frozenset[Ref]
    rules: tuple[Rule, ...]


class Op(enum.StrEnum):
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan; ``before`` is "" for a create, ``after`` "" for a delete."""

    op: Op
    source: Ref
    destination: Ref
    before: str = ""
    after: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    unchanged: int

    def count(self, op: Op) -> int:
        return sum(1 for c in self.changes if c.op is op)


@dataclass(frozen=True, slots=True)
class ServiceBlock:
    """The merged blocks of one label (rule 2)."""

    label: str
    policy: str
    intentions: tuple[str, ...] = ()


# --------------------------------------------------------------------------- reading


def parse_rules(text: str, *, filename: str, default_ns: str = DEFAULT_NAMESPACE) -> RuleSet:
    """Rules 1-3 over a file's text. Pure.

    Raises ``hcl.ConfigSyntaxError`` (naming file, line and column) for text that does
    not parse, ``RulesError`` for anything rules 1-3 refuse.
    """
    return build_rules(merge_blocks(read_blocks(text, filename=filename)), default_ns=default_ns)


def read_blocks(text: str, *, filename: str) -> list[tuple[str, dict[str, Any]]]:
    """Every ``service "<label>" {...}`` block as (label, body): labels in order of
    first appearance, each label's blocks in file order. Pure.

    HCL blocks that repeat a label are kept apart by the parser (``merge_labels=False``)
    and merged here by rule 2; JSON is ``{"service": {"web": {...}}}`` or
    ``{"service": [{"web": {...}}, {"web": {...}}]}``.
    """
    doc = hcl.parse_text(text, filename=filename, merge_labels=False)
    blocks: list[tuple[str, dict[str, Any]]] = []
    for key, value in doc.items():
        if key != BLOCK:
            raise RulesError("", f'unknown block "{key}": a rules file holds only service "<name>" blocks')
        blocks.extend(_labelled(value))
    return blocks


def _labelled(value: Any) -> list[tuple[str, dict[str, Any]]]:
    groups = value if isinstance(value, list) else [value]
    out: list[tuple[str, dict[str, Any]]] = []
    for group in groups:
        if not isinstance(group, dict):
            raise RulesError("", 'a service block needs a name: service "web" { policy = "write" }')
        for label, body in group.items():
            for one in body if isinstance(body, list) else [body]:
                if not isinstance(one, dict):
                    raise RulesError("", 'a service block needs a name: service "web" { policy = "write" }')
                out.append((label, one))
    return out


def merge_blocks(blocks: Iterable[tuple[str, Mapping[str, Any]]]) -> list[ServiceBlock]:
    """Rule 2: one ServiceBlock per label, in order of first appearance. Pure.

    Raises RulesError for an unknown key, a missing or conflicting policy, or
    ``intentions`` that is not a list of strings.
    """
    policies: dict[str, str] = {}
    intentions: dict[str, list[str]] = {}
    for label, body in blocks:
        for key in body:
            if key not in (POLICY, INTENTIONS):
                raise RulesError(label, f'unknown key "{key}" (a service block has policy and intentions)')
        listed = intentions.setdefault(label, [])
        listed.extend(d for d in _string_list(label, body.get(INTENTIONS, [])) if d not in listed)
        if POLICY in body:
            policy = body[POLICY]
            if not isinstance(policy, str):
                raise RulesError(label, f"policy must be a string, not {policy!r}")
            if policies.setdefault(label, policy) != policy:
                raise RulesError(label, f'conflicting policies "{policies[label]}" and "{policy}"')
    missing = [label for label in intentions if label not in policies]
    if missing:
        raise RulesError(missing[0], f'policy is required ("{WRITE}" or "{DENY}")')
    return [ServiceBlock(label, policies[label], tuple(listed)) for label, listed in intentions.items()]


def _string_list(label: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(label, f"intentions must be a list of service names, not {value!r}")
    return value


# --------------------------------------------------------------------------- mapping


def build_rules(blocks: Sequence[ServiceBlock], *, default_ns: str = DEFAULT_NAMESPACE) -> RuleSet:
    """Rule 3 over merged blocks: the owned sources and the desired intentions,
    sorted by (source, destination). Pure. Raises RulesError naming the service."""
    sources: set[Ref] = set()
    rules: dict[tuple[Ref, Ref], Rule] = {}
    for block in blocks:
        source = _ref(block.label, block.label, default_ns)
        sources.add(source)
        for rule in rules_for(block, source, default_ns):
            rules[(rule.source, rule.destination)] = rule
    return RuleSet(frozenset(sources), tuple(rules[k] for k in sorted(rules)))


def rules_for(block: ServiceBlock, source: Ref, default_ns: str = DEFAULT_NAMESPACE) -> tuple[Rule, ...]:
    """One merged block's intentions (rule 3). Pure."""
    everything = (default_ns, WILDCARD)
    if block.policy not in (WRITE, DENY):
        raise RulesError(block.label, f'unknown policy "{block.policy}" (expected "{WRITE}" or "{DENY}")')
    if block.policy == DENY:
        if block.intentions:
            raise RulesError(block.label, f'intentions are only allowed with policy = "{WRITE}"')
        return (Rule(source, everything, Action.DENY),)
    if not block.intentions:
        return (Rule(source, everything, Action.ALLOW),)
    allowed = []
    for i, text in enumerate(block.intentions):
        destination = _ref(block.label, text, default_ns, what=f'intentions[{i}] "{text}"')
        if destination == everything:
            raise RulesError(block.label, f'intentions cannot list "{text}": policy = "{WRITE}" '
                                          f"without intentions allows every destination")
        allowed.append(Rule(source, destination, Action.ALLOW))
    return (*allowed, Rule(source, everything, Action.DENY))


def _ref(label: str, text: str, default_ns: str, *, what: str = "") -> Ref:
    """``text`` as (ns, name), checked as an intention name; RulesError naming ``label``."""
    prefix = f"{what}: " if what else ""
    try:
        ref = parse_name(text, default_ns)
    except InvalidIntentionName as exc:
        raise RulesError(label, f"{prefix}{exc}") from None
    problems = name_problems(*ref)
    if problems:
        raise RulesError(label, f"{prefix}{problems[0]}")
    return ref


# --------------------------------------------------------------------------- diff


def diff(ruleset: RuleSet, current: Iterable[Rule]) -> Plan:
    """Rules 4-6: the changes from ``current`` (every intention on the agent) to what
    ``ruleset`` asks for, touching only intentions whose source it owns. Pure."""
    have = {(r.source, r.destination): r for r in current if r.source in ruleset.sources}
    want = {(r.source, r.destination): r for r in ruleset.rules}
    changes: list[Change] = []
    unchanged = 0
    for key in sorted(have.keys() | want.keys()):
        old, new = have.get(key), want.get(key)
        if old is None:
            changes.append(Change(Op.CREATE, *key, after=new.detail))
        elif new is None:
            changes.append(Change(Op.DELETE, *key, before=old.detail))
        elif old.detail != new.detail:
            changes.append(Change(Op.CHANGE, *key, before=old.detail, after=new.detail))
        else:
            unchanged += 1
    return Plan(tuple(changes), unchanged)
