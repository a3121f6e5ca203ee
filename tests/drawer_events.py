"""Drawer event bodies the wire schemas accept, for contract and hub tests."""

from __future__ import annotations

from typing import Any

SESSION = "0190a6b2-7c5e-7d2a-9f3b-2c4d5e6f7a8b"


def eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def opened(session: str = SESSION, till: str = "till-1") -> dict[str, Any]:
    return {"session": session, "till": till, "currency": "EUR", "cashier": "alice",
            "float": {"counts": {"2000": 5, "50": 2}, "total": eur(10100)}}


def moved(kind: str = "pay_out", amount: int = 1250, session: str = SESSION) -> dict[str, Any]:
    body: dict[str, Any] = {"session": session, "till": "till-1", "currency": "EUR", "kind": kind,
                            "amount": eur(amount), "actor": "alice"}
    if kind != "no_sale":
        body["reason"] = "window cleaner"
    return body


def closed(session: str = SESSION, difference: int = -50, number: int = 1) -> dict[str, Any]:
    return {"session": session, "till": "till-1", "currency": "EUR", "cashier": "alice",
            "counted": {"counts": {"2000": 5, "1": 9000}, "total": eur(19000)},
            "expected": eur(19000 - difference), "difference": difference, "approver": "manager",
            "z": {"number": number, "opened_at": 1_767_000_000_000, "opened_by": "alice", "float": eur(10100),
                  "sales": {"count": 2, "total": eur(9000)}, "returns": {"count": 0, "total": eur(0)},
                  "tenders": [{"method": "card", "scheme": "visa", "count": 1, "amount": eur(4000)},
                              {"method": "cash", "count": 1, "amount": eur(5000)}],
                  "refunds": [{"method": "cash", "count": 1, "amount": eur(100)}],
                  "change": eur(0), "discounts": eur(0), "voids": 0, "no_sales": 1,
                  "pay_ins": {"count": 0, "total": eur(0)}, "pay_outs": {"count": 0, "total": eur(0)},
                  "drops": {"count": 0, "total": eur(0)},
                  "tax": [{"rate_ppm": 200_000, "amount": eur(1500)}]}}
