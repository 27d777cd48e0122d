"""Text → plain data for every file a user writes: JSON, or HCL1 through pyhcl (pure).

Rules:
1. ``parse_text`` is the only place JSON and pyhcl errors enter trellis; both become
   ``ConfigSyntaxError`` (an ``InvalidInput``) naming the file, line and column.
2. The result is plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``,
   whatever the syntax, so decoders never see a parser's quirks.
3. HCL shapes are normalised (reference/dependencies.md, DESIGN.md decisions):
   * a block that appears once is a dict, several times a list of dicts
     (``service {} service {}`` → ``{"service": [{...}, {...}]}``);
   * labelled blocks become dicts keyed by label (``service "web" {}`` →
     ``{"service": {"web": {...}}}``); blocks that repeat a label are merged;
   * ``key = {...}`` is the same as ``key {...}`` (HCL1 treats them alike);
   * a bare ``null`` is ``None`` (pyhcl alone would give the string ``"null"``); any
     other bare identifier stays a string, as pyhcl gives it.
4. Duplicate attributes are rejected, in JSON and HCL alike, with an error naming
   the key (Go's JSON decoder and HCL1 silently keep the last one; a config file
   that sets ``port`` twice is nearly always a mistake). In HCL this includes the
   same attribute in two merged blocks with one label.

NOTE: pyhcl 0.4.5 builds its yacc tables on every ``HclParser()`` (~20 ms) and keeps
parse state on the parser object, so one parser is built per call: nothing is
shared between threads.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Literal

from trellis.errors import InvalidInput

Format = Literal["json", "hcl"]

__all__ = ["ConfigSyntaxError", "Format", "detect_format", "parse_text"]


class ConfigSyntaxError(InvalidInput):
    """A file that is not valid JSON/HCL, or that repeats a key.

    ``line`` and ``column`` are 1-based; 0 when unknown.
    """

    def __init__(self, filename: str, detail: str, line: int = 0, column: int = 0) -> None:
        self.filename = filename
        self.line = line
        self.column = column
        self.detail = detail
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(filename, None, detail, message=f"Error parsing {filename}: {where}{detail}")


def detect_format(filename: str, text: str, fmt: str | None = None) -> Format:
    """``fmt`` if given, else the extension (``.json``/``.hcl``), else the content:
    a first non-blank ``{`` means JSON, as pyhcl and Consul sniff it."""
    if fmt is not None:
        if fmt not in ("json", "hcl"):
            raise InvalidInput("config-format", fmt, 'must be "json" or "hcl"')
        return fmt  # type: ignore[return-value]
    ext = os.path.splitext(filename)[1].lower()
    if ext in (".json", ".hcl"):
        return "json" if ext == ".json" else "hcl"
    return "json" if text.lstrip().startswith("{") else "hcl"


def parse_text(text: str, *, filename: str, fmt: str | None = None, merge_labels: bool = True) -> dict[str, Any]:
    """Parse one JSON or HCL document into a plain dict. Pure; loop-safe (CPU only).

    ``merge_labels=False`` keeps HCL blocks that repeat a label apart: the label maps
    to a list of their bodies, in file order (a rules file merges them its own way).
    Raises ConfigSyntaxError (an InvalidInput) for syntax errors, duplicate keys
    and a top level that is not an object.
    """
    if detect_format(filename, text, fmt) == "json":
        return _parse_json(text, filename)
    return _parse_hcl(text, filename, merge_labels)


# --------------------------------------------------------------------------- JSON


def _parse_json(text: str, filename: str) -> dict[str, Any]:
    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ConfigSyntaxError(filename, f'duplicate key "{key}"')
            out[key] = value
        return out

    def reject_constant(name: str) -> Any:
        raise ConfigSyntaxError(filename, f"invalid number {name}")

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise ConfigSyntaxError(filename, exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise ConfigSyntaxError(filename, "nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigSyntaxError(filename, f"top level must be an object, not {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a " + type(value).__name__


# --------------------------------------------------------------------------- HCL
#
# pyhcl's grammar actions flatten objects as they go and lose what we need (order,
# duplicates, block vs attribute, bare identifiers). We keep its grammar and tables
# untouched and only rebind a few actions on our own parser instance, so the raw
# parse is a tree of the small marker types below; ``_Normaliser`` then builds the
# plain result.


class _Key(str):
    """An object key (or bare identifier value) with its source position."""

    lexpos: int
    bare: bool


class _Pairs(list):  # type: ignore[type-arg]
    """An HCL object body: ``[(key, value), ...]`` in source order, duplicates kept."""


class _Labelled:
    """``name "label" {...}``: the label and what follows it (``_Pairs`` or ``_Labelled``)."""

    __slots__ = ("label", "body")

    def __init__(self, label: Any, body: Any) -> None:
        self.label = label
        self.body = body


def _act_objectkey(p: Any) -> None:
    key = _Key(p[1])
    key.lexpos = p.lexpos(1)
    key.bare = p.slice[1].type == "IDENTIFIER"
    p[0] = key


def _act_objectitem(p: Any) -> None:
    value = p[3]
    if p.slice[3].type == "IDENTIFIER":  # `key = ident` reduced straight from the token
        value = _Key(value)
        value.lexpos = p.lexpos(3)
        value.bare = True
    p[0] = (p[1], value)


def _act_block(p: Any) -> None:
    p[0] = (p[1], p[2])


def _act_labelled_block(p: Any) -> None:
    label, body = p[2]
    p[0] = (p[1], _Labelled(label, body))


def _act_empty_object(p: Any) -> None:
    p[0] = _Pairs()


_ACTIONS = {
    "p_objectkey_0": _act_objectkey,
    "p_objectitem_0": _act_objectitem,
    "p_block_0": _act_block,
    "p_block_1": _act_labelled_block,
    "p_object_2": _act_empty_object,
}

_LEXER_ERROR = re.compile(r"^Line (\d+), column (\d+), index \d+: (.*)$", re.S)


def _parse_hcl(text: str, filename: str, merge_labels: bool = True) -> dict[str, Any]:
    from hcl.lexer import Lexer  # imported here: pyhcl is only needed for HCL files
    from hcl.parser import HclParser

    parser = HclParser()
    parser.objectlist_flat = lambda items, _replace: _Pairs(items)  # type: ignore[method-assign]
    for production in parser.yacc.productions:
        if production.func in _ACTIONS:
            production.callable = _ACTIONS[production.func]
    parser.yacc.errorfunc = lambda token: _raise_syntax(text, filename, token)
    try:
        tree = parser.yacc.parse(text, lexer=Lexer())
    except ConfigSyntaxError:
        raise
    except ValueError as exc:  # pyhcl's lexer errors carry "Line L, column C, index I: ..."
        match = _LEXER_ERROR.match(str(exc))
        if match:
            line, col, detail = int(match[1]), int(match[2]) + 1, match[3]
            raise ConfigSyntaxError(filename, detail, line, col) from None
        raise ConfigSyntaxError(filename, str(exc)) from None
    except RecursionError:
        raise ConfigSyntaxError(filename, "nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 — the one boundary where pyhcl's errors enter
        raise ConfigSyntaxError(filename, f"{type(exc).__name__}: {exc}") from None
    return _Normaliser(text, filename, merge_labels).object(tree if tree is not None else _Pairs())


def _raise_syntax(text: str, filename: str, token: Any) -> None:
    if token is None:
        lines = text.split("\n")
        raise ConfigSyntaxError(filename, "unexpected end of file", len(lines), len(lines[-1]) + 1)
    line, col = _position(text, token.lexpos)
    shown = json.dumps(token.value) if isinstance(token.value, str) else str(token.value)
    raise ConfigSyntaxError(filename, f"unexpected {shown}", line, col)


def _position(text: str, lexpos: int) -> tuple[int, int]:
    line = text.count("\n", 0, lexpos) + 1
    return line, lexpos - (text.rfind("\n", 0, lexpos) + 1) + 1


class _Normaliser:
    """Marker tree → plain data (rule 3 of the module docstring)."""

    def __init__(self, text: str, filename: str, merge_labels: bool = True) -> None:
        self.text = text
        self.filename = filename
        self.merge_labels = merge_labels

    def error(self, detail: str, key: Any = None) -> ConfigSyntaxError:
        if isinstance(key, _Key) and hasattr(key, "lexpos"):
            line, col = _position(self.text, key.lexpos)
            return ConfigSyntaxError(self.filename, detail, line, col)
        return ConfigSyntaxError(self.filename, detail)

    def object(self, pairs: _Pairs) -> dict[str, Any]:
        groups: dict[str, list[tuple[Any, Any]]] = {}
        for key, value in pairs:
            if not isinstance(key, str):
                raise self.error(f"unsupported key expression {' '.join(map(str, key))!r}")
            groups.setdefault(str(key), []).append((key, value))
        return {name: self.group(name, items) for name, items in groups.items()}

    def group(self, name: str, items: list[tuple[Any, Any]]) -> Any:
        values = [value for _, value in items]
        if len(values) == 1:
            return self.value(values[0])
        if all(isinstance(v, _Labelled) for v in values):
            return self.labelled(name, items)
        if all(isinstance(v, _Pairs) for v in values):
            return [self.object(v) for v in values]
        blocks = [isinstance(v, (_Pairs, _Labelled)) for v in values]
        if any(blocks):
            raise self.error(f'"{name}" is used both as a block and as an attribute', items[1][0])
        raise self.error(f'duplicate attribute "{name}"', items[1][0])

    def labelled(self, name: str, items: list[tuple[Any, Any]]) -> dict[str, Any]:
        by_label: dict[str, list[tuple[Any, Any]]] = {}
        for key, block in items:
            if not isinstance(block, _Labelled):
                raise self.error(f'"{name}" mixes labelled and unlabelled blocks', key)
            by_label.setdefault(str(block.label), []).append((block.label, block.body))
        return {label: self.merged(label, bodies) for label, bodies in by_label.items()}

    def merged(self, label: str, bodies: list[tuple[Any, Any]]) -> Any:
        if len(bodies) == 1:
            return self.value(bodies[0][1])
        if all(isinstance(b, _Pairs) for _, b in bodies):
            if not self.merge_labels:
                return [self.object(body) for _, body in bodies]
            # DESIGN.md: blocks that repeat a label are merged; attributes set in two
            # of them are duplicates like any other.
            return self.object(_Pairs(pair for _, body in bodies for pair in body))
        return self.labelled(label, bodies)

    def value(self, value: Any) -> Any:
        if isinstance(value, _Pairs):
            return self.object(value)
        if isinstance(value, _Labelled):
            return self.labelled("", [(value.label, value)])
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, _Key):
            return None if value.bare and value == "null" else str(value)
        if isinstance(value, tuple):  # pyhcl's arithmetic-key shape used as a value
            return " ".join(map(str, value))
        return value
