"""A store's staff list on the wire: who may log in at its tills, with their PIN verifiers and roles there.

- A store asks on `novapos.<tenant>.<store>.req.staff` (empty body). The hub takes the store from the
  subject (NATS lets a store publish only on its own subjects) and answers with that store's list.
- After any change that affects a store's people the hub publishes the store's new list on core NATS
  `novapos.<tenant>.<store>.staff`, which only that store's user may subscribe to.

A list holds only the active users with a PIN and a role AT THIS STORE, each with those roles only:
nothing about anyone else, nor about the user's roles elsewhere. `version` only grows (the tenant's staff
counter, bumped in the transaction of every change), so a store keeps a list only if it is newer than its own.
Bodies are msgpack maps, validated on decode: a bad list is refused with a reason, never half applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgpack

from novapos import validators
from novapos.roles import SCOPE_OF, Role, Scope
from novapos.validators import MAX_BIGINT, Invalid
from novapos.wire.subjects import parse_request_subject, request_subject

STAFF_REQUESTS = "novapos.*.*.req.staff"
"""What the hub subscribes to (one queue group): every store asking for its list."""
MAX_STAFF = 5000
"""Most people in one store's list: far above any store's staff, far below NATS's 1 MB message."""
MAX_VERIFIER_LENGTH = 200
STORE_ROLES = tuple(role for role in Role if SCOPE_OF[role] is Scope.STORE)


def staff_request_subject(tenant: str, store: str) -> str:
    return request_subject(tenant, store, "staff")


def staff_subject(tenant: str, store: str) -> str:
    """Where the hub publishes a store's list when it changes (the store subscribes to exactly this one)."""
    return f"novapos.{validators.token('tenant', tenant)}.{validators.token('store', store)}.staff"


def parse_staff_request_subject(subject: str) -> tuple[str, str]:
    """(tenant, store) of a staff request subject, or Invalid."""
    return parse_request_subject(subject, "staff")


@dataclass(frozen=True)
class StaffMember:
    login: str
    name: str
    roles: tuple[str, ...]
    """Their roles at this store (store_manager, supervisor, cashier)."""
    pin_verifier: str


@dataclass(frozen=True)
class StaffList:
    tenant: str
    store: str
    version: int
    users: tuple[StaffMember, ...]

    def member(self, login: str) -> StaffMember | None:
        return next((user for user in self.users if user.login == login), None)


def encode_list(staff: StaffList) -> bytes:
    return cast(bytes, msgpack.packb({
        "tenant": staff.tenant, "store": staff.store, "version": staff.version,
        "users": [{"login": u.login, "name": u.name, "roles": list(u.roles), "pin_verifier": u.pin_verifier}
                  for u in staff.users]}))


def decode_list(data: bytes) -> StaffList:
    """A staff list, every field checked, or Invalid naming the first bad one."""
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise Invalid("staff list", f"is not msgpack ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise Invalid("staff list", "must be a map")
    users = raw.get("users")
    if not isinstance(users, list) or len(users) > MAX_STAFF:
        raise Invalid("staff list's users", f"must be a list of at most {MAX_STAFF}")
    return StaffList(validators.token("staff list's tenant", raw.get("tenant")),
                     validators.token("staff list's store", raw.get("store")),
                     validators.integer("staff list's version", raw.get("version"), 0, MAX_BIGINT),
                     tuple(_member(n, user) for n, user in enumerate(users)))


def _member(n: int, raw: Any) -> StaffMember:
    where = f"staff list's user {n}"
    if not isinstance(raw, dict):
        raise Invalid(where, "must be a map")
    roles = raw.get("roles")
    if not isinstance(roles, list) or not roles or any(role not in STORE_ROLES for role in roles):
        raise Invalid(f"{where}'s roles", f"must be a non-empty list of {', '.join(STORE_ROLES)}")
    return StaffMember(validators.text(f"{where}'s login", raw.get("login"), max_length=64),
                       validators.text(f"{where}'s name", raw.get("name")), tuple(roles),
                       validators.text(f"{where}'s PIN verifier", raw.get("pin_verifier"),
                                       max_length=MAX_VERIFIER_LENGTH))
