"""The reconciliation's comparison (hub.payments.reconcile): empty when the hub and the provider agree, and one
item naming each mismatch (missing, extra, amount, state) when they do not."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import yaml

from hub.payments.gateway import SettlementLine
from hub.payments.nightly import at_time, due_day, next_due
from hub.payments.reconcile import CAPTURE, REFUND, DriftKind, HubMovement, compare, counts, needs_day_before
from hub.payments.reconciliation import DRIFT_ITEMS


def capture(ref: str, amount: int = 1250, state: str = "captured", on_day: bool = True) -> HubMovement:
    return HubMovement(CAPTURE, ref, amount, "EUR", state, f"intent-{ref}", "s1", on_day=on_day)


def refund(ref: str, refund_ref: str, amount: int = 250, state: str = "succeeded") -> HubMovement:
    return HubMovement(REFUND, ref, amount, "EUR", state, f"intent-{ref}", "s1", refund_ref=refund_ref)


def line(ref: str, amount: int = 1250, kind: str = "capture", state: str = "settled", refund_ref: str = "",
         currency: str = "EUR") -> SettlementLine:
    return SettlementLine(ref, kind, amount, currency, state, refund_ref)


HAPPY_HUB = [capture("pi_1"), capture("pi_2", 900, state="refunded"), refund("pi_2", "re_1", 400),
             refund("pi_2", "re_2", 500)]
HAPPY_LINES = [line("pi_2", 900), line("pi_1"), line("pi_2", 500, REFUND, refund_ref="re_2"),
               line("pi_2", 400, REFUND, refund_ref="re_1")]


def test_the_happy_path_has_no_drift_whatever_the_order_of_the_lines() -> None:
    assert compare(HAPPY_HUB, HAPPY_LINES) == []
    assert compare(HAPPY_HUB, list(reversed(HAPPY_LINES))) == []
    assert compare([], []) == []


def test_a_capture_the_provider_has_no_line_for_is_missing() -> None:
    [item] = compare(HAPPY_HUB, HAPPY_LINES[:1] + HAPPY_LINES[2:])
    assert (item.kind, item.movement, item.provider_ref, item.intent_id, item.store) == (
        DriftKind.MISSING, CAPTURE, "pi_1", "intent-pi_1", "s1")
    assert (item.hub_amount_minor, item.provider_amount_minor) == (1250, None)
    assert "pi_1" in item.message and "no line" in item.message


def test_a_refund_the_provider_has_no_line_for_is_missing() -> None:
    [item] = compare(HAPPY_HUB, HAPPY_LINES[:3])
    assert (item.kind, item.movement, item.refund_ref, item.hub_amount_minor) == (DriftKind.MISSING, REFUND,
                                                                                  "re_1", 400)


def test_a_line_the_hub_does_not_have_is_extra_and_so_is_a_line_settled_twice() -> None:
    drift = compare(HAPPY_HUB, [*HAPPY_LINES, line("pi_9", 700), line("pi_1")])
    assert [(item.kind, item.provider_ref, item.provider_amount_minor, item.store) for item in drift] == [
        (DriftKind.EXTRA, "pi_1", 1250, None), (DriftKind.EXTRA, "pi_9", 700, None)]
    assert "twice" in drift[0].message and "no such movement" in drift[1].message
    assert counts(drift) == {"missing": 0, "extra": 2, "amount": 0, "state": 0}


def test_a_different_amount_or_currency_is_an_amount_drift() -> None:
    [item] = compare(HAPPY_HUB, [line("pi_1", 1205), *HAPPY_LINES[:1], *HAPPY_LINES[2:]])
    assert (item.kind, item.hub_amount_minor, item.provider_amount_minor) == (DriftKind.AMOUNT, 1250, 1205)
    assert "12.50 EUR" in item.message and "12.05 EUR" in item.message
    [item] = compare(HAPPY_HUB, [line("pi_1", currency="USD"), *HAPPY_LINES[:1], *HAPPY_LINES[2:]])
    assert (item.kind, item.currency) == (DriftKind.AMOUNT, "USD")
    [item] = compare(HAPPY_HUB, [*HAPPY_LINES[:3], line("pi_2", 401, REFUND, refund_ref="re_1")])
    assert (item.kind, item.movement, item.refund_ref) == (DriftKind.AMOUNT, REFUND, "re_1")


def test_failed_at_the_provider_where_the_hub_counts_it_done_is_a_state_drift() -> None:
    [item] = compare(HAPPY_HUB, [line("pi_1", state="failed"), *HAPPY_LINES[:1], *HAPPY_LINES[2:]])
    assert (item.kind, item.hub_state, item.provider_state) == (DriftKind.STATE, "captured", "failed")
    assert "failed" in item.message


def test_settled_at_the_provider_where_the_hub_has_not_moved_money_is_a_state_drift() -> None:
    voided = capture("pi_3", 0, state="cancelled", on_day=False)
    [item] = compare([*HAPPY_HUB, voided], [*HAPPY_LINES, line("pi_3", 800)])
    assert (item.kind, item.hub_state, item.provider_state, item.provider_amount_minor) == (
        DriftKind.STATE, "cancelled", "settled", 800)
    waiting = refund("pi_2", "re_3", 100, state="processing")
    [item] = compare([*HAPPY_HUB, waiting], [*HAPPY_LINES, line("pi_2", 100, REFUND, refund_ref="re_3")])
    assert (item.kind, item.movement, item.hub_state) == (DriftKind.STATE, REFUND, "processing")


def test_what_agrees_beside_the_day_is_no_drift() -> None:
    """A payment captured the day before that the provider settles today, a refund the hub has not finished
    that the provider has no line for, a capture both say failed: nothing to report."""
    yesterday = capture("pi_4", on_day=False)
    failed_both = capture("pi_5", 0, state="failed", on_day=False)
    pending = refund("pi_1", "re_9", 100, state="processing")
    assert compare([*HAPPY_HUB, yesterday, failed_both, pending],
                   [*HAPPY_LINES, line("pi_4"), line("pi_5", state="failed")]) == []


def test_a_movement_the_provider_settled_the_day_before_is_not_missing() -> None:
    """Captured at the provider at 23:59:59.9, recorded by the hub after midnight: in the provider's report of
    the day before (where it was matched), not missing today; one in neither report still is."""
    drift = compare(HAPPY_HUB, HAPPY_LINES[:1] + HAPPY_LINES[2:])
    assert needs_day_before(drift)
    assert compare(HAPPY_HUB, HAPPY_LINES[:1] + HAPPY_LINES[2:], [line("pi_1")]) == []
    [item] = compare(HAPPY_HUB, HAPPY_LINES[:1] + HAPPY_LINES[2:], [line("pi_8")])
    assert (item.kind, item.provider_ref) == (DriftKind.MISSING, "pi_1")
    assert not needs_day_before(compare(HAPPY_HUB, [*HAPPY_LINES, line("pi_9")]))


def test_one_mismatch_of_each_kind_names_each_once() -> None:
    hub = [*HAPPY_HUB, capture("pi_6", 300)]
    lines = [line("pi_1", 1200), line("pi_2", 900, state="failed"), HAPPY_LINES[2], HAPPY_LINES[3],
             line("pi_7", 50)]
    drift = compare(hub, lines)
    assert sorted((item.kind.value, item.provider_ref) for item in drift) == [
        ("amount", "pi_1"), ("extra", "pi_7"), ("missing", "pi_6"), ("state", "pi_2")]
    assert all(item.to_json()["kind"] == item.kind.value for item in drift)


def test_the_drift_alert_rule_reads_the_gauge_each_run_sets() -> None:
    rules = yaml.safe_load((Path(__file__).resolve().parent.parent / "configs/prometheus/payments.rules.yml")
                           .read_text())
    [rule] = [rule for group in rules["groups"] for rule in group["rules"]]
    assert rule["alert"] == "PaymentsReconciliationDrift" and DRIFT_ITEMS._name in rule["expr"]
    assert "docs/payments.md" in rule["annotations"]["description"]


def test_the_nightly_run_is_due_for_the_day_before_once_reconcile_at_has_passed() -> None:
    at = at_time("02:30")
    assert due_day(datetime(2026, 3, 10, 2, 30, tzinfo=UTC), at) == date(2026, 3, 9)
    assert due_day(datetime(2026, 3, 10, 2, 29, 59, tzinfo=UTC), at) == date(2026, 3, 8)  # not yet: still the 8th
    assert due_day(datetime(2026, 3, 10, 23, 59, tzinfo=UTC), at) == date(2026, 3, 9)
    assert next_due(date(2026, 3, 9), at) == datetime(2026, 3, 11, 2, 30, tzinfo=UTC)
    assert due_day(datetime(2026, 1, 1, 0, 0, tzinfo=UTC), at_time("00:00")) == date(2025, 12, 31)
