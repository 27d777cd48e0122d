"""Intention names: which (namespace, name) pairs an intention may carry, and reading them (pure).

Validation follows Consul's ``validateIntentionWildcards`` and the required-name checks
(agent/structs/config_entry_intentions.go), with Consul's message text; the edge adds
nothing but the status code.

Rule 1: ``*`` is only ever a whole value. ``web*`` is refused with
``Name: wildcard character '*' cannot be used with partial values`` (``Namespace: ...``
for a namespace).
Rule 2: a wildcard namespace takes a wildcard name: ``*/web`` is refused with
``Name: exact value cannot follow wildcard namespace``. So the shapes are ``ns/name``,
``ns/*`` and ``*/*`` (precedence.py rule 1).
Rule 3: names are required: ``Name is required`` (``Sources[0].Name is required`` with
a prefix). An empty namespace is refused too; callers normalise it to ``default`` first,
as Consul's ``NamespaceOrDefault`` does, and ``parse_name`` does that for text.
Rule 4: the legacy API (``/v1/connect/intentions`` POST and PUT by ID) names the fields
``SourceNS``, ``SourceName``, ``DestinationNS``, ``DestinationName`` and says
``must be set``; ``legacy_name_problems`` gives every problem, in Consul's order, as
Consul's multierror does.
Rule 5: ``parse_name`` reads ``name``, ``ns/name`` or ``partition/ns/name`` (CLI
arguments, ``?source=``/``?destination=``/``?name=``). It does not apply rules 1 and 2:
check and match accept any text, and writes validate. An empty namespace segment means
the default one (Consul's ``NamespaceOrDefault``); the partition must be ``default``
(or empty), since trellis has namespaces but no partitions.
"""

from __future__ import annotations

from trellis.connect.intentions.model import WILDCARD, Intention
from trellis.errors import InvalidInput

DEFAULT_NAMESPACE = "default"
DEFAULT_PARTITION = "default"
_PEER_PREFIX = "peer:"
_PARTIAL = "wildcard character '*' cannot be used with partial values"
_AFTER_WILDCARD_NS = "exact value cannot follow wildcard namespace"


class InvalidIntentionName(InvalidInput):
    """A namespace or name an intention cannot carry, or text that does not parse as one.

    ``message`` is Consul's text for the case (see the module rules).
    """

    def __init__(self, field: str, value: str, reason: str, *, message: str = "") -> None:
        super().__init__(field, value, reason, message=message or f"{field}: {reason}")


def name_problems(ns: str, name: str, *, prefix: str = "") -> tuple[str, ...]:
    """Every problem of one side of an intention, as Consul's messages. Pure.

    ``prefix`` is put before the field names, e.g. ``"Sources[0]."``. The first problem is
    the one Consul's config-entry validation reports (it stops at the first).
    """
    problems: list[str] = []
    if not name:
        problems.append(f"{prefix}Name is required")
    if not ns:
        problems.append(f"{prefix}Namespace is required")
    elif ns != WILDCARD and WILDCARD in ns:
        problems.append(f"{prefix}Namespace: {_PARTIAL}")
    if name and name != WILDCARD:
        if WILDCARD in name:
            problems.append(f"{prefix}Name: {_PARTIAL}")
        if ns == WILDCARD:
            problems.append(f"{prefix}Name: {_AFTER_WILDCARD_NS}")
    return tuple(problems)


def validate_name(ns: str, name: str, *, prefix: str = "") -> None:
    """Raise ``InvalidIntentionName`` with Consul's message for the first problem (rules 1-3). Pure."""
    problems = name_problems(ns, name, prefix=prefix)
    if problems:
        raise _error(problems[0], ns, name)


def validate_intention_names(ixn: Intention) -> None:
    """Both sides of a config-entry intention: the destination, then the source. Pure.

    Messages are those of a one-source ``service-intentions`` entry: ``Name: ...`` for the
    destination, ``Sources[0].Name: ...`` for the source.
    """
    validate_name(ixn.destination_ns, ixn.destination_name)
    validate_name(ixn.source_ns, ixn.source_name, prefix="Sources[0].")


def legacy_name_problems(ixn: Intention) -> tuple[str, ...]:
    """Rule 4: every naming problem of a legacy-API intention, in Consul's order. Pure."""
    problems: list[str] = []
    sides = (("Source", ixn.source_ns, ixn.source_name), ("Destination", ixn.destination_ns, ixn.destination_name))
    for side, ns, name in sides:
        if not ns:
            problems.append(f"{side}NS must be set")
        if not name:
            problems.append(f"{side}Name must be set")
    for side, ns, name in sides:
        if ns != WILDCARD and WILDCARD in ns:
            problems.append(f"{side}NS: {_PARTIAL}")
        if name != WILDCARD:
            if WILDCARD in name:
                problems.append(f"{side}Name: {_PARTIAL}")
            if ns == WILDCARD:
                problems.append(f"{side}Name: {_AFTER_WILDCARD_NS}")
    return tuple(problems)


def validate_legacy_names(ixn: Intention) -> None:
    """Raise ``InvalidIntentionName`` for the first of ``legacy_name_problems``. Pure."""
    problems = legacy_name_problems(ixn)
    if problems:
        values = {
            "SourceNS": ixn.source_ns,
            "SourceName": ixn.source_name,
            "DestinationNS": ixn.destination_ns,
            "DestinationName": ixn.destination_name,
        }
        field = _field_of(problems[0])
        raise InvalidIntentionName(field, values[field], problems[0], message=problems[0])


def parse_name(text: str, default_ns: str = DEFAULT_NAMESPACE) -> tuple[str, str]:
    """Rule 5: ``name`` | ``ns/name`` | ``partition/ns/name`` -> ``(ns, name)``. Pure.

    Raises ``InvalidIntentionName`` for a peer (``peer:x/...``), more than two ``/``, a
    partition other than ``default``, or an empty name. Messages follow Consul's
    ``parseIntentionStringComponent``; the caller adds ``source "x" is invalid: `` as
    Consul's handler does.
    """
    if text.startswith(_PEER_PREFIX):
        reason = "cannot specify a peer here"
        raise InvalidIntentionName("name", text, reason, message=reason)
    parts = text.split("/")
    if len(parts) > 3:
        reason = "input can contain at most two '/'"
        raise InvalidIntentionName("name", text, reason, message=reason)
    if len(parts) == 3:
        _check_partition(parts[0])
    name = parts[-1]
    ns = parts[-2] if len(parts) > 1 else ""
    if not name:
        reason = "service name is required"
        raise InvalidIntentionName("name", text, reason, message=reason)
    return (ns or default_ns, name)


def format_name(ns: str, name: str) -> str:
    """``ns/name``: what ``parse_name`` reads back. Pure."""
    return f"{ns}/{name}"


def _check_partition(partition: str) -> None:
    if partition not in ("", DEFAULT_PARTITION):
        reason = f'partition "{partition}" is not supported: trellis has only the "default" partition'
        raise InvalidIntentionName("partition", partition, reason, message=reason)


def _error(problem: str, ns: str, name: str) -> InvalidIntentionName:
    field = _field_of(problem)
    value = ns if field.endswith("Namespace") else name
    return InvalidIntentionName(field, value, problem, message=problem)


def _field_of(problem: str) -> str:
    """The field a Consul message is about: ``Sources[0].Name: ...`` -> ``Sources[0].Name``."""
    field = problem.partition(":")[0]
    return field.removesuffix(" is required").removesuffix(" must be set")
