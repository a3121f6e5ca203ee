"""Returns at the store: what the sales journal costs a sale, what a return's commit and a local lookup cost.

In process, on real SQLite files (WAL, synchronous=FULL: one fsync per commit): the same sale.completed v2 is
committed through an outbox without journals (the floor) and with the store's sales journal, then returns are
committed against the journal (each a line refunded pro rata, checked and decremented in the commit's
transaction), over-returns refused, and sales found by their order id in a journal of `--history` sales.

    .venv/bin/python -m bench.returns [--sales 300] [--history 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from actors.protocol import Rejected
from actors.returns.journal import find_sale, journal
from actors.storage.db import connect
from actors.storage.outbox import Committed, Outbox
from bench.figures import progress, ratio, summary
from novapos.pricing import line_tax, pro_rata

EUR = "EUR"


def _money(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": EUR}


def _sale() -> dict[str, Any]:
    lines = [{"sku": f"SKU-{n}", "name": f"Item {n}", "quantity": 3, "unit_price": _money(333), "amount": _money(999),
              "catalog_version": 1, "tax": {"class": "std", "rate_ppm": 200_000, "included": True,
                                            "amount": _money(166)}} for n in range(3)]
    return {"till": "till-1", "session": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "cashier": "alice",
            "currency": EUR, "lines": lines, "total": _money(2997), "tax_total": _money(498),
            "tenders": [{"method": "cash", "amount": _money(3000)}], "change": _money(3)}


def _return(order: str, already: int) -> dict[str, Any]:
    amount = pro_rata(999, 3, already, 1)
    tax = line_tax(amount, 200_000, True)
    return {"till": "till-1", "session": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "cashier": "alice",
            "currency": EUR, "original": {"order": order, "store": "store-001"}, "returned": [
                {"original_line": 1, "sku": "SKU-0", "name": "Item 0", "quantity": 1, "unit_price": _money(333),
                 "amount": _money(amount), "tax": {"class": "std", "rate_ppm": 200_000, "included": True,
                                                   "amount": _money(tax)}, "condition": "resaleable",
                 "restock": True}],
            "restocking_fee": _money(0), "lines": [], "tenders": [],
            "refunds": [{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "method": "cash", "amount": _money(amount)}],
            "change": _money(0), "total": _money(-amount)}


def _timed(outbox: Outbox, event_type: str, body: dict[str, Any]) -> tuple[float, Committed | Rejected]:
    started = time.perf_counter()
    answer = outbox.append(event_type, 2 if event_type == "sale.completed" else 1, body)
    return time.perf_counter() - started, answer


def main(sales: int, history: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        plain = Outbox(Path(folder) / "plain.sqlite3", "demo", "store-001")
        kept = Outbox(Path(folder) / "journal.sqlite3", "demo", "store-001", (journal,))
        floor, with_journal, orders = [], [], []
        for _ in range(sales):  # interleaved: both see the same disk at the same moments
            floor.append(_timed(plain, "sale.completed", _sale())[0])
            spent, committed = _timed(kept, "sale.completed", _sale())
            assert isinstance(committed, Committed), committed
            with_journal.append(spent)
            orders.append(str(committed.id))
        progress(f"{sales} sales committed with and without the journal")
        returns, refused = [], []
        for order in orders:
            spent, answer = _timed(kept, "return.completed", _return(order, 0))
            assert isinstance(answer, Committed), answer
            returns.append(spent)
        for order in orders[: max(1, sales // 3)]:
            body = _return(order, 0)  # the same unit's share again, as if the first return had not happened
            body["returned"][0]["quantity"] = 3
            body["returned"][0]["amount"] = _money(999)
            body["returned"][0]["tax"]["amount"] = _money(166)
            body["refunds"][0]["amount"] = _money(999)
            body["total"] = _money(-999)
            spent, answer = _timed(kept, "return.completed", body)
            assert isinstance(answer, Rejected) and answer.reason == "conflict", answer
            refused.append(spent)
        progress(f"{len(returns)} returns committed, {len(refused)} over-returns refused")
        db = connect(Path(folder) / "journal.sqlite3")  # a reader's own connection, as the lookup actor has
        db.execute("BEGIN")
        for n in range(history):  # a long journal: the lookups below find one sale among many
            order = f"0190a1b2-c3d4-7e5f-8a9b-{n:012x}"
            db.execute("INSERT INTO store_sales VALUES (?, 0, 'till-1', 'EUR')", (order,))
            db.executemany("INSERT INTO store_sale_lines VALUES (?, ?, 'SKU', 'Item', 3, 333, 999, 'std', 200000, 1, 3)",
                           [(order, line) for line in (1, 2, 3)])
        db.execute("COMMIT")
        lookups = []
        for order in orders:
            started = time.perf_counter()
            assert find_sale(db, order, "store-001") is not None
            lookups.append(time.perf_counter() - started)
        db.close()
        plain.close()
        kept.close()
    sale_floor, sale_kept = summary(floor), summary(with_journal)
    return {"sales": sales, "journal_history_sales": history + sales,
            "sale_commit_floor_median_ms": sale_floor["median"], "sale_commit_floor_p99_ms": sale_floor["p99"],
            "sale_commit_with_journal_median_ms": sale_kept["median"],
            "sale_commit_with_journal_p99_ms": sale_kept["p99"],
            "sale_commit_journal_ratio": ratio(sale_kept["median"], sale_floor["median"]),
            "return_commit_median_ms": summary(returns)["median"], "return_commit_p99_ms": summary(returns)["p99"],
            "over_return_refused_median_ms": summary(refused)["median"],
            "local_lookup_median_us": summary(lookups, 1e6)["median"],
            "local_lookup_p99_us": summary(lookups, 1e6)["p99"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=300)
    parser.add_argument("--history", type=int, default=20_000)
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.sales, arguments.history)))
