"""Customer records: validated and normalised on the way in, created with a loyalty card number of their own,
changed and found, every change audited in the same transaction.

Normalised so that a lookup matches however a value was typed: a phone number keeps only its digits and a
leading + (00 becomes +), an email is lower-cased. Every field is checked like client input (novapos.validators):
a refusal is validators.Invalid naming the field, and nothing changes.

A card number is generated when none is given: 14 digits, "27" then 11 random digits then a Luhn check digit, so
a mistyped digit is caught at the till and numbers cannot be guessed from one another (a card number finds a
customer and their points). Unique per tenant by the customers_card index: a collision (one in ~10^11) is retried.

Audit records (customer.created, customer.updated) hold personal values only under the audit's personal fields
(customer_name, phone, email: hub.audit.chain keeps them in audit_personal, the chain a salted commitment), so
erasing a customer can delete them while the chain still verifies (hub.customers.privacy).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from hub.audit import chain
from hub.audit.chain import Entry, record
from novapos import validators
from novapos.validators import Invalid, describe
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

MAX_NAME = 120
MAX_EMAIL = 254
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 6, 15  # E.164 allows at most 15
MAX_PREFERENCES = 20
MAX_FOUND = 10
"""customer_find answers at most this many (a till shows a short list)."""
CARD_PREFIX = "27"
CARD_ATTEMPTS = 5
FIELDS = ("name", "phone", "email", "birthday", "card_number", "preferences", "consents", "home_store")
PERSONAL_FIELDS = ("name", "phone", "email", "birthday", "card_number")
"""Blanked by erasure (the customers table's CHECK holds them NULL once erased_at is set)."""
_AUDITED_AS = {"name": "customer_name", "phone": "phone", "email": "email"}
"""The record fields whose values an audit record keeps, under the audit's personal field names."""
_EMAIL = re.compile(r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")
_PHONE_TYPED = re.compile(r"\+?[0-9 ().\-/]{1,40}")
_CARD = re.compile(r"[0-9A-Z-]{4,32}")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
COLUMNS = ("id, card_number, name, phone, email, birthday, preferences::text AS preferences, consents::text AS consents,"
           " home_store, created_by, created_at, updated_at, erased_at")


def phone(value: Any) -> str:
    """+ and digits only: '+33 6 12-34 56 78' -> '+33612345678', '0044 20 7946 0000' -> '+442079460000'."""
    typed = validators.text("phone", value, max_length=40)
    if not _PHONE_TYPED.fullmatch(typed):
        raise Invalid("phone", f"{describe(typed)} is not a phone number: digits, spaces, - ( ) . and a leading +")
    digits = "".join(ch for ch in typed if ch.isdigit())
    plus = typed.startswith("+")
    if not plus and digits.startswith("00"):
        digits, plus = digits[2:], True
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        raise Invalid("phone", f"has {len(digits)} digits: a phone number has {MIN_PHONE_DIGITS} to "
                               f"{MAX_PHONE_DIGITS}")
    return ("+" if plus else "") + digits


def email(value: Any) -> str:
    """Lower-cased, and shaped like an address (name@domain.tld)."""
    typed = validators.text("email", value, max_length=MAX_EMAIL).strip().lower()
    if not _EMAIL.fullmatch(typed):
        raise Invalid("email", f"{describe(typed)} is not an email address like name@example.com")
    return typed


def card_number(value: Any) -> str:
    typed = validators.text("card_number", value, max_length=32).strip().upper().replace(" ", "")
    if not _CARD.fullmatch(typed):
        raise Invalid("card_number", f"{describe(typed)} is not a card number: 4 to 32 digits, letters or -")
    return typed


def birthday(value: Any) -> date:
    typed = validators.text("birthday", value, max_length=10)
    try:
        day = date.fromisoformat(typed) if len(typed) == 10 and typed.isascii() else None
    except ValueError:
        day = None
    if day is None:
        raise Invalid("birthday", f"{describe(typed)} is not a date: use YYYY-MM-DD")
    if not date(1900, 1, 1) <= day <= datetime.now(UTC).date():
        raise Invalid("birthday", f"{typed} is not a birthday between 1900-01-01 and today")
    return day


def _flat_map(where: str, value: Any, *, booleans: bool) -> dict[str, Any]:
    """A small object of lower-case keys: preferences (short texts, numbers, true/false), consents (true/false)."""
    if not isinstance(value, dict):
        raise Invalid(where, f"must be an object, got {describe(value)}")
    if len(value) > MAX_PREFERENCES:
        raise Invalid(where, f"holds at most {MAX_PREFERENCES} entries")
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise Invalid(where, f"key {describe(key)} must be lower-case letters, digits and _ (at most 40)")
        if isinstance(item, bool):
            kept[key] = item
        elif booleans:
            raise Invalid(f"{where}.{key}", f"must be true or false, got {describe(item)}")
        elif isinstance(item, int):
            kept[key] = validators.integer(f"{where}.{key}", item, -validators.MAX_MINOR, validators.MAX_MINOR)
        else:
            kept[key] = validators.text(f"{where}.{key}", item)
    return kept


def fields(body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The customer fields of a request body, checked and normalised. Creating needs a name; a change names only
    what it changes (null clears an optional field). An unknown field is refused, not ignored."""
    if unknown := sorted(set(body) - set(FIELDS)):
        raise Invalid(unknown[0], f"is not a customer field; use {', '.join(FIELDS)}")
    if creating and body.get("name") is None:
        raise Invalid("name", "is needed: the customer's name")
    checked: dict[str, Any] = {}
    for name in FIELDS:
        if name not in body:
            continue
        value = body[name]
        if value is None or value == "":
            if name == "name":
                raise Invalid("name", "cannot be blank: the customer's name")
            if name in ("preferences", "consents"):
                raise Invalid(name, "must be an object ({} for none)")
            checked[name] = None
        elif name == "name":
            checked[name] = validators.text("name", value, max_length=MAX_NAME).strip()
        elif name == "phone":
            checked[name] = phone(value)
        elif name == "email":
            checked[name] = email(value)
        elif name == "birthday":
            checked[name] = birthday(value)
        elif name == "card_number":
            checked[name] = card_number(value)
        elif name == "home_store":
            checked[name] = validators.token("home_store", value)
        else:
            checked[name] = _flat_map(name, value, booleans=name == "consents")
    if checked.get("name") == "":
        raise Invalid("name", "cannot be blank: the customer's name")
    return checked


def new_card_number() -> str:
    body = CARD_PREFIX + "".join(str(secrets.randbelow(10)) for _ in range(11))
    return body + str(luhn_digit(body))


def luhn_digit(digits: str) -> int:
    """The check digit that makes `digits` + it pass the Luhn check."""
    total = 0
    for index, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if index % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return (10 - total % 10) % 10


def profile(row: Mapping[str, Any]) -> dict[str, Any]:
    """A customer row as the console and the till read it (JSON-ready)."""
    return {"id": str(row["id"]), "card_number": row["card_number"], "name": row["name"], "phone": row["phone"],
            "email": row["email"], "birthday": None if row["birthday"] is None else row["birthday"].isoformat(),
            "preferences": json.loads(row["preferences"]), "consents": json.loads(row["consents"]),
            "home_store": row["home_store"], "created_by": row["created_by"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
            "erased": row["erased_at"] is not None,
            "erased_at": None if row["erased_at"] is None else row["erased_at"].isoformat()}


def customer_uuid(where: str, value: Any) -> uuid.UUID:
    return uuid.UUID(validators.uuid_text(where, value))


async def by_id(conn: asyncpg.Connection, tenant: str, customer: str | uuid.UUID) -> dict[str, Any] | None:
    """The customer's profile, or None when the tenant has no such customer (or the id is not a UUID)."""
    try:
        key = customer if isinstance(customer, uuid.UUID) else uuid.UUID(str(customer))
    except ValueError:
        return None
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM customers WHERE tenant = $1 AND id = $2", tenant, key)
    return None if row is None else profile(row)


async def exists(conn: asyncpg.Connection, tenant: str, customer: str | uuid.UUID) -> bool:
    try:
        key = customer if isinstance(customer, uuid.UUID) else uuid.UUID(str(customer))
    except ValueError:
        return False
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customers WHERE tenant = $1 AND id = $2)",
                                    tenant, key))


async def _check_store(conn: asyncpg.Connection, tenant: str, store: str | None) -> None:
    if store is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM stores WHERE tenant = $1 AND store = $2)", tenant, store):
        raise Invalid("home_store", f"{store} is not a store of {tenant}")


def _audited(changed: Mapping[str, Any]) -> dict[str, Any]:
    """What an audit record says of a change: which fields, and the personal values under the audit's personal
    field names (kept aside from the chain); a birthday or a card number is named, never recorded. A value whose
    field the hub's [audit] personal does not list is left out: it would otherwise enter the chain for good."""
    details: dict[str, Any] = {"fields": ",".join(sorted(changed))}
    for name, audited in _AUDITED_AS.items():
        if changed.get(name) is not None and audited in chain.PERSONAL:
            details[audited] = changed[name]
    return details


class Conflict(Exception):
    """A card number another customer of the tenant holds (a 409)."""


async def _enrolled(conn: asyncpg.Connection, tenant: str, request: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM customers WHERE tenant = $1 AND enrol_request = $2",
                              tenant, request)
    return None if row is None else profile(row)


async def create(conn: asyncpg.Connection, tenant: str, body: Mapping[str, Any], *, actor: str,
                 store: str | None = None, request: uuid.UUID | None = None) -> dict[str, Any]:
    """A new customer from a request body (checked here); audited as customer.created. Conflict when the card
    number given is another customer's. With `request` (a till's enrolment id, kept across its retries): the
    customer that request already made, if any, instead of a second one (also when two tries race: the unique
    index on (tenant, enrol_request) lets one insert, the other reads it)."""
    checked = fields(body, creating=True)
    if request is not None and (done := await _enrolled(conn, tenant, request)) is not None:
        return done
    await _check_store(conn, tenant, checked.get("home_store"))
    customer = uuid7()
    given = checked.get("card_number")
    try:
        async with conn.transaction():
            for _ in range(1 if given else CARD_ATTEMPTS):
                number = given or new_card_number()
                row = await conn.fetchrow(
                    "INSERT INTO customers (tenant, id, card_number, name, phone, email, birthday, preferences,"
                    " consents, home_store, created_by, enrol_request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb,"
                    " $9::jsonb, $10, $11, $12) ON CONFLICT (tenant, card_number) WHERE card_number IS NOT NULL DO"
                    f" NOTHING RETURNING {COLUMNS}",
                    tenant, customer, number, checked["name"], checked.get("phone"), checked.get("email"),
                    checked.get("birthday"), json.dumps(checked.get("preferences") or {}),
                    json.dumps(checked.get("consents") or {}), checked.get("home_store"), actor, request)
                if row is not None:
                    break
            else:
                raise Conflict(f"card number {given} is another customer's" if given else
                               "no free card number was found: try again")
            await record(conn, Entry(tenant, actor, "customer.created", store=store, target=str(customer),
                                     details=_audited(checked)))
    except asyncpg.UniqueViolationError as exc:
        if request is None or exc.constraint_name != "customers_enrol_request":
            raise
        done = await _enrolled(conn, tenant, request)  # the same enrolment's other try won the race
        assert done is not None, "the unique index named a request no row holds"
        return done
    log.info("customer %s created by %s", customer, actor)  # the id only: never a name, phone or email
    return profile(row)


async def update(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, body: Mapping[str, Any], *,
                 actor: str) -> dict[str, Any] | None:
    """Change the fields the body names; audited as customer.updated. None when there is no such customer. An
    erased customer cannot be changed (Invalid): erasure is for good."""
    checked = fields(body, creating=False)
    if not checked:
        raise Invalid("body", f"names no field to change; use {', '.join(FIELDS)}")
    await _check_store(conn, tenant, checked.get("home_store"))
    sets, args = [], [tenant, customer]
    for name, value in checked.items():
        args.append(json.dumps(value) if name in ("preferences", "consents") else value)
        sets.append(f"{name} = ${len(args)}" + ("::jsonb" if name in ("preferences", "consents") else ""))
    async with conn.transaction():
        current = await conn.fetchrow("SELECT erased_at FROM customers WHERE tenant = $1 AND id = $2 FOR UPDATE",
                                      tenant, customer)
        if current is None:
            return None
        if current["erased_at"] is not None:
            raise Invalid("customer", "was erased (a data subject request): an erased record cannot be changed")
        try:
            row = await conn.fetchrow(f"UPDATE customers SET {', '.join(sets)}, updated_at = now()"
                                      f" WHERE tenant = $1 AND id = $2 RETURNING {COLUMNS}", *args)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"card number {checked.get('card_number')} is another customer's") from None
        await record(conn, Entry(tenant, actor, "customer.updated", target=str(customer),
                                 details=_audited(checked)))
    log.info("customer %s changed by %s: %s", customer, actor, ",".join(sorted(checked)))
    return profile(row)


def lookup_keys(query: Any) -> tuple[str | None, str | None, str | None]:
    """What a query may be, normalised: (email, phone, card number); None where it cannot be that one. A query of
    digits may be a phone number or a card number: both are tried."""
    typed = validators.text("query", query, max_length=MAX_EMAIL).strip()
    if not typed:
        raise Invalid("query", "is empty: give a phone number, an email or a card number")
    if "@" in typed:
        return email(typed), None, None
    found: list[str | None] = []
    for normalise in (phone, card_number):
        try:
            found.append(normalise(typed))
        except Invalid:
            found.append(None)
    if found == [None, None]:
        raise Invalid("query", f"{describe(typed)} is not a phone number, an email or a card number")
    return None, found[0], found[1]


async def find(conn: asyncpg.Connection, tenant: str, query: Any, *, limit: int = MAX_FOUND) -> list[dict[str, Any]]:
    """Customers of the tenant whose phone, email or card number is the query (exact, normalised). Erased
    customers are never found."""
    by_email, by_phone, by_card = lookup_keys(query)
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM customers WHERE tenant = $1 AND erased_at IS NULL"
        " AND (email = $2 OR phone = $3 OR card_number = $4) ORDER BY created_at, id LIMIT $5",
        tenant, by_email, by_phone, by_card, limit)
    return [profile(row) for row in rows]
