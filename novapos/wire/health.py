"""Fleet health on the wire: a store's report to the hub and the hub's reply (request/reply over NATS).

A store asks on `novapos.<tenant>.<store>.req.health` every few seconds and at once on a change: its software
version, its outbox (depth, age of the oldest unsent event), each device's state, its clock, its open tills
and its last sale. The hub takes the store from the subject (NATS confines a store's credentials to its own
subjects), never from the body, and replies with its own clock, so both sides know the store's clock skew.

Every field is bounded here and checked on decode at the hub: a report out of bounds is refused whole
(validators.Invalid, answered 400) and nothing of it is stored. Integers only, no floats: times and ages are
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgpack

from novapos import validators
from novapos.validators import MAX_BIGINT, Invalid
from novapos.wire.subjects import parse_request_subject, request_subject

HEALTH_REQUESTS = "novapos.*.*.req.health"
"""What the hub subscribes to (one queue group): every store's report."""
MAX_DEVICES = 64
MAX_TILLS = 64
MAX_STATE_LENGTH = 32
MAX_DEPTH = 10**9
"""Most events an outbox can be said to hold: far above any store's backlog."""
MAX_MS = 2**53
"""Times (ms since the epoch) and ages (ms) fit a double as well as a bigint."""
MAX_REPORT_BYTES = 32 * 1024
"""A report larger than this is refused before it is unpacked (64 devices with long details fit well under)."""
REASONS = ("start", "interval", "change")
WORKING_STATES = frozenset({"ready", "open", "closed", "paper_near_end", "starting"})
"""Device states that need nobody: anything else (offline, down, error, paper_out, a printer's fault) is a
device down, counted and alerted at the hub. A device starting is not down: it is seconds from ready or down."""


def health_subject(tenant: str, store: str) -> str:
    return request_subject(tenant, store, "health")


def parse_health_subject(subject: str) -> tuple[str, str]:
    """(tenant, store) of a health request subject, or Invalid."""
    return parse_request_subject(subject, "health")


@dataclass(frozen=True)
class Device:
    name: str
    kind: str
    state: str
    detail: str = ""

    @property
    def down(self) -> bool:
        return self.state not in WORKING_STATES


@dataclass(frozen=True)
class LastSale:
    seq: int
    at_ms: int


@dataclass(frozen=True)
class HealthReport:
    version: str
    sent_at_ms: int
    """The store's clock when it sent the report: the hub's receive time minus this is the clock skew."""
    interval_s: int
    """How often the store reports when nothing changes."""
    reason: str
    outbox_depth: int
    oldest_unsent_ms: int | None
    """Age of the oldest event still in the outbox (None: the outbox is empty)."""
    devices: tuple[Device, ...]
    open_tills: tuple[str, ...]
    last_sale: LastSale | None
    leaf: bool = False
    """The store runs a leaf node (novapos.leaf): the hub answers how far it has sourced the leaf's stream."""


@dataclass(frozen=True)
class HealthReply:
    hub_time_ms: int
    skew_ms: int
    """The hub's receive time minus the store's clock: positive when the store's clock is behind."""
    error: str | None = None
    """Why the hub did not keep the report (the store is unknown to it): a sentence for the store's log."""
    leaf_sourced_seq: int | None = None
    """To a report with `leaf`: the sequence, in the store's leaf stream, of the store's last event the hub's events
    stream holds (0: none of its events there); None to any other report."""


def _pack(value: dict[str, Any]) -> bytes:
    return cast(bytes, msgpack.packb(value))


def _map(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_REPORT_BYTES:
        raise Invalid(what, f"is {len(data)} bytes: at most {MAX_REPORT_BYTES}")
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise Invalid(what, f"is not msgpack ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise Invalid(what, "must be a map")
    return raw


def _optional_ms(where: str, value: Any) -> int | None:
    return None if value is None else validators.integer(where, value, 0, MAX_MS)


def _list(where: str, value: Any, most: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > most:
        raise Invalid(where, f"must be a list of at most {most}")
    return value


def encode_report(report: HealthReport) -> bytes:
    return _pack({
        "version": report.version, "sent_at_ms": report.sent_at_ms, "interval_s": report.interval_s,
        "reason": report.reason, "outbox_depth": report.outbox_depth, "oldest_unsent_ms": report.oldest_unsent_ms,
        "devices": [{"name": d.name, "kind": d.kind, "state": d.state, "detail": d.detail} for d in report.devices],
        "open_tills": list(report.open_tills),
        "last_sale": None if report.last_sale is None else {"seq": report.last_sale.seq,
                                                             "at_ms": report.last_sale.at_ms},
        **({"leaf": True} if report.leaf else {})})


def _device(where: str, item: Any) -> Device:
    if not isinstance(item, dict):
        raise Invalid(where, "must be a map")
    detail = item.get("detail", "")
    return Device(name=validators.token(f"{where}.name", item.get("name")),
                  kind=validators.token(f"{where}.kind", item.get("kind")),
                  state=validators.token(f"{where}.state", item.get("state"), max_length=MAX_STATE_LENGTH),
                  detail="" if detail == "" else validators.text(f"{where}.detail", detail))


def safe_detail(text: str) -> str:
    """A device's detail (often an exception's text) made fit for a report: unsafe characters blanked, cut
    to the bound. The store's side of the bound the hub checks."""
    return validators.UNSAFE_CHARACTERS.sub(" ", text).strip()[:validators.MAX_TEXT_LENGTH]


def decode_report(data: bytes) -> HealthReport:
    """A store's report, every field within its bounds, or Invalid naming the first that is not."""
    raw = _map(data, "health report")
    reason = raw.get("reason")
    if reason not in REASONS:
        raise Invalid("reason", f"must be one of {', '.join(REASONS)}")
    devices = tuple(_device(f"devices[{index}]", item)
                    for index, item in enumerate(_list("devices", raw.get("devices"), MAX_DEVICES)))
    if len({device.name for device in devices}) != len(devices):
        raise Invalid("devices", "name a device twice")
    tills = tuple(validators.token(f"open_tills[{index}]", till)
                  for index, till in enumerate(_list("open_tills", raw.get("open_tills"), MAX_TILLS)))
    last = raw.get("last_sale")
    if last is not None and not isinstance(last, dict):
        raise Invalid("last_sale", "must be a map or null")
    return HealthReport(
        version=validators.text("version", raw.get("version"), max_length=validators.MAX_TOKEN_LENGTH),
        sent_at_ms=validators.integer("sent_at_ms", raw.get("sent_at_ms"), 0, MAX_MS),
        interval_s=validators.integer("interval_s", raw.get("interval_s"), 1, 3600),
        reason=reason, outbox_depth=validators.integer("outbox_depth", raw.get("outbox_depth"), 0, MAX_DEPTH),
        oldest_unsent_ms=_optional_ms("oldest_unsent_ms", raw.get("oldest_unsent_ms")),
        devices=devices, open_tills=tuple(sorted(set(tills))),
        last_sale=None if last is None else LastSale(
            seq=validators.integer("last_sale.seq", last.get("seq"), 1, MAX_BIGINT),
            at_ms=validators.integer("last_sale.at_ms", last.get("at_ms"), 0, MAX_MS)),
        leaf=validators.boolean("leaf", raw.get("leaf", False)))


def encode_reply(reply: HealthReply) -> bytes:
    return _pack({"hub_time_ms": reply.hub_time_ms, "skew_ms": reply.skew_ms, "error": reply.error,
                  **({} if reply.leaf_sourced_seq is None else {"leaf_sourced_seq": reply.leaf_sourced_seq})})


def decode_reply(data: bytes) -> HealthReply:
    raw = _map(data, "health reply")
    error = raw.get("error")
    return HealthReply(hub_time_ms=validators.integer("hub_time_ms", raw.get("hub_time_ms"), 0, MAX_MS),
                       skew_ms=validators.integer("skew_ms", raw.get("skew_ms"), -MAX_MS, MAX_MS),
                       error=None if error is None else validators.text("error", error, max_length=400),
                       leaf_sourced_seq=None if (sourced := raw.get("leaf_sourced_seq")) is None
                       else validators.integer("leaf_sourced_seq", sourced, 0, MAX_BIGINT))
