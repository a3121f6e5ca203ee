"""The logs of a full run: the demo's hub and store edge as real processes, JSON logs at DEBUG, driven through
everything that handles a secret (till PINs, console passwords, a card, gift cards, customers' names, emails and
phones, cards scanned as if they were products), right and wrong; the keys the demo keeps in files must not show
either. Every line the processes wrote must be one JSON object, none may hold a secret, and the
lines written while serving carry their context (tenant, store, till, request, sale, event, and the trace: the run
exports its spans to a sink standing in for a collector)."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from novapos.demo.processes import free_port
from novapos.demo.provision import DEMO_USERS, STORE, TENANT
from tests.pos import COFFEE

PIN = "86420975"
PASSWORD = "Fennel-Quartz-7731-unlogged"
WRONG_PIN = "97531864"
WRONG_PASSWORD = "Saffron-Lichen-4402-unlogged"
ENROLLED = {"name": "Zelda Quintessa Marchbanks", "email": "zelda.marchbanks@example.org", "phone": "+44 7700 900461"}
CREATED = {"name": "Ignatius Pemberton-Vale", "email": "ignatius.pv@example.net", "phone": "+33 6 12 34 56 78"}
WRONG_GIFT_CARDS = ("6012 3456 7890 1234", "6666 6666 6666 6666")  # not the tenant's; a wrong check digit
CARD_NUMBER = "4242424242424242"  # the demo terminal's VISA (mocks.payment_terminal.CARD_NUMBERS)
ADMIN, CASHIER = DEMO_USERS[0], DEMO_USERS[3]
TILL = "/api/tills/till-1"


def _wait(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return found


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


def _signed_in(console: httpx.Client, login: str, password: str) -> None:
    console.headers["x-csrf-token"] = _ok(console.post("/api/login", json={"login": login, "password": password}))["csrf"]


def _person(person: dict[str, str]) -> dict[str, str]:
    """A customer's personal data, in each form a log line could hold it."""
    digits = re.sub(r"\D", "", person["phone"])
    return {"name": person["name"], "surname": person["name"].split()[-1], "email": person["email"],
            "email's user": person["email"].split("@")[0], "phone": person["phone"],
            "phone's national digits": digits[2:]}


def _card_sale(till: httpx.Client) -> str:
    """A coffee paid by card (the demo's terminal approves the card it is shown after 3 s): the sale's id."""
    state = _ok(till.post(f"{TILL}/lines", json={"barcode": COFFEE, "quantity": 1}))
    _ok(till.post(f"{TILL}/tenders", json={"method": "card", "amount_minor": state["due"]["minor"],
                                           "id": str(uuid.uuid4())}))
    _wait(lambda: all(t["state"] == "approved" for t in _ok(till.get(TILL))["tenders"]))
    return str(_ok(till.post(f"{TILL}/complete", json={"cart": state["cart"]}))["sale"])


def _gift_card_sale(till: httpx.Client, number: str) -> tuple[str, str]:
    """A coffee for a customer enrolled at the till, paid with a gift card after a wrong one: the customer's and the
    sale's ids."""
    state = _ok(till.post(f"{TILL}/lines", json={"barcode": COFFEE, "quantity": 1}))
    assert till.post(f"{TILL}/customers", json={**ENROLLED, "email": "zelda.marchbanks@"}).status_code == 422
    customer = _ok(till.post(f"{TILL}/customers", json={**ENROLLED, "request": str(uuid.uuid4())}))["customer"]["id"]
    for query in (ENROLLED["email"], ENROLLED["phone"], ENROLLED["name"]):
        _ok(till.get(f"{TILL}/customers", params={"q": query}))
    for wrong in WRONG_GIFT_CARDS:
        refused = till.post(f"{TILL}/tenders", json={"method": "gift_card", "card": wrong, "amount_minor": 100,
                                                     "id": str(uuid.uuid4())})
        assert refused.status_code >= 400
    _ok(till.post(f"{TILL}/tenders", json={"method": "gift_card", "card": number, "amount_minor": state["due"]["minor"],
                                           "id": str(uuid.uuid4())}))
    return customer, str(_ok(till.post(f"{TILL}/complete", json={"cart": state["cart"]}))["sale"])


def _override(till_url: str, trust: ssl.SSLContext | bool) -> None:
    """The demo's cashier at till-2 has a price overridden, approved by the manager's PIN (a wrong one first)."""
    with httpx.Client(base_url=till_url, timeout=10, verify=trust) as till:
        url = "/api/tills/till-2"
        _ok(till.post(f"{url}/login", json={"login": CASHIER.login, "pin": CASHIER.pin}))
        line = _ok(till.post(f"{url}/lines", json={"barcode": COFFEE, "quantity": 1}))["lines"][0]["line"]
        change = {"unit_minor": 399, "reason": "dented tin"}
        wrong = till.post(f"{url}/lines/{line}/price", json={**change, "override": {"login": "olive", "pin": WRONG_PIN}})
        assert wrong.status_code in (401, 403)
        _ok(till.post(f"{url}/lines/{line}/price", json={**change, "override": {"login": "olive", "pin": PIN}}))


def _scanned(till: httpx.Client, state: Path, codes: list[str]) -> None:
    """Cards scanned on the till's scanner as if they were products (the till refuses them)."""
    def refused() -> float:
        found = re.search(r'novapos_edge_scans_total\{device="scanner-1",result="rejected"\} (\S+)', till.get("/metrics").text)
        return float(found[1]) if found else 0.0
    before = refused()
    for code in codes:
        subprocess.run([sys.executable, "-m", "novapos.cli", "mock", "--state-dir", str(state), "scan", "scanner-1", code],
                       check=True, capture_output=True, timeout=30)
    _wait(lambda: refused() >= before + len(codes))


def _drive(till_url: str, console_url: str, trust: ssl.SSLContext | bool,
           state: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The run: the secrets it handled, and the ids of what it did."""
    with httpx.Client(base_url=console_url, timeout=10, verify=trust) as console, \
            httpx.Client(base_url=console_url, timeout=10, verify=trust) as manager, \
            httpx.Client(base_url=till_url, timeout=10, verify=trust) as till:
        assert console.post("/api/login", json={"login": ADMIN.login, "password": WRONG_PASSWORD}).status_code == 401
        _signed_in(console, ADMIN.login, str(ADMIN.password))
        _ok(console.post("/api/users", json={"login": "olive", "name": "Olive Oakes", "password": PASSWORD, "pin": PIN,
                                             "roles": [{"role": "store_manager", "store": STORE}]}), 201)
        gift_card = _ok(console.post("/api/gift-cards", json={"amount_minor": 2000}), 201)["number"]
        created = _ok(console.post("/api/customers", json=CREATED), 201)
        _ok(console.get("/api/customers", params={"q": CREATED["email"]}))
        _signed_in(manager, "olive", PASSWORD)

        assert till.post(f"{TILL}/login", json={"login": "olive", "pin": WRONG_PIN}).status_code in (401, 403)
        _wait(lambda: till.post(f"{TILL}/login", json={"login": "olive", "pin": PIN}).status_code == 200, 60)
        _ok(till.post(f"{TILL}/lock", json={}))
        assert till.post(f"{TILL}/unlock", json={"pin": WRONG_PIN}).status_code in (401, 403)
        _ok(till.post(f"{TILL}/unlock", json={"pin": PIN}))
        card_sale = _card_sale(till)
        customer, gift_sale = _gift_card_sale(till, gift_card)
        _override(till_url, trust)

        sales = {card_sale, gift_sale}
        _wait(lambda: sales <= {sale["event_id"] for sale in _ok(console.get("/api/sales"))})
        enrolled = _ok(manager.get(f"/api/customers/{customer}"))["customer"]
        _scanned(till, state, [gift_card.replace(" ", ""), enrolled["card_number"]])
        _ok(console.post("/api/gift-card-lookups", json={"number": gift_card}))
    secrets = {"PIN": PIN, "wrong PIN": WRONG_PIN, "password": PASSWORD, "wrong password": WRONG_PASSWORD,
               "admin's password": str(ADMIN.password), "card number": CARD_NUMBER, "gift card number": gift_card,
               "gift card digits": gift_card.replace(" ", ""),
               **{f"wrong gift card {form}": form for wrong in WRONG_GIFT_CARDS for form in (wrong, wrong.replace(" ", ""))},
               "enrolled customer's loyalty card": enrolled["card_number"],
               "created customer's loyalty card": created["card_number"],
               **{f"enrolled customer's {what}": value for what, value in _person(ENROLLED).items()},
               **{f"created customer's {what}": value for what, value in _person(CREATED).items()}}
    return secrets, {"card sale": card_sale, "gift card sale": gift_sale, "customer": customer,
                     "created customer": created["id"]}


class _Sink(BaseHTTPRequestHandler):
    """Takes OTLP/HTTP exports and throws them away: traces are on, what they hold is tests/test_traces*'s."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def _collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def _addresses(banner: str, state: Path) -> tuple[str, str, ssl.SSLContext | bool]:
    """The web till's and the console's addresses as the banner prints them, and what to trust there (the demo's
    own CA when it runs with TLS)."""
    till, console = (re.search(rf"{name}\s+(https?://\S+)/", banner) for name in ("web till", "hub console"))
    assert till is not None and console is not None, banner
    tls = till[1].startswith("https")
    return till[1], console[1], ssl.create_default_context(cafile=state / "tls" / "ca.pem") if tls else True


def _run(tmp_path: Path) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """The demo run through `_drive` with JSON logs at DEBUG and traces on; every line its processes logged."""
    with _collector() as collector:
        return _demo(tmp_path, {"NOVAPOS_LOG_FORMAT": "json", "NOVAPOS_LOG_LEVEL": "DEBUG",
                                "OTEL_EXPORTER_OTLP_ENDPOINT": collector})


def _demo(tmp_path: Path, settings: dict[str, str]) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    till_port, console_port = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("NOVAPOS_", "OTEL_"))}, **settings}
    banner, logs = tmp_path / "banner.txt", tmp_path / "logs.jsonl"
    with banner.open("w") as out, logs.open("w") as err:
        demo = subprocess.Popen([sys.executable, "-m", "novapos.cli", "demo", "--state-dir", str(tmp_path / "state"),
                                 "--till-port", str(till_port), "--console-port", str(console_port)],
                                stdout=out, stderr=err, env=env)
    try:
        _wait(lambda: demo.poll() is not None or "Press Ctrl-C" in banner.read_text(), 90)
        assert demo.poll() is None, logs.read_text()[-5000:]
        secrets, done = _drive(*_addresses(banner.read_text(), tmp_path / "state"), tmp_path / "state")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
    assert demo.returncode == 0, logs.read_text()[-5000:]
    return logs.read_text().splitlines(), secrets, done


def _key_files(state: Path) -> dict[str, str]:
    """The secrets the demo keeps in files (NATS seeds, TLS keys, the gift card and audit keys, webhook secrets),
    line by line (a PEM's header and footer lines say nothing)."""
    files = [*state.glob("credentials/*.seed"), *state.glob("tls/*.key"), state / "gift-cards.key",
             state / "audit-checkpoints" / "checkpoint.key", state / "payments" / "webhook-secrets"]
    assert all(path.exists() for path in files) and len(files) >= 7, files
    return {f"{path.relative_to(state)} line {number}": line.strip()
            for path in files for number, line in enumerate(path.read_text().splitlines(), 1)
            if len(line.strip()) >= 16 and not line.startswith("-----")}


def _lines(entries: list[dict[str, Any]], process: str, text: str) -> list[dict[str, Any]]:
    found = [entry for entry in entries if entry.get("process") == process and text in entry["msg"]]
    assert found, f"no {process} line says {text!r}"
    return found


def test_a_full_run_logs_one_json_object_per_line_with_its_context_and_no_secret(tmp_path: Path) -> None:
    lines, secrets, done = _run(tmp_path)
    secrets.update(_key_files(tmp_path / "state"))
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} of the logs is not JSON: {line[:300]}") from None
        assert isinstance(entry, dict) and {"ts", "level", "logger", "msg", "process"} <= entry.keys(), line
        entries.append(entry)
    assert {entry["process"] for entry in entries} == {"demo", "hub", "edge"}
    assert any(entry["level"] == "debug" for entry in entries)

    text = "\n".join(lines).lower()
    leaked = {what: [line for line in lines if secret.lower() in line.lower()][:3]
              for what, secret in secrets.items() if secret.lower() in text}
    assert not leaked, json.dumps(leaked, indent=1)

    store = {"tenant": TENANT, "store": STORE}
    edge = [entry for entry in entries if entry["process"] == "edge"]
    started = next(number for number, entry in enumerate(edge) if "store" in entry)  # before: imports' lines
    assert all(entry.items() >= store.items() for entry in edge[started:])
    for sale in (done["card sale"], done["gift card sale"]):
        ids = {"sale": sale, "event": sale}
        # the edge's commit (in the till's request, and its trace), its forwarding and the hub's ingest of it: found
        # by the sale's id alone
        committed = _lines(entries, "edge", f"sale {sale} (seq")[0]
        assert committed.items() >= {"till": "till-1", "sale": sale}.items()
        assert re.fullmatch(r"[0-9a-f]{16}", committed["request"]) and re.fullmatch(r"[0-9a-f]{32}", committed["trace_id"])
        assert _lines(entries, "edge", f"event {sale} forwarded")[0].items() >= ids.items()
        assert _lines(entries, "hub", f"event {sale} (sale.completed")[0].items() >= {**store, **ids}.items()
        assert {entry["process"] for entry in entries if entry.get("sale") == sale} == {"edge", "hub"}
    # the till's HTTP requests (an approval is logged by the request's handler), the store's requests at the hub
    # (the enrolment, the refused gift card) and the console's requests carry their own ids
    approval = _lines(entries, "edge", "login: olive approved till.override for cashier")[0]
    assert approval["till"] == "till-2" and re.fullmatch(r"[0-9a-f]{16}", approval["request"])
    wrong_pins = _lines(entries, "edge", "login: a wrong PIN at till")  # logged by an actor the request asked
    assert len({entry["request"] for entry in wrong_pins}) == len(wrong_pins) == 3
    enrolment = _lines(entries, "hub", f"customer {done['customer']} created by till-user:olive")[0]
    refusal = _lines(entries, "hub", "gift_card_redeem: its card is not valid")[0]
    assert enrolment.items() >= store.items() and refusal.items() >= store.items()
    assert enrolment["request"] != refusal["request"]
    created = _lines(entries, "hub", f"customer {done['created customer']} created by admin")[0]
    assert created["tenant"] == TENANT and "store" not in created and re.fullmatch(r"[0-9a-f]{16}", created["request"])
    assert all("request" not in entry for entry in entries if entry["process"] == "demo")
