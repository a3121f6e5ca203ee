"""A restored store box asks the hub which of its sequence numbers the hub holds: request and answer.

The subject is the store's own (novapos.<tenant>.<store>.req.restore): the hub answers about the asking store
alone. The request names the highest number the restored backup is sure the hub may lack nothing below
(`after`); the answer gives the highest number the hub holds from the store (applied, or refused into a dead
letter: a number either way) and the events above `after` it holds, at most MAX_EVENTS of them, oldest first
(`more` when there are others). Both are JSON; the answer is checked like any input (`decode_answer`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from novapos import validators
from novapos.wire.envelope import MAX_SEQ
from novapos.wire.subjects import request_subject

KIND = "restore"
MAX_EVENTS = 5_000
"""The most events one answer lists (about 400 kB of JSON, under NATS's 1 MB message limit): a backup misses
minutes of sales, not days; beyond it, `more` says so."""


@dataclass(frozen=True)
class HeldEvent:
    seq: int
    id: str
    type: str
    """The event's type ("sale.completed"), or "dead letter" for one the hub refused."""


@dataclass(frozen=True)
class HubHolds:
    last_seq: int
    events: tuple[HeldEvent, ...]
    more: bool


def restore_subject(tenant: str, store: str) -> str:
    return request_subject(tenant, store, KIND)


def encode_request(after: int) -> bytes:
    return json.dumps({"after": after}).encode()


def decode_request(data: bytes) -> int:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise validators.Invalid("request", 'must be JSON {"after": number}') from None
    if not isinstance(body, dict):
        raise validators.Invalid("request", 'must be JSON {"after": number}')
    return validators.integer("after", body.get("after"), 0, MAX_SEQ)


def encode_answer(holds: HubHolds) -> bytes:
    return json.dumps({"last_seq": holds.last_seq, "more": holds.more,
                       "events": [{"seq": e.seq, "id": e.id, "type": e.type} for e in holds.events]}).encode()


def _event(index: int, value: Any) -> HeldEvent:
    where = f"hub's answer events[{index}]"
    if not isinstance(value, dict):
        raise validators.Invalid(where, "must be an object")
    return HeldEvent(validators.integer(f"{where}.seq", value.get("seq"), 1, MAX_SEQ),
                     validators.text(f"{where}.id", value.get("id"), max_length=64),
                     validators.text(f"{where}.type", value.get("type"), max_length=64))


def decode_answer(data: bytes) -> HubHolds:
    """The hub's answer; Invalid when it is not one."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise validators.Invalid("hub's answer", "is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("events"), list) or not isinstance(body.get("more"), bool):
        raise validators.Invalid("hub's answer", "must be an object with last_seq, events and more")
    events = tuple(_event(index, value) for index, value in enumerate(body["events"][:MAX_EVENTS]))
    last_seq = validators.integer("hub's answer last_seq", body.get("last_seq"), 0, MAX_SEQ)
    if any(event.seq > last_seq for event in events):
        raise validators.Invalid("hub's answer", "lists an event above its last_seq")
    return HubHolds(last_seq, events, body["more"])
