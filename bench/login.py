"""Till login benchmark: what a PIN login costs, and what the login door adds to every till request.

    python -m bench.login [--logins 20] [--requests 500]

A real edge (actor tree, staff.sqlite3 with the seeded staff list) driven over HTTP. Figures in milliseconds:

- login_ms: POST /api/tills/till-1/login with the right PIN (scrypt in a worker thread, the token's row
  written, the till's session saved), the whole round trip.
- pin_check_floor_ms: one novapos.passwords.check of the same verifier in this process: the floor a login
  cannot go below (the hub's verifier cost, by design).
- state_ms: GET /api/tills/till-1 with the cookie (the door's token lookup, then the till's state).
- state_floor_ms: GET /api/store, the same server's round trip without the door or an actor.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import httpx
import trio

from bench.figures import progress, ratio, summary
from bench.store import demo_store
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from novapos.config import DeviceRule, DevicesConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.passwords import check
from tests.pos import STAFF, staff_list


async def main(logins: int, requests: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-login-") as folder:
        state = Path(folder)
        with EmbeddedNats(state / "nats") as nats_server, MockNetworkPrinter() as printer:
            devices = DevicesConfig(rules=(DeviceRule("receipt-printer", "escpos-network", host="127.0.0.1",
                                                      port=printer.port),))
            config = demo_store(nats_server, state / "edge", devices)
            verifier = next(user.pin_verifier for user in staff_list().users if user.login == "alice")
            floors_check, login_times, state_times, floor_times = [], [], [], []
            async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
                edge = await nursery.start(run_edge, config)
                till = f"{edge.url}/api/tills/till-1"
                for _ in range(logins):
                    started = time.perf_counter()
                    answer = await http.post(f"{till}/login", json={"login": "alice", "pin": STAFF["alice"][2]})
                    login_times.append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                    started = time.perf_counter()  # the floor, interleaved: the same load on the machine
                    assert check(STAFF["alice"][2], verifier)
                    floors_check.append(time.perf_counter() - started)
                progress(f"  {logins} logins")
                for _ in range(requests):
                    started = time.perf_counter()
                    assert (await http.get(till)).status_code == 200
                    state_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    assert (await http.get(f"{edge.url}/api/store")).status_code == 200
                    floor_times.append(time.perf_counter() - started)
                progress(f"  {requests} requests with and without the door")
                nursery.cancel_scope.cancel()
    login, check_floor = summary(login_times, digits=2), summary(floors_check, digits=2)
    state_ms, floor_ms = summary(state_times, digits=3), summary(floor_times, digits=3)
    return {"login_ms": login, "pin_check_floor_ms": check_floor,
            "login_to_floor_ratio": ratio(login["median"], check_floor["median"]),
            "state_ms": state_ms, "state_floor_ms": floor_ms,
            "state_to_floor_ratio": ratio(state_ms["median"], floor_ms["median"]),
            "logins": logins, "requests": requests, "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.logins, arguments.requests)))
