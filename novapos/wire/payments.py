"""Payments between a store and the hub: the store's requests, and the hub's payment events down to the store.

A store asks on its own subjects, novapos.<tenant>.<store>.req.<kind> (one kind per operation, KINDS), so the
hub knows who asks and answers only about that store's tenant. Requests and answers are JSON objects; what each
holds is documented where it is answered (hub.payments.requests) and asked (actors.payments).

The hub's payment events for a store (a QR payment confirmed, an offline approval declined later, a refund
done) leave PostgreSQL through the payments outbox and are published on novapos.<tenant>.<store>.pay.<type>
with the event's id as Nats-Msg-Id; a store that missed some asks for them after the last one it has
(`EVENTS`), and keeps each event's id in its inbox so that one delivered twice is applied once.
"""

from __future__ import annotations

import json
from typing import Any

from novapos import validators
from novapos.wire.subjects import request_subject

INTENT = "pay_intent"
"""Record a card tender the terminal approved (or took offline) as the hub's intent."""
CANCEL = "pay_cancel"
"""Void an approved tender of an abandoned sale."""
REFUND = "pay_refund"
"""Refund part of a tender to the card it was paid with, through the provider (no card needed)."""
QR = "pay_qr"
"""Start a QR payment: the answer holds the URL the till shows as a QR code."""
STATUS = "pay_status"
"""An intent's state, by its tender's id."""
SETTINGS = "pay_settings"
"""The tenant's payment settings the store keeps for when it is offline (offline card limits)."""
EVENTS = "pay_events"
"""The store's payment events after a position: what it missed while it was away."""
KINDS = (INTENT, CANCEL, REFUND, QR, STATUS, SETTINGS, EVENTS)

MAX_MESSAGE_BYTES = 64 * 1024


def payment_request_subject(tenant: str, store: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"no payment request {kind!r}")
    return request_subject(tenant, store, kind)


def payment_events_subject(tenant: str, store: str, event_type: str = "*") -> str:
    """Where the hub publishes a store's payment events (`*`: all of them, for the store's subscription)."""
    tenant, store = validators.token("tenant", tenant), validators.token("store", store)
    kind = event_type if event_type == "*" else validators.token("event type", event_type.replace(".", "_"))
    return f"novapos.{tenant}.{store}.pay.{kind}"


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def decode(where: str, data: bytes) -> dict[str, Any]:
    """A request's or an answer's object; Invalid when it is not one."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise validators.Invalid(where, f"is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise validators.Invalid(where, "is not JSON") from None
    if not isinstance(body, dict):
        raise validators.Invalid(where, "must be a JSON object")
    return body
