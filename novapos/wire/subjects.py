"""NATS subjects and stream names, scoped by tenant and store.

Scoping every subject as novapos.<tenant>.<store>.… lets NATS permissions confine a store's
credentials to its own subjects; the hub still checks that an event's store matches its subject.
"""

from __future__ import annotations

from novapos.validators import Invalid, describe, token

EVENTS_STREAM = "NOVAPOS_EVENTS"
EVENTS_FILTER = "novapos.*.*.evt.>"


def event_subject(tenant: str, store: str, event_type: str) -> str:
    """Tenant, store and type names become subject tokens (validators.token): no dots, wildcards or spaces."""
    return (f"novapos.{token('tenant', tenant)}.{token('store', store)}"
            f".evt.{token('event type', event_type.replace('.', '_'))}")


def parse_event_subject(subject: str) -> tuple[str, str, str]:
    """(tenant, store, event type token) of an event subject, or ValueError."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != "novapos" or parts[3] != "evt":
        raise ValueError(f"not an event subject: {describe(subject)}")
    return token("subject's tenant", parts[1]), token("subject's store", parts[2]), token("subject's type", parts[4])


def request_subject(tenant: str, store: str, kind: str) -> str:
    """A store's request to the hub (stock, staff, health): novapos.<tenant>.<store>.req.<kind>."""
    return f"novapos.{token('tenant', tenant)}.{token('store', store)}.req.{kind}"


def parse_request_subject(subject: str, kind: str) -> tuple[str, str]:
    """(tenant, store) of a request subject of this kind, or Invalid: the hub takes the asker from it."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != "novapos" or parts[3:] != ["req", kind]:
        raise Invalid("subject", f"is not a {kind} request subject: {describe(subject)}")
    return token("subject's tenant", parts[1]), token("subject's store", parts[2])
