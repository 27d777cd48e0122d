"""Go ``flag``-style command-line parsing, declared per command (pure).

A command declares its flags once, as a ``FlagSet`` of ``Flag`` values; ``parse``
turns an argument list into a ``Parsed`` (typed values + positionals) or raises.

Rules (Go's ``flag`` package, which Consul's CLI uses):

1. A flag is ``-name`` or ``--name``; its value is ``-name=value`` or the next
   argument (``-name value``). Bool flags take no next argument: ``-tags`` is
   true, ``-tags=false`` is false, and ``-tags false`` leaves ``false`` as a
   positional.
2. Flags come before positionals: parsing stops at the first argument that is not
   a flag (``-`` alone is one) and at ``--``, which is consumed.
3. ``list`` flags append each use; ``map`` flags take ``key=value`` and merge.
4. ``-h``/``-help`` (either dash count) ask for help unless the command defines them.
5. Error messages are Go's words (``flag provided but not defined: -x``,
   ``flag needs an argument: -id``, ``invalid value "x" for flag -port: parse
   error``); the edge (cli/main.py) prints them with the usage and exits 1.

Nothing here reads the environment or prints.
"""

from __future__ import annotations

import enum
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trellis.config.duration import DurationError, parse_duration
from trellis.errors import TrellisError

COMMAND_OPTIONS = "Command Options"
HTTP_OPTIONS = "HTTP API Options"

_HELP_NAMES = frozenset({"h", "help"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# strconv.ParseInt(s, 0, 64): optional sign, 0x/0o/0b prefixes, '_' between digits.
_GO_INT = re.compile(r"[+-]?(0[xX](_?[0-9a-fA-F])+|0[oO](_?[0-7])+|0[bB](_?[01])+|0(_?[0-7])*|[1-9](_?[0-9])*)")
_INT64 = (-(1 << 63), (1 << 63) - 1)


class Kind(enum.StrEnum):
    """What a flag's value is; decides parsing and the Python type returned."""

    STR = "str"  # str
    INT = "int"  # int (Go ParseInt base 0)
    BOOL = "bool"  # bool; takes no separate argument
    LIST = "list"  # list[str], one item per use
    MAP = "map"  # dict[str, str] from repeated key=value
    DURATION = "duration"  # float seconds from Go duration text ("10s", "1m30s")


_ZERO: dict[Kind, Any] = {Kind.STR: "", Kind.INT: 0, Kind.BOOL: False, Kind.DURATION: 0.0}
_METAVAR = {Kind.STR: "string", Kind.INT: "int", Kind.LIST: "value", Kind.MAP: "key=value",
            Kind.DURATION: "duration", Kind.BOOL: ""}


class UsageError(TrellisError):
    """The arguments do not parse; ``str()`` is Go's message. Exit 1 with usage.

    ``usage`` is the command's help text, filled in by ``FlagSet.parse``.
    """

    usage: str = ""


class HelpRequested(TrellisError):
    """``-h`` or ``-help`` was given: print ``usage`` and exit 0."""

    usage: str = ""

    def __init__(self) -> None:
        super().__init__("help requested")


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag: its name without dashes, kind, default, help and usage group.

    ``default`` None means the kind's zero value ("" / 0 / False / [] / {}).
    ``metavar`` names the value in the usage (``-http-addr=<address>``).
    """

    name: str
    kind: Kind = Kind.STR
    default: Any = None
    help: str = ""
    metavar: str = ""
    group: str = COMMAND_OPTIONS

    @property
    def dest(self) -> str:
        """The attribute name on ``Parsed``: dashes become underscores."""
        return self.name.replace("-", "_")

    def initial(self) -> Any:
        if self.kind is Kind.LIST:
            return list(self.default or ())
        if self.kind is Kind.MAP:
            return dict(self.default or {})
        return _ZERO[self.kind] if self.default is None else self.default


@dataclass(frozen=True, slots=True)
class Parsed:
    """The result of a parse: values by flag name, the positionals, which flags were given.

    Values read as attributes (``parsed.http_addr``) or by flag name
    (``parsed["http-addr"]``, ``parsed.get("token")``).
    """

    values: Mapping[str, Any]
    args: tuple[str, ...] = ()
    explicit: frozenset[str] = frozenset()

    def __getattr__(self, dest: str) -> Any:
        if dest.startswith("__") or dest in ("values", "args", "explicit"):
            raise AttributeError(dest)
        try:
            return self.values[dest.replace("_", "-")]
        except KeyError:
            raise AttributeError(dest) from None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def is_set(self, name: str) -> bool:
        """True when the flag appeared on the command line (Go's ``flag.Visit``)."""
        return name in self.explicit


@dataclass(frozen=True)
class FlagSet:
    """A command's usage line, description and flags. Duplicate names are a bug."""

    usage: str
    flags: tuple[Flag, ...] = ()
    description: str = ""
    _by_name: dict[str, Flag] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in self.flags:
            assert f.name not in self._by_name, f"flag redefined: {f.name}"
            self._by_name[f.name] = f

    def lookup(self, name: str) -> Flag | None:
        return self._by_name.get(name)

    def parse(self, argv: Sequence[str]) -> Parsed:
        """Parse ``argv`` (without the command path). Raises UsageError or HelpRequested,
        each carrying this set's usage text."""
        try:
            return parse(self, argv)
        except (UsageError, HelpRequested) as exc:
            exc.usage = self.format_usage()
            raise

    def format_usage(self) -> str:
        """The help text: usage line, description, then flags by group."""
        return format_usage(self)


def parse(flagset: FlagSet, argv: Sequence[str]) -> Parsed:
    """Go ``FlagSet.Parse`` over ``argv``; see the module rules. Pure."""
    values = {f.name: f.initial() for f in flagset.flags}
    explicit: set[str] = set()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        i += 1
        if arg == "--":
            break
        name, has_value, value = _split(arg)
        spec = flagset.lookup(name)
        if spec is None:
            if name in _HELP_NAMES:
                raise HelpRequested()
            raise UsageError(f"flag provided but not defined: -{name}")
        if spec.kind is not Kind.BOOL and not has_value:
            if i >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            value, i = args[i], i + 1
        values[name] = _apply(spec, values[name], value if has_value or spec.kind is not Kind.BOOL else None)
        explicit.add(name)
    return Parsed(values, tuple(args[i:]), frozenset(explicit))


def _split(arg: str) -> tuple[str, bool, str]:
    """``-name=value`` → (name, True, value); ``--name`` → (name, False, "")."""
    body = arg[2:] if arg.startswith("--") else arg[1:]
    if not body or body[0] in "-=":
        raise UsageError(f"bad flag syntax: {arg}")
    name, eq, value = body.partition("=")
    return name, bool(eq), value


def _apply(spec: Flag, current: Any, text: str | None) -> Any:
    """The flag's new value after one use with ``text`` (None: a bare bool flag)."""
    if spec.kind is Kind.BOOL:
        if text is None:
            return True
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise UsageError(f"invalid boolean value {go_quote(text)} for -{spec.name}: parse error")
    try:
        return _convert(spec.kind, current, text or "")
    except ValueError as exc:
        raise UsageError(f"invalid value {go_quote(text or '')} for flag -{spec.name}: {exc}") from None


def _convert(kind: Kind, current: Any, text: str) -> Any:
    if kind is Kind.STR:
        return text
    if kind is Kind.INT:
        return parse_go_int(text)
    if kind is Kind.LIST:
        return [*current, text]
    if kind is Kind.MAP:
        key, eq, value = text.partition("=")
        if not eq:
            raise ValueError(f'Missing "=" value in argument: {text}')
        return {**current, key: value}
    try:
        return parse_duration(text)
    except DurationError:
        raise ValueError("parse error") from None


def parse_go_int(text: str) -> int:
    """``strconv.ParseInt(text, 0, 64)``; ValueError("parse error"/"value out of range")."""
    if not _GO_INT.fullmatch(text):
        raise ValueError("parse error")
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        digits = "0o" + digits[1:]  # Go: a leading 0 means octal
    value = sign * int(digits, 0)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError("value out of range")
    return value


def go_quote(text: str) -> str:
    """Go's ``%q`` for ordinary text: double quotes, backslash escapes."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def format_usage(flagset: FlagSet) -> str:
    """Consul's ``flags.Usage`` layout: usage, description, then each group's flags.

    ``HTTP API Options`` come first, then the command's own, as Consul prints them.
    """
    parts = [flagset.usage.strip()]
    if flagset.description:
        parts.append(textwrap.indent(textwrap.dedent(flagset.description).strip("\n"), "  "))
    for group in _groups(flagset.flags):
        flags = sorted((f for f in flagset.flags if f.group == group), key=lambda f: f.name)
        parts.append(group + "\n\n" + "\n\n".join(_format_flag(f) for f in flags))
    return "\n\n".join(parts) + "\n"


def _groups(flags: Sequence[Flag]) -> Iterator[str]:
    seen = list(dict.fromkeys(f.group for f in flags))
    if HTTP_OPTIONS in seen:
        seen.remove(HTTP_OPTIONS)
        seen.insert(0, HTTP_OPTIONS)
    yield from seen


def _format_flag(f: Flag) -> str:
    metavar = f.metavar or _METAVAR[f.kind]
    head = f"  -{f.name}=<{metavar}>" if metavar else f"  -{f.name}"
    body = textwrap.fill(f.help, width=80, initial_indent="     ", subsequent_indent="     ")
    return head + ("\n" + body if body else "")
