"""A store's privileged action, recorded in one call: an audit.recorded event through the outbox.

The till (an override, a void, a no-sale drawer open, a refund, an offline login) calls
`record_at_store(self.registry, "till.void", actor, till, approver=..., target=..., reason=..., details=...)`
from its actor thread. The event is committed to the outbox (durable before the call returns) and the
forwarder is woken to send it; the hub appends it to the tenant's audit chain at the event's time. An
action the schema refuses comes back as Rejected("invalid", why) and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.protocol import Rejected
from actors.storage.outbox import Committed
from edge_runtime import Registry

EVENT_TYPE, VERSION = "audit.recorded", 1


def audit_body(action: str, actor: str, till: str, *, approver: str | None = None, target: str | None = None,
               reason: str | None = None, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The event's body; a field without a value is left out, as audit.recorded v1 wants."""
    body: dict[str, Any] = {"action": action, "actor": actor, "till": till, "details": dict(details or {})}
    for name, value in (("approver", approver), ("target", target), ("reason", reason)):
        if value is not None:
            body[name] = value
    return body


def record_at_store(registry: Registry, action: str, actor: str, till: str, *, approver: str | None = None,
                    target: str | None = None, reason: str | None = None, details: Mapping[str, Any] | None = None,
                    key: str | None = None) -> Committed | Rejected:
    """Commit one audit record to the outbox and wake the forwarder (from an actor's thread, never trio's).
    `key`: an idempotency key, so that a retried call records once."""
    body = audit_body(action, actor, till, approver=approver, target=target, reason=reason, details=details)
    committed: Committed | Rejected = registry.ask("outbox", "append", EVENT_TYPE, VERSION, body, key=key)
    if isinstance(committed, Committed):
        registry.tell("forwarder", "kick")
    return committed
