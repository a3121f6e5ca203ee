"""The wire contract: envelopes round-trip, schemas refuse what would corrupt the books, ids are ordered."""

from __future__ import annotations

import msgpack
import pytest

from novapos.money import Money
from novapos.wire.envelope import EnvelopeError, decode
from novapos.wire.ids import uuid7
from novapos.wire.schemas import SchemaError
from novapos.wire.subjects import event_subject, parse_event_subject
from tests.events import sale_event


def test_envelope_round_trips() -> None:
    event = sale_event(seq=7)
    assert decode(event.encode()) == event


def test_event_ids_are_time_ordered_uuid7() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len(set(ids)) == 5000
    assert all(u.version == 7 for u in ids)


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda b: b.update(total={"minor": 4.99, "currency": "EUR"}), "must be an integer"),
    (lambda b: b.update(lines=[]), "at least one line"),
    (lambda b: b["lines"][0].update(quantity=0), "must be >= 1"),
    (lambda b: b["lines"][0].update(amount={"minor": 1, "currency": "EUR"}), "is not quantity x unit price"),
    (lambda b: b.update(change={"minor": 5, "currency": "EUR"}), "must equal change"),
    (lambda b: b["tenders"][0].update(amount={"minor": 499, "currency": "USD"}), "the sale is in EUR"),
])
def test_schema_refuses_inconsistent_sales(mutate, says: str) -> None:  # type: ignore[no-untyped-def]
    event = sale_event()
    mutate(event.body)
    with pytest.raises(SchemaError, match=says):
        decode(event.encode())


def test_envelope_refuses_garbage() -> None:
    with pytest.raises(EnvelopeError, match="not msgpack"):
        decode(b"\xc1")
    with pytest.raises(EnvelopeError, match="must be a map"):
        decode(msgpack.packb([1, 2]))


def test_subjects_are_scoped_and_refuse_wildcards() -> None:
    subject = event_subject("demo", "store-001", "sale.completed")
    assert subject == "novapos.demo.store-001.evt.sale_completed"
    assert parse_event_subject(subject) == ("demo", "store-001", "sale_completed")
    with pytest.raises(ValueError):
        event_subject("demo", "store.*", "sale.completed")


def test_money_is_integer_minor_units() -> None:
    assert (Money(499, "EUR").times(3) + Money(1, "EUR")).format() == "14.98 EUR"
    with pytest.raises(TypeError):
        Money(4.99, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "EUR") + Money(1, "USD")
