"""Test helpers that drive a running edge the way the web till does, over real HTTP, and the staff list every
test edge starts with (`seed_staff`: alice, bob, sam, manager, as if the hub had sent it)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx

from actors.staff.cache import StaffCache, staff_path
from novapos.passwords import make_verifier
from novapos.wire.staff import StaffList, StaffMember

COFFEE = "4006381333931"   # 4.99
MILK = "5000112637922"     # 1.29


MANAGER_OVERRIDE = {"login": "manager", "pin": "2580"}
"""A manager's override for one action (body["override"]), as tests send it."""
STAFF = {"alice": ("Alice Archer", "cashier", "1111"), "bob": ("Bob Baker", "cashier", "2222"),
         "sam": ("Sam Super", "supervisor", "3333"), "manager": ("Max Manager", "store_manager", "2580")}
"""Every test edge's people: login -> (name, role at the store, PIN)."""


@functools.cache
def _verifiers() -> dict[str, str]:
    """Made once per test session: each is ~0.15 s of scrypt."""
    return {login: make_verifier(pin) for login, (_name, _role, pin) in STAFF.items()}


def staff_list(version: int = 0, tenant: str = "demo", store: str = "store-001") -> StaffList:
    verifiers = _verifiers()
    return StaffList(tenant, store, version, tuple(StaffMember(login, name, (role,), verifiers[login])
                                                   for login, (name, role, _pin) in STAFF.items()))


SEED_VERSION = 10**15
"""Above any test hub's staff counter: a hub whose test adds its own users never takes alice away."""


def seed_staff(state_dir: Path, version: int = SEED_VERSION, tenant: str = "demo", store: str = "store-001") -> None:
    """Write the test staff list into the state folder of an edge not yet started, confirmed now."""
    cache = StaffCache(staff_path(state_dir))
    try:
        cache.replace(staff_list(version, tenant, store))
    finally:
        cache.close()


def unseed_staff(state_dir: Path) -> None:
    """Remove the seeded staff list, for a test of the hub's own lists reaching the edge."""
    for path in state_dir.glob(f"{staff_path(state_dir).name}*"):
        path.unlink()


async def log_in(http: httpx.AsyncClient, base: str, till: str = "till-1", cashier: str = "alice") -> dict[str, Any]:
    """Log `cashier` in at `till` with their PIN (the client keeps the till's cookie); the till's state."""
    return await log_in_at(http, f"{base}/api/tills/{till}", cashier)


async def log_in_at(http: httpx.AsyncClient, till_url: str, cashier: str = "alice") -> dict[str, Any]:
    """log_in, for a test that holds the till's URL (.../api/tills/<till>)."""
    response = await http.post(f"{till_url}/login", json={"login": cashier, "pin": STAFF[cashier][2]})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def sell(http: httpx.AsyncClient, base: str, items: list[tuple[str, int]], till: str = "till-1",
               cashier: str = "alice", cash: int | None = None) -> dict[str, Any]:
    """Log in (unless `cashier` is already, with this client), scan, pay cash (exact unless `cash`), complete;
    returns the receipt."""
    whoami = await http.get(f"{base}/api/tills/{till}/whoami")
    if whoami.status_code != 200 or whoami.json()["login"] != cashier:
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
