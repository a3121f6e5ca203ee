"""What a shift refuses, over one running edge (real HTTP, SQLite, the mock printer; NATS stopped, as a store
offline): a wrong PIN, a locked user, logins past the offline grace window, a role that may not, a quantity that
is not a number, a discount over 100 %, cash past the change the till gives, returning more than was sold, a
return of an order nobody knows, a count with a negative number of notes. Each answers 4xx with a sentence a
cashier can act on, and changes nothing: both tills' state, the outbox's depth and the drawer's figures are
the same after as before."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from typing import Any

import httpx
import trio

from actors.staff.cache import staff_path
from edge.app import run_edge
from novapos.config import StoreConfig
from novapos.config.login import LoginSettings
from novapos.demo.embedded_nats import EmbeddedNats
from tests.pos import COFFEE, MANAGER_OVERRIDE, STAFF, log_in, sell

UNKNOWN_ORDER = "0190a5b0-0000-7000-8000-000000000000"
LOCKOUT_AFTER = 3


def _age_staff_list(config: StoreConfig, seconds: float) -> None:
    """Move the hub's last confirmation of the staff list `seconds` into the past (or back, when negative)."""
    with sqlite3.connect(staff_path(config.state_dir), timeout=10) as db:
        db.execute("UPDATE meta SET confirmed_at = confirmed_at - ?", (seconds,))


# (what, till, method, path under /api/tills/<till> (LINE: the cart's line), body, status, words the sentence holds)
REFUSALS: list[tuple[str, str, str, str, Any, int, str]] = [
    ("a wrong PIN", "till-1", "POST", "/login", {"login": "alice", "pin": "9999"}, 401, "PIN"),
    ("a locked user", "till-1", "POST", "/login", {"login": "bob", "pin": STAFF["bob"][2]}, 423, "locked"),
    ("the offline grace window has passed", "till-1", "POST", "/login", {"login": "sam", "pin": STAFF["sam"][2]},
     403, "logins need the hub again"),
    ("a role that may not", "till-1", "POST", "/discount", {"kind": "percent", "value": 500, "reason": "friend"},
     403, "ask one to approve with their PIN"),
    ("a quantity that is not a number", "till-1", "POST", "/lines", {"barcode": COFFEE, "quantity": "two"},
     422, "quantity"),
    ("a discount over 100 %", "till-1", "POST", "/discount",
     {"kind": "percent", "value": 10001, "reason": "free", "override": MANAGER_OVERRIDE}, 422, "100"),
    ("cash past the change the till gives", "till-1", "POST", "/tenders",
     {"method": "cash", "amount_minor": 1_000_000}, 422, "more than the 500.00 EUR a till gives back"),
    ("returning more than was sold", "till-2", "POST", "/returns/lines",
     {"original_line": 1, "quantity": 3, "condition": "resaleable"}, 409, "only 2 of 2"),
    ("a return of an order nobody knows", "till-1", "POST", "/returns",
     {"order": UNKNOWN_ORDER, "override": MANAGER_OVERRIDE}, 404, "this sale"),
    ("a blind count with a negative number of notes", "till-1", "POST", "/drawer-session/close",
     {"counted": {"1000": -2}}, 422, "cannot be negative"),
    # and a few more of the shift's own
    ("a no-sale by a cashier", "till-1", "POST", "/drawer-session/no-sale", {}, 403,
     "ask one to approve with their PIN"),
    ("a cashier approving for a cashier", "till-1", "POST", "/drawer-session/no-sale",
     {"override": {"login": "alice", "pin": STAFF["alice"][2]}}, 403, "may not approve this"),
    ("a card payment without its id", "till-1", "POST", "/tenders", {"method": "card", "amount_minor": 100}, 422,
     "a card tender needs its id"),
    ("a line the sale does not have", "till-2", "POST", "/returns/lines", {"original_line": 99, "quantity": 1}, 404,
     "has no line 99"),
    ("completing while money is due", "till-1", "POST", "/complete", {"cart": None}, 409, "still due"),
    ("a line discount larger than the line", "till-1", "POST", "/lines/LINE/discount",
     {"kind": "amount", "value": 500, "reason": "dented", "override": MANAGER_OVERRIDE}, 422, "more than the line's"),
]


async def _snapshot(http: httpx.AsyncClient, edge: Any) -> dict[str, Any]:
    """What a refusal must leave alone: both tills' state, the outbox's depth, the drawer's figures."""
    base = f"{edge.url}/api/tills"
    x = (await http.get(f"{base}/till-1/drawer-session/x-report")).json()
    return {"till-1": (await http.get(f"{base}/till-1")).json(), "till-2": (await http.get(f"{base}/till-2")).json(),
            "outbox": await edge.tree.ask("outbox", "depth"), "drawer": {**x, "at": None}}


async def test_every_refusal_of_the_shift_says_why_and_changes_nothing(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    config = dataclasses.replace(store_config, login=LoginSettings(lockout_after=LOCKOUT_AFTER))
    await trio.to_thread.run_sync(nats_server.stop)
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, config)
        till = f"{edge.url}/api/tills"
        # The shift so far: a float, a sale of two coffees, and a coffee in the cart; till-2 is taking back that sale.
        await log_in(http, edge.url)
        assert (await http.post(f"{till}/till-1/drawer-session", json={"float": {"1000": 10}})).status_code == 200
        order = (await sell(http, edge.url, [(COFFEE, 2)], cash=1000))["sale"]
        assert (await http.post(f"{till}/till-1/lines", json={"barcode": COFFEE})).status_code == 200
        await log_in(http, edge.url, "till-2", "sam")
        assert (await http.post(f"{till}/till-2/returns", json={"order": order})).status_code == 200
        for _ in range(LOCKOUT_AFTER):  # bob's PIN mistyped until he is locked out
            wrong = await http.post(f"{till}/till-2/login", json={"login": "bob", "pin": "0000"})
            assert wrong.status_code in (401, 423)
        await log_in(http, edge.url, "till-2", "sam")  # the failed logins did not log sam out; make sure

        for what, at, method, path, body, status, says in REFUSALS:
            if what.startswith("the offline grace"):
                _age_staff_list(config, 2 * config.login.offline_grace_s)
            before = await _snapshot(http, edge)
            started = time.perf_counter()
            path = path.replace("LINE", before["till-1"]["lines"][0]["line"])  # the coffee in the cart
            response = await http.request(method, f"{till}/{at}{path}", json=body)
            assert response.status_code == status, (what, response.text)
            sentence = response.json()["error"]
            assert says in sentence and len(sentence.split()) >= 4, (what, sentence)
            assert "Traceback" not in sentence and "Error" not in sentence, (what, sentence)
            assert time.perf_counter() - started < 5, what
            if what.startswith("the offline grace"):
                _age_staff_list(config, -2 * config.login.offline_grace_s)
            assert await _snapshot(http, edge) == before, what
        nursery.cancel_scope.cancel()
