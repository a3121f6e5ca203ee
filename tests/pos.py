"""Test helpers that drive a running edge the way the web till does, over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx

COFFEE = "4006381333931"   # 4.99
MILK = "5000112637922"     # 1.29


MANAGER_OVERRIDE = {"login": "manager", "pin": "2580"}
"""A manager's override for one action (body["override"]), as tests send it."""


async def log_in(http: httpx.AsyncClient, base: str, till: str = "till-1", cashier: str = "alice") -> dict[str, Any]:
    """Log `cashier` in at `till` (the client keeps the session's cookie); the till's state."""
    response = await http.post(f"{base}/api/tills/{till}/session", json={"cashier": cashier})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def sell(http: httpx.AsyncClient, base: str, items: list[tuple[str, int]], till: str = "till-1",
               cashier: str = "alice", cash: int | None = None) -> dict[str, Any]:
    """Open (or reuse) a session, scan, pay cash (exact unless `cash`), complete; returns the receipt."""
    await log_in(http, base, till, cashier)
    for barcode, quantity in items:
        response = await http.post(f"{base}/api/tills/{till}/lines", json={"barcode": barcode, "quantity": quantity})
        assert response.status_code == 200, response.text
    state = response.json()
    response = await http.post(f"{base}/api/tills/{till}/tenders",
                               json={"method": "cash", "amount_minor": cash or state["due"]["minor"]})
    assert response.status_code == 200, response.text
    response = await http.post(f"{base}/api/tills/{till}/complete", json={"cart": state["cart"]})
    assert response.status_code == 200, response.text
    return response.json()
