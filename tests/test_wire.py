"""The wire contract: envelopes round-trip, schemas refuse what would corrupt the books, ids are ordered."""

from __future__ import annotations

import msgpack
import pytest

from novapos.money import Money
from novapos.validators import MAX_LINE_QUANTITY, MAX_TEXT_LENGTH, Invalid
from novapos.wire.envelope import Envelope, EnvelopeError, decode
from novapos.wire.ids import uuid7
from novapos.wire.schemas import SchemaError, sale_completed_v1
from novapos.wire.subjects import event_subject, parse_event_subject
from tests.events import sale_event, with_quantity


def test_envelope_round_trips() -> None:
    event = sale_event(seq=7)
    assert decode(event.encode()) == event


def test_event_ids_are_time_ordered_uuid7() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len(set(ids)) == 5000
    assert all(u.version == 7 for u in ids)


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda b: b.update(total={"minor": 4.99, "currency": "EUR"}), "total.minor must be a whole number"),
    (lambda b: b.update(lines=[]), "at least one line"),
    (lambda b: b["lines"][0].update(quantity=0), r"lines\[0\].quantity must be from 1 to 9999"),
    (lambda b: b["lines"][0].update(amount={"minor": 1, "currency": "EUR"}), "is not quantity x unit price"),
    (lambda b: b.update(change={"minor": 5, "currency": "EUR"}), "change must equal tendered 499 minus total 499"),
    (lambda b: b["tenders"][0].update(amount={"minor": 499, "currency": "USD"}), "the sale is in EUR"),
])
def test_schema_refuses_inconsistent_sales(mutate, says: str) -> None:  # type: ignore[no-untyped-def]
    event = sale_event()
    mutate(event.body)
    with pytest.raises(SchemaError, match=says):
        decode(event.encode())


def test_a_free_sale_needs_no_tender_and_only_a_free_one() -> None:
    """A free bag or a gift (total 0) completes with no tender; any sale with something to pay needs one."""
    free = sale_event(total=0)
    free.body["tenders"] = []
    assert decode(free.encode()).body["tenders"] == []
    unpaid = sale_event(total=499)
    unpaid.body["tenders"] = []
    with pytest.raises(SchemaError, match="tenders must hold at least one tender"):
        decode(unpaid.encode())


def _fields(event: Envelope, **changes: object) -> dict[str, object]:
    fields = {**event.__dict__, **changes}
    fields["id"] = event.id.bytes
    return fields


@pytest.mark.parametrize(("changes", "says"), [
    ({"ts": 10**17}, "'ts' must be milliseconds within the years 1 to 9999"),
    ({"ts": -(10**17)}, "'ts' must be milliseconds within the years 1 to 9999"),
    ({"seq": 2**63}, "'seq' must be between 1 and 9223372036854775807"),
    ({"seq": 0}, "'seq' must be between 1"),
    ({"store": "s" * 65}, "'store' must be at most 64 characters"),
    ({"tenant": "de\x00mo"}, "'tenant' may use only letters, digits"),
    ({"store": "ev\x1b[31mil\u202e"}, "'store' may use only letters, digits"),  # would reach metric labels
    ({"store": "paris 1"}, "'store' may use only letters, digits"),
    ({"type": ""}, "'type' must be a non-empty name"),
])
def test_envelope_refuses_what_the_hub_could_not_store(changes: dict[str, object], says: str) -> None:
    with pytest.raises(EnvelopeError, match=says):
        decode(msgpack.packb(_fields(sale_event(), **changes)))


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda b: b["lines"][0].update(name="x" * 201), r"lines\[0\].name must be at most 200 characters"),
    (lambda b: b.update(cashier="c" * 201), "cashier must be at most 200 characters"),
    (lambda b: b["lines"][0].update(name="Coffee\x00"), "name must not contain NUL"),
    (lambda b: b.update(till="till\x001"), "till may use only letters, digits"),
    (lambda b: b.update(currency="EURO"), "three-letter ISO currency code"),
    (lambda b: b["tenders"][0]["amount"].update(currency="eur"), "three-letter ISO currency code"),
    (lambda b: with_quantity(b, MAX_LINE_QUANTITY + 1), "quantity must be from 1 to 9999"),
    (lambda b: with_quantity(b, 2**31), "quantity must be from 1 to 9999"),
    (lambda b: b["tenders"][0].update(amount={"minor": 10**12 + 1, "currency": "EUR"}),
     "minor must be from 1 to 1000000000000"),
    # what the HTTP door refuses, the wire refuses too: names that would poison a log, a printer or a column
    (lambda b: b.update(cashier="bad\x00name"), "cashier must not contain NUL"),
    (lambda b: b.update(cashier="alice\nINFO forged"), "cashier must not contain a control character"),
    (lambda b: b["lines"][0].update(name="\x1b[2JCoffee"), "name must not contain a control character"),
    (lambda b: b.update(cashier=["alice"]), "cashier must be text, got a list"),
    (lambda b: b["lines"][0].update(sku="COF 250"), "sku may use only letters, digits"),
    (lambda b: b["lines"][0].update(quantity=True), "quantity must be a whole number, got true/false"),
])
def test_schema_refuses_what_the_hub_could_not_store(mutate, says: str) -> None:  # type: ignore[no-untyped-def]
    event = sale_event()
    mutate(event.body)
    with pytest.raises(SchemaError, match=says):
        decode(event.encode())


def test_the_bounds_admit_what_a_till_can_sell() -> None:
    event = sale_event(seq=2**63 - 1, total=10**8)
    with_quantity(event.body, MAX_LINE_QUANTITY)
    event.body["lines"][0]["name"] = "N" * MAX_TEXT_LENGTH
    event.body["cashier"] = "C" * MAX_TEXT_LENGTH
    assert decode(event.encode()) == event


def test_a_schema_refusal_is_a_validators_refusal() -> None:
    """One family of refusals: the outbox and the hub handle a schema's like any other value refused at a door."""
    event = sale_event()
    event.body["cashier"] = "bad\x00name"
    with pytest.raises(Invalid) as refused:
        decode(event.encode())
    assert isinstance(refused.value, SchemaError) and refused.value.where == "cashier"


def test_schema_refuses_a_lone_surrogate_that_msgpack_could_not_even_encode() -> None:
    body = sale_event().body
    body["cashier"] = "sur\ud800rogate"
    with pytest.raises(SchemaError, match="cashier must not contain a lone surrogate"):
        sale_completed_v1(body)


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
    with pytest.raises(ValueError, match="store"):
        parse_event_subject("novapos.demo.ev\x1bil.evt.sale_completed")


def test_money_is_integer_minor_units() -> None:
    assert (Money(499, "EUR").times(3) + Money(1, "EUR")).format() == "14.98 EUR"
    with pytest.raises(TypeError):
        Money(4.99, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "EUR") + Money(1, "USD")


def _v2() -> Envelope:
    event = sale_event()
    event.body["lines"][0] |= {"catalog_version": 7, "tax": {"class": "standard", "rate_ppm": 200_000, "included": True,
                                                            "amount": {"minor": 83, "currency": "EUR"}}}
    event.body["tax_total"] = {"minor": 83, "currency": "EUR"}
    return Envelope(event.id, event.type, 2, event.tenant, event.store, event.seq, event.ts, event.body)


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda b: b["lines"][0]["tax"]["amount"].update(minor=84), r"lines\[0\].tax.amount 84 is not the line's tax "
                                                                r"at 200000 ppm \(83\)"),
    (lambda b: b["tax_total"].update(minor=0), r"tax_total does not equal the sum of the lines' tax \(83\)"),
    (lambda b: b["lines"][0]["tax"].update(note="x"), r"lines\[0\].tax must be \{class, rate_ppm, included, amount\}"),
    (lambda b: b["lines"][0]["tax"].update(included=1), r"lines\[0\].tax.included must be true or false"),
    (lambda b: b["lines"][0]["tax"].update(rate_ppm=1_000_001), r"lines\[0\].tax.rate_ppm must be from 0 to 1000000"),
    (lambda b: b["lines"][0].update(catalog_version=-1), r"lines\[0\].catalog_version must be from 0"),
    (lambda b: (b["lines"][0]["tax"].update(included=False, amount={"minor": 100, "currency": "EUR"}),
                b["tax_total"].update(minor=100)), r"total does not equal the sum of the lines \(599\)"),
    (lambda b: b.pop("tax_total"), "tax_total must be {minor, currency}"),
])
def test_a_v2_sale_refuses_a_price_lock_that_does_not_add_up(mutate, says: str) -> None:  # type: ignore[no-untyped-def]
    event = _v2()
    assert decode(event.encode()) == event
    mutate(event.body)
    with pytest.raises(SchemaError, match=says):
        decode(event.encode())
