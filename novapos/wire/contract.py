"""Declarative event schemas: a declaration says what a body holds, a validator is generated from it, and a
frozen copy of it (novapos/wire/contracts/<type>.v<N>.json) is the contract stores and hubs keep.

A declaration is a tree of kinds (token, text, integer, currency, boolean, money, choice, map, list), each
with its bounds, plus named cross-field rules ("amount = quantity x unit_price") attached to the map they
read. `compile_schema` turns it into one function that refuses a bad body with a SchemaError naming the
field (lines[0].quantity) and saying what is allowed, through novapos.validators, the checks every door uses.

`contract` is the declaration as canonical JSON data: what a version of an event accepts, no more. Once a
version is published, stores in the field emit it and hubs accept it for as long as they run: its contract
never changes. `changes` lists, field by field, how a declaration departs from its frozen contract, so a
test can fail naming the field and saying to add version N+1 instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from novapos import validators
from novapos.validators import CURRENCY_PATTERN, MAX_MINOR, MAX_TEXT_LENGTH, MAX_TOKEN_LENGTH, TOKEN_PATTERN, Invalid

CONTRACTS_DIR = Path(__file__).parent / "contracts"

Check = Callable[[Any, str, Mapping[str, Any]], None]
"""A generated check: (value, where, body) -> None or SchemaError; `body` is the event body (for money's
currency)."""
Schema = Callable[[dict[str, Any]], None]


class SchemaError(Invalid):
    """An event body breaks its schema; `where` names the field (or the rule) it breaks."""


@dataclass(frozen=True)
class Token:
    """A name token (validators.token): safe in a subject, a URL, a metric label."""
    max_length: int = MAX_TOKEN_LENGTH


@dataclass(frozen=True)
class Text:
    """Printable text a person typed (validators.text)."""
    max_length: int = MAX_TEXT_LENGTH


@dataclass(frozen=True)
class Integer:
    minimum: int
    maximum: int


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 code."""


@dataclass(frozen=True)
class Boolean:
    pass


@dataclass(frozen=True)
class Money:
    """{minor, currency}: minor units from minimum to maximum, in the currency the body's `currency_field` names."""
    minimum: int = 0
    maximum: int = MAX_MINOR
    currency_field: str = "currency"


@dataclass(frozen=True)
class Choice:
    """One of a few fixed texts (a tender's method)."""
    values: tuple[str, ...]


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    required: bool = True
    """A required field that is missing is refused as its kind refuses nothing; an optional one is skipped."""


@dataclass(frozen=True)
class Rule:
    """A named cross-field rule on a map, run once its fields passed. `formula` is what it enforces, in words
    (it is part of the contract: a changed formula is a changed contract); `check(value, where)` enforces it."""
    name: str
    formula: str
    check: Callable[[Mapping[str, Any], str], None] = field(compare=False)


@dataclass(frozen=True)
class Map:
    fields: tuple[Field, ...]
    closed: bool = False
    """A closed map holds exactly its fields (money, a tax rule); an open one may carry more, ignored."""
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class List:
    items: Kind
    min_items: int = 0
    too_few: str = ""
    """The refusal when there are fewer than min_items, for a person ("must hold at least one line: ...")."""


Kind = Token | Text | Integer | Currency | Boolean | Money | Choice | Map | List


@dataclass(frozen=True)
class Declaration:
    type: str
    v: int
    body: Map
    doc: str


_TOKEN = re.compile(TOKEN_PATTERN)
_CURRENCY = re.compile(CURRENCY_PATTERN)


def _compile(kind: Kind) -> Check:
    """One check function per node, closures all the way down: no interpretation of the tree per event.

    The common kinds take a fast path for a good value (the same test as their validator's) and call the
    validator only to refuse, so the refusal is always the validator's sentence."""
    if isinstance(kind, Token):
        max_length = kind.max_length

        def token(value: Any, where: str, _body: Mapping[str, Any]) -> None:
            if type(value) is not str or len(value) > max_length or not _TOKEN.fullmatch(value):
                validators.token(where, value, max_length=max_length)
        return token
    if isinstance(kind, Text):
        text_max = kind.max_length

        def text(value: Any, where: str, _body: Mapping[str, Any]) -> None:
            validators.text(where, value, max_length=text_max)
        return text
    if isinstance(kind, Integer):
        low, high = kind.minimum, kind.maximum

        def integer(value: Any, where: str, _body: Mapping[str, Any]) -> None:
            if type(value) is not int or not low <= value <= high:
                validators.integer(where, value, low, high)
        return integer
    if isinstance(kind, Currency):
        def currency(value: Any, where: str, _body: Mapping[str, Any]) -> None:
            if type(value) is not str or not _CURRENCY.fullmatch(value):
                validators.currency(where, value)
        return currency
    if isinstance(kind, Boolean):
        def boolean(value: Any, where: str, _body: Mapping[str, Any]) -> None:
            if not isinstance(value, bool):
                raise SchemaError(where, "must be true or false")
        return boolean
    if isinstance(kind, Money):
        return _compile_money(kind)
    if isinstance(kind, Choice):
        values = kind.values
        allowed = ", ".join(values)

        def choice(value: Any, where: str, _body: Mapping[str, Any]) -> None:
            if not isinstance(value, str) or value not in values:
                raise SchemaError(where, f"{validators.describe(value)} is not supported ({allowed})")
        return choice
    if isinstance(kind, Map):
        return _compile_map(kind)
    return _compile_list(kind)


def _compile_money(kind: Money) -> Check:
    low, high, currency_field = kind.minimum, kind.maximum, kind.currency_field

    def money(value: Any, where: str, body: Mapping[str, Any]) -> None:
        if type(value) is dict and len(value) == 2 and value.get("currency") == body[currency_field]:
            minor = value.get("minor")  # the body's currency passed its check first: equal to it is valid
            if type(minor) is int and low <= minor <= high:
                return
        if not isinstance(value, dict) or len(value) != 2 or "minor" not in value or "currency" not in value:
            raise SchemaError(where, "must be {minor, currency}")
        currency = validators.currency(f"{where}.currency", value["currency"])
        if currency != body[currency_field]:
            raise SchemaError(where, f"is in {currency}, the sale is in {body[currency_field]}")
        validators.integer(f"{where}.minor", value["minor"], low, high)
    return money


def _compile_map(kind: Map) -> Check:
    checks = tuple((item.name, item.required, _compile(item.kind)) for item in kind.fields)
    names = frozenset(item.name for item in kind.fields)
    closed = f"must be {{{', '.join(item.name for item in kind.fields)}}}" if kind.closed else ""
    rules = tuple(rule.check for rule in kind.rules)

    def mapping(value: Any, where: str, body: Mapping[str, Any]) -> None:
        if not isinstance(value, dict) or (closed and value.keys() != names):
            raise SchemaError(where, closed or "must be a map")
        prefix = f"{where}." if where else ""
        for name, required, check in checks:
            if name in value or required:
                check(value.get(name), prefix + name, body)
        for rule in rules:
            rule(value, where)
    return mapping


def _compile_list(kind: List) -> Check:
    check, minimum = _compile(kind.items), kind.min_items
    too_few = kind.too_few or f"must hold at least {minimum} items"

    def items(value: Any, where: str, body: Mapping[str, Any]) -> None:
        if not isinstance(value, list):
            raise SchemaError(where, f"must be a list, got {validators.describe(value)}")
        if len(value) < minimum:
            raise SchemaError(where, too_few)
        for index, item in enumerate(value):
            check(item, f"{where}[{index}]", body)
    return items


def compile_schema(declaration: Declaration) -> Schema:
    """The validator of a declaration: raises SchemaError naming the field, or returns None."""
    check = _compile_map(declaration.body)

    def schema(body: dict[str, Any]) -> None:
        try:
            check(body, "", body)
        except SchemaError:
            raise
        except Invalid as exc:  # a validator's refusal, told as the wire's (callers tell the wire from the door)
            raise SchemaError(exc.where, str(exc).removeprefix(f"{exc.where} ")) from None
    schema.__doc__ = declaration.doc
    schema.__name__ = schema.__qualname__ = f"{declaration.type.replace('.', '_')}_v{declaration.v}"
    return schema


def _node(kind: Kind) -> dict[str, Any]:
    """A kind as contract data: what it accepts, nothing about how it says no."""
    if isinstance(kind, Map):
        return {"kind": "map", "closed": kind.closed,
                "fields": [{"name": item.name, "required": item.required, **_node(item.kind)} for item in kind.fields],
                "rules": [{"name": rule.name, "formula": rule.formula} for rule in kind.rules]}
    if isinstance(kind, List):
        return {"kind": "list", "min_items": kind.min_items, "items": _node(kind.items)}
    if isinstance(kind, Token | Text):
        return {"kind": type(kind).__name__.lower(), "max_length": kind.max_length}
    if isinstance(kind, Integer):
        return {"kind": "integer", "minimum": kind.minimum, "maximum": kind.maximum}
    if isinstance(kind, Money):
        return {"kind": "money", "minimum": kind.minimum, "maximum": kind.maximum,
                "currency_field": kind.currency_field}
    if isinstance(kind, Choice):
        return {"kind": "choice", "values": list(kind.values)}
    return {"kind": type(kind).__name__.lower()}


def contract(declaration: Declaration) -> dict[str, Any]:
    """The declaration as the JSON data its contract file holds."""
    return {"type": declaration.type, "v": declaration.v, "body": _node(declaration.body)}


def canonical(data: Any) -> str:
    """One text for one value: sorted keys, two-space indent, a final newline (files diff cleanly)."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def contract_path(event_type: str, v: int, folder: Path = CONTRACTS_DIR) -> Path:
    return folder / f"{event_type}.v{v}.json"


def _describe(node: Mapping[str, Any]) -> str:
    settings = ", ".join(f"{key} {json.dumps(value)}" for key, value in sorted(node.items())
                         if key not in ("fields", "items", "rules", "name"))
    return settings


def changes(frozen: Mapping[str, Any], current: Mapping[str, Any], where: str = "body") -> list[str]:
    """How `current` departs from `frozen`, one sentence per field or rule ("lines[].quantity: maximum 9999
    became 99999"); empty when they are the same contract."""
    found: list[str] = []
    for key in sorted(set(frozen) | set(current)):
        if key in ("fields", "items", "rules"):
            continue
        if frozen.get(key) != current.get(key):
            found.append(f"{where}: {key} {json.dumps(frozen.get(key))} became {json.dumps(current.get(key))}")
    if "items" in frozen and "items" in current:
        found += changes(frozen["items"], current["items"], f"{where}[]")
    for part in ("fields", "rules"):
        was = {item["name"]: item for item in frozen.get(part, [])}
        now = {item["name"]: item for item in current.get(part, [])}
        for name in [item["name"] for item in frozen.get(part, [])]:
            path = f"{where}.{name}" if part == "fields" else f"{where} rule {name!r}"
            if name not in now:
                found.append(f"{path}: removed")
            else:
                found += changes(was[name], now[name], path)
        for name in [item["name"] for item in current.get(part, [])]:
            path = f"{where}.{name}" if part == "fields" else f"{where} rule {name!r}"
            if name not in was:
                found.append(f"{path}: added ({_describe(now[name])})")
        if [n for n in was if n in now] != [n for n in now if n in was]:
            found.append(f"{where}: its {part} are checked in another order")
    return found


def frozen_contracts(folder: Path = CONTRACTS_DIR) -> dict[tuple[str, int], dict[str, Any]]:
    """Every contract file of `folder`, by (type, v)."""
    found = {}
    for path in sorted(folder.glob("*.v*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[(data["type"], data["v"])] = data
    return found


def freeze_missing(declarations: Sequence[Declaration], folder: Path = CONTRACTS_DIR) -> list[Path]:
    """Write the contract file of each declaration that has none yet (a new version); never rewrite one."""
    written = []
    for declaration in declarations:
        path = contract_path(declaration.type, declaration.v, folder)
        if not path.exists():
            path.write_text(canonical(contract(declaration)), encoding="utf-8")
            written.append(path)
    return written


def departures(declarations: Sequence[Declaration], folder: Path = CONTRACTS_DIR) -> list[str]:
    """What breaks the contracts in `folder`, one paragraph per event version, for a person to act on: a
    declaration that changed since it was frozen, a frozen version no longer declared, a version not frozen."""
    frozen = frozen_contracts(folder)
    declared = {(d.type, d.v): d for d in declarations}
    latest: dict[str, int] = {}
    for event_type, v in [*frozen, *declared]:
        latest[event_type] = max(v, latest.get(event_type, 0))
    found = []
    for (event_type, v), declaration in sorted(declared.items()):
        if (event_type, v) not in frozen:
            found.append(f"{event_type} v{v} has no contract file {contract_path(event_type, v, folder).name}: "
                         "freeze it with `python -m novapos.wire.schemas`")
            continue
        changed = changes(frozen[(event_type, v)]["body"], contract(declaration)["body"])
        if changed:
            found.append(f"{event_type} v{v} changed since it was frozen ({'; '.join(changed)}): stores and hubs in "
                         f"the field rely on v{v} as it was, so add version {latest[event_type] + 1} instead (a new "
                         f"declaration beside v{v}, then `python -m novapos.wire.schemas`) and keep v{v} as frozen")
    for event_type, v in sorted(set(frozen) - set(declared)):
        found.append(f"{event_type} v{v} is frozen but no longer declared: the hub must keep accepting it while "
                     "stores upgrade; declare it again as its contract file says")
    return found
