"""Hostile input at every door of the edge: each is refused with a 4xx JSON sentence, and the store keeps selling.

ENDPOINTS lists every route of the edge with the values a client controls in it (path parameters and
JSON body fields). A new endpoint joins the hostile table by adding one line there.
"""

from __future__ import annotations

import json
import logging
import re
import resource
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pykka
import pytest
import trio
from starlette.routing import Route

from edge.api import build_api
from edge.app import run_edge
from edge.events import EventHub
from edge.openapi import openapi_document
from edge_runtime import Tree
from hub.app import run_hub
from hub.console.app import build_console
from hub.console.context import Console
from novapos import validators
from novapos.config import HubConfig, StoreConfig
from novapos.logs import JsonFormatter, PlainFormatter, escape
from tests.conftest import wait_until
from tests.console_access import sign_in_admin
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in_at, sell

A_UUID = '"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"'


@dataclass(frozen=True)
class Endpoint:
    """One route of the edge: its method, its path (with {till}, {sku} parameters) and a valid body.

    `body` maps each JSON field the handler reads to the JSON text of a valid value; each field is
    replaced in turn by every hostile value while the others stay valid. `streams`: the answer never
    ends (server-sent events), so only refusals are sent to it. `accepts`: for an optional field, the
    labels of the table's values that are valid there (null, any UUID), so they are not sent as attacks."""
    method: str
    path: str
    body: dict[str, str] = field(default_factory=dict)
    streams: bool = False
    accepts: dict[str, tuple[str, ...]] = field(default_factory=dict)


ENDPOINTS = (
    Endpoint("GET", "/"),
    Endpoint("GET", "/healthz"),
    Endpoint("GET", "/metrics"),
    Endpoint("GET", "/openapi.json"),
    Endpoint("GET", "/api/store"),
    Endpoint("GET", "/api/products"),
    Endpoint("GET", "/api/devices"),
    Endpoint("GET", "/api/print-jobs"),
    Endpoint("GET", "/api/events", streams=True),
    Endpoint("GET", "/api/tills/{till}"),
    Endpoint("POST", "/api/tills/{till}/login", {"login": '"bob"', "pin": '"0000"'}),  # a wrong PIN: never in
    Endpoint("POST", "/api/tills/{till}/logout"),
    Endpoint("POST", "/api/tills/{till}/lock"),
    Endpoint("POST", "/api/tills/{till}/unlock", {"pin": '"0000"'}),
    Endpoint("GET", "/api/tills/{till}/whoami"),
    Endpoint("POST", "/api/tills/{till}/lines", {"barcode": json.dumps(COFFEE), "quantity": "1"}),
    Endpoint("PATCH", "/api/tills/{till}/lines/{line}", {"quantity": "2"}),
    Endpoint("DELETE", "/api/tills/{till}/lines/{line}"),
    Endpoint("POST", "/api/tills/{till}/lines/{line}/price",
             {"unit_minor": "100", "reason": '"price match"', "override": json.dumps(MANAGER_OVERRIDE)},
             accepts={"override": ("null",)}),
    Endpoint("POST", "/api/tills/{till}/lines/{line}/discount",
             {"kind": '"percent"', "value": "1000", "reason": '"loyalty"', "override": json.dumps(MANAGER_OVERRIDE)},
             accepts={"override": ("null",)}),
    Endpoint("DELETE", "/api/tills/{till}/lines/{line}/discount"),
    Endpoint("POST", "/api/tills/{till}/discount", {"kind": '"percent"', "value": "1000", "reason": '"loyalty"'},
             accepts={"reason": ("another till's cart id",)}),  # a reason is free text: any UUID is one
    Endpoint("DELETE", "/api/tills/{till}/discount"),
    Endpoint("DELETE", "/api/tills/{till}/cart"),
    Endpoint("POST", "/api/tills/{till}/tenders", {"method": '"cash"', "amount_minor": "100", "id": A_UUID},
             accepts={"id": ("null", "another till's cart id")}),
    Endpoint("DELETE", "/api/tills/{till}/tenders"),
    Endpoint("DELETE", "/api/tills/{till}/tenders/{tender}"),
    Endpoint("POST", "/api/tills/{till}/tenders/{tender}/cancel"),
    Endpoint("GET", "/api/tills/{till}/tenders/{tender}/qr.svg"),
    Endpoint("POST", "/api/tills/{till}/coupons", {"code": '"WELCOME10"'}),
    Endpoint("DELETE", "/api/tills/{till}/coupons/{code}"),
    Endpoint("POST", "/api/tills/{till}/complete", {"cart": A_UUID}),
    Endpoint("POST", "/api/tills/{till}/drawer", {"sale": A_UUID}),
    Endpoint("GET", "/api/tills/{till}/drawer-session"),
    Endpoint("POST", "/api/tills/{till}/drawer-session", {"float": '{"1000": 2}'}),
    Endpoint("POST", "/api/tills/{till}/drawer-session/moves",
             {"kind": '"pay_in"', "amount_minor": "100", "reason": '"float top-up"'}),
    Endpoint("POST", "/api/tills/{till}/drawer-session/no-sale", {"reason": '"change a note"'},
             accepts={"reason": ("null", "empty string", "blank string")}),
    Endpoint("GET", "/api/tills/{till}/drawer-session/x-report"),
    Endpoint("POST", "/api/tills/{till}/drawer-session/x-report/print", {}),
    Endpoint("POST", "/api/tills/{till}/drawer-session/close", {"counted": '{"1000": 2}'}),
    Endpoint("GET", "/api/stock/{sku}"),
    Endpoint("GET", "/api/payments/follow-ups"),
    Endpoint("GET", "/api/tills/{till}/receipts/last"),
    Endpoint("POST", "/api/tills/{till}/receipts/last/print"),
    Endpoint("GET", "/static/{name}"),
    Endpoint("POST", "/api/tills/{till}/kpis", {"cart": A_UUID, "latency_ms": "4000", "taps": "4"}),
    Endpoint("GET", "/api/tills/{till}/returns/lookup"),
    Endpoint("POST", "/api/tills/{till}/returns", {"order": A_UUID, "no_receipt": "false", "reason": '"changed mind"'},
             accepts={"reason": ("null",), "order": ("another till's cart id",)}),
    Endpoint("POST", "/api/tills/{till}/returns/lines", {"original_line": "1", "quantity": "1",
                                                         "condition": '"resaleable"'}),
    Endpoint("POST", "/api/tills/{till}/returns/refund-in-cash"),
    Endpoint("GET", "/api/tills/{till}/customers"),
    Endpoint("POST", "/api/tills/{till}/returns/gift-card", {"card": '"6006491234567890"'}),
    Endpoint("POST", "/api/tills/{till}/customers", {"name": '"Ann Example"', "phone": '"+44 1234 567890"',
                                                      "email": '"ann@example.com"', "request": A_UUID},
             accepts={"name": ("another till's cart id",), "phone": ("null", "empty string"),
                      "email": ("null", "empty string"), "request": ("null", "empty string", "another till's cart id")}),
    Endpoint("PUT", "/api/tills/{till}/customer", {"customer": A_UUID}),
    Endpoint("GET", "/api/tills/{till}/customer"),
    Endpoint("DELETE", "/api/tills/{till}/customer"),
    Endpoint("POST", "/api/tills/{till}/tenders", {"method": '"points"', "amount_minor": "100", "id": A_UUID},
             accepts={"id": ("another till's cart id",)}),
    Endpoint("POST", "/api/tills/{till}/tenders", {"method": '"gift_card"', "card": '"6006491234567890"',
                                                    "amount_minor": "100", "id": A_UUID},
             accepts={"id": ("another till's cart id",)}),
)
VALID_PATH = {"till": "till-2", "sku": "MLK-1L", "name": "till.js", "line": "0123456789ab", "code": "NOSUCHCODE",
              "tender": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}
"""`line`: a well-formed line id till-2 does not have (a valid price or discount sent to it changes nothing)."""

# (what it is, its JSON text): values a client may put where a name, a number or an id belongs
HOSTILE_VALUES = [
    ("NUL", json.dumps("bad\x00name")),
    ("ESC", json.dumps("\x1b[2Jcleared")),
    ("newline", json.dumps("alice\n2026-01-01 INFO forged line")),
    ("DEL and C1 controls", json.dumps("a\x7fb\x85c")),
    ("line separator", json.dumps("a\u2028b")),
    ("bidi override", json.dumps("a\u202eb")),
    ("bidi isolate", json.dumps("\u2067evil\u2069 alice")),
    ("zero-width space", json.dumps("ad\u200bmin")),
    ("lone surrogate", '"sur\\ud800rogate"'),
    ("10 kB string", json.dumps("x" * 10_000)),
    ("empty string", '""'),
    ("blank string", '"   "'),
    ("5000-digit integer", "9" * 5000),
    ("huge integer", str(10**30)),
    ("float", "1.5"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("negative", "-1"),
    ("zero", "0"),
    ("true", "true"),
    ("null", "null"),
    ("list", '["alice"]'),
    ("object", '{"minor": 1}'),
    ("deeply nested", "[" * 20_000 + "]" * 20_000),
]
# (what it is, URL-encoded path segment): values a client may put where a till or an SKU belongs
HOSTILE_SEGMENTS = [
    ("NUL", "bad%00name"),
    ("ESC", "%1B%5B2J"),
    ("newline", "two%0Alines"),
    ("lone surrogate as UTF-8", "sur%ED%A0%80rogate"),
    ("bidi override", "till-1%E2%80%AE"),
    ("invalid UTF-8", "%FF%FE"),
    ("10 kB", "x" * 10_000),
    ("dot-dot", "%2E%2E"),
    ("slash", "till-1%2F..%2F"),
    ("quote", "till-1'%20OR%201=1"),
    ("emoji", "%F0%9F%98%80"),
]
# (what it is, raw body, content type): whole bodies that are not a JSON object of sane size
HOSTILE_BODIES = [
    ("truncated JSON", b'{"cashier": ', "application/json"),
    ("a JSON list", b'["a list"]', "application/json"),
    ("a JSON string", b'"alice"', "application/json"),
    ("deeply nested object", b'{"a": ' * 20_000 + b"1" + b"}" * 20_000, "application/json"),
    ("invalid UTF-8", b'{"cashier": "\xff\xfe"}', "application/json"),
    ("UTF-16", '{"cashier": "alice"}'.encode("utf-16"), "application/json"),
    ("1 MiB", b'{"cashier": "' + b"x" * 2**20 + b'"}', "application/json"),
    ("text/plain (a simple cross-origin request)", b'{"cashier": "mallory"}', "text/plain"),
    ("form", b"cashier=mallory", "application/x-www-form-urlencoded"),
    ("multipart", b"--x\r\n\r\nmallory\r\n--x--", "multipart/form-data; boundary=x"),
    ("no content type", b'{"cashier": "mallory"}', ""),
]
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")


def _body(fields: dict[str, str]) -> bytes:
    return ("{" + ", ".join(f"{json.dumps(name)}: {value}" for name, value in fields.items()) + "}").encode()


def _attacks(endpoint: Endpoint, port: int, other_tills_cart: str) -> Iterator[tuple[str, httpx.Request]]:
    """Every hostile request for one endpoint, each with a label saying what it tries."""
    def request(method: str, path_values: dict[str, str], content: bytes | None = None,
                headers: dict[str, str] | None = None) -> httpx.Request:
        url = f"http://127.0.0.1:{port}{endpoint.path.format(**path_values)}"
        return httpx.Request(method, url, content=content, headers=headers)

    for parameter in re.findall(r"{(\w+)}", endpoint.path):
        for label, segment in HOSTILE_SEGMENTS:
            yield f"{parameter} {label}", request(endpoint.method if not endpoint.streams else "POST",
                                                  {**VALID_PATH, parameter: segment},
                                                  _body(endpoint.body) if endpoint.body else None,
                                                  {"content-type": "application/json"} if endpoint.body else None)
    json_type = {"content-type": "application/json"}
    for name in endpoint.body:
        for label, value in [*HOSTILE_VALUES, ("another till's cart id", json.dumps(other_tills_cart))]:
            if label in endpoint.accepts.get(name, ()):
                continue
            yield f"{name} = {label}", request(endpoint.method, VALID_PATH, _body({**endpoint.body, name: value}),
                                               json_type)
    if endpoint.method == "POST":
        for label, content, content_type in HOSTILE_BODIES:
            yield f"body {label}", request("POST", VALID_PATH, content,
                                           {"content-type": content_type} if content_type else None)
    cross_site = {"origin": "http://evil.example", **json_type}
    yield "from another origin", request("POST" if endpoint.method == "GET" else endpoint.method, VALID_PATH,
                                         _body(endpoint.body), cross_site)
    yield "through a rebound DNS name", request("POST" if endpoint.method == "GET" else endpoint.method,
                                                VALID_PATH, _body(endpoint.body),
                                                {"host": f"evil.example:{port}", **json_type})
    yield "with a method it does not serve", request("PATCH", VALID_PATH, b"{}", json_type)


def _refusal_problems(label: str, response: httpx.Response) -> list[str]:
    """What is wrong with a refusal: it must be a 4xx JSON {"error": sentence} with the security headers."""
    problems = []
    if not 400 <= response.status_code < 500:
        problems.append(f"{label}: status {response.status_code}")
    try:
        error = response.json()["error"]
        validators.text("error", error, max_length=400)
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{label}: not a JSON error sentence ({exc}): {response.text[:80]!r}")
    missing = [name for name in SECURITY_HEADERS if name not in response.headers]
    if missing:
        problems.append(f"{label}: missing {missing}")
    return problems


@pytest.fixture
async def edge(store_config: StoreConfig) -> AsyncIterator[Any]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(run_edge, store_config)
        nursery.cancel_scope.cancel()


async def test_hostile_values_at_every_endpoint_are_refused_and_the_store_keeps_selling(
        edge: Any, http: httpx.AsyncClient) -> None:
    other_tills_cart = (await sell(http, edge.url, [(COFFEE, 1)], till="till-1"))["cart"]
    till2 = f"{edge.url}/api/tills/till-2"
    await log_in_at(http, f"{till2}", "bob")
    before = (await http.post(f"{till2}/lines", json={"barcode": MILK})).json()
    restarts = edge.tree.restarts
    port = int(edge.url.rsplit(":", 1)[1])

    problems: list[str] = []
    sent = 0
    async with httpx.AsyncClient(timeout=10, cookies=http.cookies) as client:  # logged in: the validators answer
        for endpoint in ENDPOINTS:
            for label, request in _attacks(endpoint, port, other_tills_cart):
                sent += 1
                try:
                    response = await client.send(request)
                except httpx.TransportError as exc:
                    problems.append(f"{endpoint.method} {endpoint.path} {label}: {exc!r}")
                    continue
                problems += _refusal_problems(f"{endpoint.method} {endpoint.path} {label}", response)
    assert not problems, f"{len(problems)} of {sent} hostile requests were not refused properly:\n" + "\n".join(problems)

    assert (await http.get(f"{edge.url}/healthz")).status_code == 200
    assert edge.tree.restarts == restarts, "an actor crashed on hostile input"
    assert (await http.get(till2)).json() == before, "a hostile request changed till-2"
    receipt = await sell(http, edge.url, [(COFFEE, 2), (MILK, 1)], till="till-1")
    assert receipt["seq"] == 2 and receipt["total"]["minor"] == 2 * 499 + 129


@pytest.mark.parametrize("cashier", ["bad\u0000name", "sur\ud800rogate", "alice\nINFO forged", "a\u202eb",
                                     "\u2066alice\u2069", "al\u200bice", "\ufeffalice"])
async def test_a_poisoned_name_is_refused_at_the_door_and_cannot_stop_the_store(
        edge: Any, http: httpx.AsyncClient, cashier: str) -> None:
    till = f"{edge.url}/api/tills/till-1"
    restarts = edge.tree.restarts
    response = await http.post(f"{till}/login", content=json.dumps({"login": cashier, "pin": "1111"}),
                               headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("login must not contain")
    assert (await edge.tree.ask("till.till-1", "state"))["session"] is None
    for _ in range(6):
        assert (await http.post(f"{till}/complete", json={})).status_code == 401  # nobody logged in
    assert edge.tree.restarts == restarts and edge.tree.healthy()
    assert (await sell(http, edge.url, [(COFFEE, 1)]))["seq"] == 1


async def test_only_the_tills_own_page_can_change_it(edge: Any, http: httpx.AsyncClient) -> None:
    till = f"{edge.url}/api/tills/till-1"
    alice = {"login": "alice", "pin": "1111"}
    simple = await http.post(f"{till}/login", content=json.dumps(alice).encode(), headers={"content-type": "text/plain"})
    assert simple.status_code == 415 and "application/json" in simple.json()["error"]
    foreign = await http.post(f"{till}/login", json=alice, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "origin" in foreign.json()["error"]
    rebound = await http.get(till, headers={"host": "evil.example"})
    assert rebound.status_code == 421 and "evil.example" in rebound.json()["error"]
    assert (await edge.tree.ask("till.till-1", "state"))["session"] is None
    own = await http.post(f"{till}/login", json=alice, headers={"origin": edge.url})
    assert own.status_code == 200 and own.json()["session"]["cashier"] == "alice"
    local_name = edge.url.replace("127.0.0.1", "localhost")
    assert (await http.get(till, headers={"host": local_name.removeprefix("http://")})).status_code == 200


async def test_pages_answers_and_errors_carry_security_headers(edge: Any, http: httpx.AsyncClient) -> None:
    for response in [await http.get(f"{edge.url}/"), await http.get(f"{edge.url}/api/store"),
                     await http.get(f"{edge.url}/nowhere"), await http.post(f"{edge.url}/api/tills/till-9/lines", json={})]:
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


async def test_a_huge_body_is_refused_without_being_read(edge: Any, http: httpx.AsyncClient) -> None:
    """The unit's MemoryMax is 512M: a 300 MiB POST must not be buffered, it is cut off at the limit."""
    streamed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal streamed
        chunk = b"x" * 2**16
        yield b'{"cashier": "'
        while streamed < 256 * 2**20:
            streamed += len(chunk)
            yield chunk

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    try:
        response = await http.post(f"{edge.url}/api/tills/till-1/login", content=endless(),
                                    headers={"content-type": "application/json"})
        assert response.status_code == 413 and "too large" in response.json()["error"]
    except httpx.TransportError:
        pass  # the server may close the connection once it has answered 413 and stopped reading
    assert streamed < 64 * 2**20, "the server read on long past the limit"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 64 * 1024
    declared = await http.post(f"{edge.url}/api/tills/till-1/login", content=b"{" + b" " * 2**20 + b"}",
                               headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "too large" in declared.json()["error"]
    assert edge.tree.healthy()


@pytest.mark.parametrize(("body", "says"), [
    (b"[" * 50_000 + b"]" * 50_000, "too large"),  # 100 kB: over the size limit before its depth matters
    (b'{"a": ' * 5_000 + b"1" + b"}" * 5_000, "nested too deeply"),
    (b'{"barcode": "4006381333931", "quantity": 1' + b"0" * 4999 + b"}", "too long"),
    (b'{"barcode": "4006381333931", "quantity": NaN}', "not valid JSON"),
])
async def test_pathological_json_is_a_400_not_a_500(edge: Any, http: httpx.AsyncClient, body: bytes, says: str) -> None:
    await log_in_at(http, f"{edge.url}/api/tills/till-1")
    response = await http.post(f"{edge.url}/api/tills/till-1/lines", content=body,
                               headers={"content-type": "application/json"})
    assert response.status_code in (400, 413) and says in response.json()["error"], response.text


async def test_every_error_the_page_can_meet_is_json(edge: Any, http: httpx.AsyncClient) -> None:
    await log_in_at(http, f"{edge.url}/api/tills/till-1")  # the page meets them logged in (else: 401)
    missing = await http.get(f"{edge.url}/api/nothing-here")
    assert missing.status_code == 404 and "/api/nothing-here" in missing.json()["error"]
    wrong = await http.put(f"{edge.url}/api/tills/till-1/tenders", json={})
    assert wrong.status_code == 405 and "POST" in wrong.json()["error"]
    assert set(wrong.headers["allow"].split(", ")) == {"POST", "DELETE", "OPTIONS"}
    options = await http.options(f"{edge.url}/api/tills/till-1/tenders")
    assert options.status_code == 204 and set(options.headers["allow"].split(", ")) == {"POST", "DELETE", "OPTIONS"}
    assert "access-control-allow-origin" not in options.headers  # no CORS: other sites' pages stay out


async def test_another_tills_cart_id_does_not_reveal_its_receipt(edge: Any, http: httpx.AsyncClient) -> None:
    receipt = await sell(http, edge.url, [(COFFEE, 1)], till="till-1")
    await log_in_at(http, f"{edge.url}/api/tills/till-2", "bob")
    response = await http.post(f"{edge.url}/api/tills/till-2/complete", json={"cart": receipt["cart"]})
    assert response.status_code in (404, 409), response.text
    assert set(response.json()) == {"error"} and receipt["sale"] not in response.text
    assert "alice" not in response.text
    again = await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": receipt["cart"]})
    assert again.status_code == 200 and again.json()["sale"] == receipt["sale"]  # its own till still gets it


@pytest.mark.parametrize("path", ["/api/devices", "/api/print-jobs", "/healthz", "/api/tills/till-1"])
async def test_an_internal_timeout_is_a_503_that_says_what_to_do(
        edge: Any, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    await log_in_at(http, f"{edge.url}/api/tills/till-1")  # past the login door, which asks too

    async def no_answer(self: Tree, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        raise pykka.Timeout(f"ask {name}.{method} got no reply")
    monkeypatch.setattr(Tree, "ask", no_answer)
    response = await http.get(f"{edge.url}{path}")
    assert response.status_code == 503, response.text
    assert "again" in response.json()["error"]


async def test_an_unexpected_failure_is_a_generic_json_500_logged_once(
        edge: Any, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: Tree) -> bool:
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(Tree, "healthy", broken)
    with caplog.at_level(logging.INFO):
        response = await http.get(f"{edge.url}/healthz")
    assert response.status_code == 500 and "secret" not in response.text
    assert "failed" in response.json()["error"] and "content-security-policy" in response.headers

    async def logged() -> list[logging.LogRecord]:  # the server logs once it has answered
        return [record for record in caplog.records if record.exc_info]
    tracebacks = await wait_until(logged)
    await http.get(f"{edge.url}/api/store")  # one more request: nothing else was logged for the first
    assert len(await logged()) == 1 and "GET '/healthz' failed" in tracebacks[0].getMessage()
    assert "secret internal detail" in caplog.text  # the operator sees what the client was not told


@pytest.mark.parametrize("formatter", [PlainFormatter("%(levelname)s %(message)s"), JsonFormatter()])
def test_a_newline_in_a_name_cannot_forge_a_log_line(formatter: logging.Formatter) -> None:
    record = logging.LogRecord("edge", logging.INFO, __file__, 1, "session opened for %s\x1b[0m",
                               ("alice\nERROR forged: drawer emptied\u2028\ud800",), None)
    line = formatter.format(record)
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line and "\ud800" not in line
    if isinstance(formatter, JsonFormatter):
        line = json.loads(line)["msg"]
    assert line.endswith(r"session opened for alice\nERROR forged: drawer emptied\u2028\ud800\x1b[0m")


@pytest.mark.parametrize("formatter", [PlainFormatter("%(levelname)s %(message)s"), JsonFormatter()])
def test_a_bidi_override_in_a_name_cannot_reverse_a_log_line(formatter: logging.Formatter) -> None:
    record = logging.LogRecord("edge", logging.INFO, __file__, 1, "session opened for %s; drawer closed",
                               ("a\u202eb\u2066c\u2069\u200b\ufeff",), None)
    line = formatter.format(record)
    if isinstance(formatter, JsonFormatter):
        line = json.loads(line)["msg"]
    assert line.endswith(r"session opened for a\u202eb\u2066c\u2069\u200b\ufeff; drawer closed")


def test_every_invisible_format_character_but_the_joiners_is_refused_and_escaped_in_logs() -> None:
    """Format characters (Unicode category Cf) reorder or hide text on a screen, a receipt or a log viewer;
    ZWNJ and ZWJ join letters (Persian, Indic scripts) and emoji, and real names hold them."""
    joiners = {"\u200c", "\u200d"}
    formats = [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"]
    assert "\u202e" in formats and joiners <= set(formats)
    wrongly_accepted, not_escaped = [], []
    for char in formats:
        if char in joiners:
            continue
        try:
            validators.text("name", f"a{char}b")
            wrongly_accepted.append(f"U+{ord(char):04X}")
        except validators.Invalid as exc:
            assert f"U+{ord(char):04X}" in str(exc)
        if char in escape(char):
            not_escaped.append(f"U+{ord(char):04X}")
    assert not wrongly_accepted and not not_escaped, (wrongly_accepted, not_escaped)
    for name in ["\U0001f469\u200d\U0001f4bb Dana", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"]:
        assert validators.text("cashier", name) == name and escape(name) == name


async def test_the_hub_console_shares_the_door(hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        missing = await http.get(f"{hub.url}/api/nothing-here")
        assert missing.status_code == 404 and "error" in missing.json()
        assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]
        foreign = await http.post(f"{hub.url}/api/sales", json={}, headers={"origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert (await http.get(f"{hub.url}/api/sales", headers={"host": "evil.example"})).status_code == 421
        assert (await http.get(f"{hub.url}/healthz")).headers["x-content-type-options"] == "nosniff"
        nursery.cancel_scope.cancel()


HUB_ENDPOINTS = (
    Endpoint("GET", "/"),
    Endpoint("GET", "/healthz"),
    Endpoint("GET", "/metrics"),
    Endpoint("GET", "/openapi.json"),
    Endpoint("GET", "/static/console.js"),
    Endpoint("GET", "/static/promotions.js"),
    Endpoint("GET", "/static/console.css"),
    Endpoint("GET", "/static/codes.js"),
    Endpoint("POST", "/api/login"),
    Endpoint("POST", "/api/logout"),
    Endpoint("GET", "/api/session"),
    Endpoint("GET", "/api/stores"),
    Endpoint("GET", "/api/sales"),
    Endpoint("GET", "/api/price-diffs"),
    Endpoint("GET", "/api/orders"),
    Endpoint("GET", "/api/orders/{id}"),
    Endpoint("GET", "/api/sequence-issues"),
    Endpoint("GET", "/api/dead-letters"),
    Endpoint("POST", "/api/dead-letters/{id}/redrive"),
    Endpoint("GET", "/api/catalog/products"),
    Endpoint("GET", "/api/catalog/products/{id}"),
    Endpoint("GET", "/api/catalog/tax-classes"),
    Endpoint("GET", "/api/catalog/settings"),
    Endpoint("POST", "/api/catalog/product-changes"),
    Endpoint("POST", "/api/catalog/barcode-changes"),
    Endpoint("POST", "/api/catalog/price-changes"),
    Endpoint("POST", "/api/catalog/tax-class-changes"),
    Endpoint("POST", "/api/catalog/settings-changes"),
    Endpoint("POST", "/api/catalog/imports"),
    Endpoint("GET", "/api/catalog/imports/{id}"),
    Endpoint("GET", "/api/stock"),
    Endpoint("GET", "/api/stock/movements"),
    Endpoint("GET", "/api/stock/low"),
    Endpoint("POST", "/api/stock/adjustments"),
    Endpoint("POST", "/api/stock/receipts"),
    Endpoint("POST", "/api/stock/returns"),
    Endpoint("POST", "/api/stock/transfers"),
    Endpoint("POST", "/api/stock/reservations"),
    Endpoint("POST", "/api/stock/reservations/{id}/release"),
    Endpoint("POST", "/api/stock/thresholds"),
    Endpoint("POST", "/api/login"),
    Endpoint("POST", "/api/logout"),
    Endpoint("GET", "/api/session"),
    Endpoint("GET", "/api/users"),
    Endpoint("POST", "/api/users"),
    Endpoint("GET", "/api/users/{login}"),
    Endpoint("POST", "/api/users/{login}/changes"),
    Endpoint("POST", "/api/users/{login}/roles"),
    Endpoint("POST", "/api/users/{login}/roles/revoke"),
    Endpoint("GET", "/api/fleet"),
    Endpoint("GET", "/api/fleet/{store}"),  # hostile store ids, signed in: tests/test_fleet_console.py
    Endpoint("GET", "/api/audit"),
    Endpoint("GET", "/api/audit/verify"),
    Endpoint("GET", "/api/drawer-sessions"),
    Endpoint("GET", "/api/drawer-sessions/{id}"),
    Endpoint("GET", "/api/returns"),
    Endpoint("POST", "/api/payments/webhooks/{tenant}/{provider}"),  # signatures: tests/test_payment_webhooks.py
    Endpoint("GET", "/api/payments/reconciliations"),
    Endpoint("POST", "/api/payments/reconciliations"),
    Endpoint("GET", "/api/payments/reconciliations/{id}"),
    Endpoint("GET", "/api/payments/intents"),
    Endpoint("POST", "/api/payments/intents"),
    Endpoint("GET", "/api/payments/intents/{id}"),
    Endpoint("POST", "/api/payments/intents/{id}/capture"),
    Endpoint("POST", "/api/payments/intents/{id}/cancel"),
    Endpoint("POST", "/api/payments/intents/{id}/refund"),
    Endpoint("GET", "/api/payments/settings"),
    Endpoint("PUT", "/api/payments/settings"),
    Endpoint("GET", "/api/loyalty/program"),
    Endpoint("PUT", "/api/loyalty/program"),
    Endpoint("GET", "/api/loyalty/accounts/{id}"),
    Endpoint("POST", "/api/loyalty/accounts/{id}/adjust"),
    Endpoint("GET", "/api/promotions"),
    Endpoint("POST", "/api/promotions"),
    Endpoint("GET", "/api/promotions/settings"),
    Endpoint("PUT", "/api/promotions/settings"),
    Endpoint("GET", "/api/promotion-diffs"),
    Endpoint("GET", "/api/promotions/{id}"),
    Endpoint("PUT", "/api/promotions/{id}"),
    Endpoint("GET", "/api/promotions/{id}/revisions"),
    Endpoint("POST", "/api/promotions/{id}/simulate"),
    Endpoint("POST", "/api/promotions/{id}/submit"),
    Endpoint("POST", "/api/promotions/{id}/approve"),
    Endpoint("POST", "/api/promotions/{id}/reject"),
    Endpoint("POST", "/api/promotions/{id}/schedule"),
    Endpoint("POST", "/api/promotions/{id}/end"),
    Endpoint("GET", "/api/customers"),
    Endpoint("POST", "/api/customers"),
    Endpoint("GET", "/api/customers/{id}"),
    Endpoint("PATCH", "/api/customers/{id}"),
    Endpoint("POST", "/api/customers/{id}/export"),
    Endpoint("POST", "/api/customers/{id}/erase"),  # hostile fields: tests/test_customers_hostile.py
    Endpoint("GET", "/api/coupons"),
    Endpoint("POST", "/api/coupons"),
    Endpoint("POST", "/api/coupon-batches"),
    Endpoint("GET", "/api/coupons/{id}"),
    Endpoint("POST", "/api/coupons/{id}/block"),
    Endpoint("POST", "/api/coupons/{id}/unblock"),
    Endpoint("GET", "/api/gift-cards"),
    Endpoint("POST", "/api/gift-cards"),
    Endpoint("POST", "/api/gift-card-lookups"),
    Endpoint("GET", "/api/gift-cards/{id}"),
    Endpoint("POST", "/api/gift-cards/{id}/top-ups"),
    Endpoint("POST", "/api/gift-cards/{id}/block"),
    Endpoint("POST", "/api/gift-cards/{id}/unblock"),
)
"""Every route of the hub console; the values a client controls are its path ids and query parameters. They
are sent signed in as a tenant admin (with the session's CSRF header), so that what answers is the door's
validation, not the refusal of an anonymous client (tests/test_access_matrix.py covers who may do what)."""
PATH_NAMES = {"login": "ada", "tenant": "demo", "provider": "simulator"}
"""The path parameters that are names, not ids: valid ones, so the attack is the request's other parts."""
HOSTILE_IDS = [*HOSTILE_SEGMENTS, ("zero", "0"), ("negative", "-1"), ("past bigint", str(2**63)),
               ("5000 digits", "9" * 5000), ("decimal", "1.5"), ("not a dead letter", "999999")]
HOSTILE_LIMITS = ["0", "-1", "501", "1.5", "abc", "9" * 5000, "%00", "%E2%80%AE"]


def _served(path: str) -> set[str]:
    """The methods a hub path serves (/api/users: GET lists, POST creates)."""
    return {endpoint.method for endpoint in HUB_ENDPOINTS if endpoint.path == path}


def _hub_attacks(endpoint: Endpoint, port: int, session: dict[str, str]) -> Iterator[tuple[str, int, httpx.Request]]:
    """Every hostile request for one hub route, with a label and the status it must be refused with; each
    carries `session` (the signed-in admin's cookie and CSRF headers)."""
    def request(method: str, ids: str = "1", query: str = "", content: bytes | None = b"{}",
                headers: dict[str, str] | None = None) -> httpx.Request:
        url = f"http://127.0.0.1:{port}{endpoint.path.replace('{store}', ids).format(id=ids, **PATH_NAMES)}{query}"
        return httpx.Request(method, url, content=content, headers={
            **session, **({"content-type": "application/json"} if headers is None else headers)})

    for label, segment in HOSTILE_IDS if "{id}" in endpoint.path else []:
        yield f"id {label}", 404, request(endpoint.method, segment)
    for limit in HOSTILE_LIMITS if endpoint.path in ("/api/sales", "/api/price-diffs", "/api/orders",
                                                                "/api/drawer-sessions", "/api/returns",
                                                                "/api/payments/reconciliations",
                                                                "/api/payments/intents", "/api/promotions",
                                                                "/api/promotion-diffs", "/api/customers",
                                                                "/api/coupons", "/api/gift-cards") else []:
        yield f"limit={limit[:12]}", 400, request("GET", query=f"?limit={limit}", content=None, headers={})
    for method in {"PUT", "PATCH", "DELETE", "POST", "GET"} - _served(endpoint.path):
        yield f"{method} without a body", 405, request(method, content=None, headers={})
        yield f"{method} with a JSON body", 405, request(method)
    if endpoint.method == "POST":
        for label, content, content_type in HOSTILE_BODIES[7:]:  # the simple cross-origin kinds
            yield f"body {label}", 415, request("POST", content=content,
                                                headers={"content-type": content_type} if content_type else {})
    yield "from another origin", 403, request("POST", headers={"origin": "http://evil.example",
                                                                "content-type": "application/json"})
    yield "through a rebound DNS name", 421, request(endpoint.method, headers={"host": f"evil.example:{port}"})


async def test_hostile_requests_at_every_hub_route_are_refused_with_the_right_status(
        hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    problems: list[str] = []
    sent = 0
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        port = int(hub.url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(timeout=10) as admin:
            await sign_in_admin(admin, hub.url, hub_config.database_url)
            session = {"cookie": "; ".join(f"{name}={value}" for name, value in admin.cookies.items()),
                       "x-csrf-token": admin.headers["x-csrf-token"]}
        for endpoint in HUB_ENDPOINTS:
            for label, status, request in _hub_attacks(endpoint, port, session):
                sent += 1
                label = f"{endpoint.method} {endpoint.path} {label}"
                response = await http.send(request)
                problems += _refusal_problems(label, response)
                if response.status_code != status:
                    problems.append(f"{label}: status {response.status_code}, not {status}: {response.text[:80]}")
                if status == 405 and endpoint.method not in response.headers.get("allow", ""):
                    problems.append(f"{label}: Allow is {response.headers.get('allow')!r}")
            options = await http.options(f"{hub.url}{endpoint.path.replace('{store}', '1').format(id=1, **PATH_NAMES)}")
            if options.status_code != 204 or \
                    set(options.headers.get("allow", "").split(", ")) != {*_served(endpoint.path), "OPTIONS"} or \
                    "access-control-allow-origin" in options.headers or \
                    any(name not in options.headers for name in SECURITY_HEADERS):
                problems.append(f"OPTIONS {endpoint.path}: {options.status_code} {dict(options.headers)}")
        assert (await http.get(f"{hub.url}/healthz")).status_code == 200
        nursery.cancel_scope.cancel()
    assert not problems, f"{len(problems)} of {sent} hostile requests were not refused properly:\n" + "\n".join(problems)


def test_every_hub_route_is_in_the_hostile_table() -> None:
    app = build_console(Console(None, None, frozenset()))  # type: ignore[arg-type]  # routes only, not served
    routed = {(method, route.path) for route in app.routes if isinstance(route, Route)
              for method in (route.methods or set()) - {"HEAD", "OPTIONS"}}
    assert routed == {(endpoint.method, endpoint.path) for endpoint in HUB_ENDPOINTS}


async def test_a_method_a_route_does_not_serve_is_a_405_whatever_its_body(edge: Any, http: httpx.AsyncClient) -> None:
    """The content type is checked only where the method is served: a body-less PUT is a 405, not a 415."""
    await log_in_at(http, f"{edge.url}/api/tills/{VALID_PATH['till']}", "bob")  # past the login door
    methods: dict[str, set[str]] = {}
    for endpoint in ENDPOINTS:
        methods.setdefault(endpoint.path.format(**VALID_PATH), set()).add(endpoint.method)
    for path, served in methods.items():
        allowed = {*served, "OPTIONS", *(["HEAD"] if "GET" in served else [])}
        for method in {"PUT", "PATCH", "POST", "DELETE"} - served:
            for headers in [{}, {"content-type": "text/plain"}]:
                wrong = await http.request(method, f"{edge.url}{path}", headers=headers)
                assert wrong.status_code == 405, (method, path, headers, wrong.text)
                assert set(wrong.headers["allow"].split(", ")) == allowed and method in wrong.json()["error"]
        options = await http.options(f"{edge.url}{path}")
        assert options.status_code == 204 and set(options.headers["allow"].split(", ")) == allowed - {"HEAD"}
    simple = await http.post(f"{edge.url}/api/tills/till-1/login", content=b'{"login": "m"}')
    assert simple.status_code == 415 and "not nothing" in simple.json()["error"]  # a served POST still needs JSON


async def test_the_largest_values_the_door_accepts_can_be_sold(edge: Any, http: httpx.AsyncClient) -> None:
    """The door and the wire schema share their bounds: what the door lets through is never refused at commit."""
    receipt = await sell(http, edge.url, [(COFFEE, validators.MAX_LINE_QUANTITY)], cashier="manager")
    assert receipt["cashier"] == "manager" and receipt["lines"][0]["quantity"] == validators.MAX_LINE_QUANTITY
    too_long = await http.post(f"{edge.url}/api/tills/till-2/login", json={"login": "m" * 65, "pin": "2580"})
    assert too_long.status_code == 422


async def test_every_route_is_in_the_hostile_table_and_documented(edge: Any, store_config: StoreConfig) -> None:
    app = build_api(store_config, edge.tree, EventHub())
    routed = {(method, route.path) for route in app.routes for method in route.methods - {"HEAD", "OPTIONS"}}
    assert routed == {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS}
    documented = {(method.upper(), path) for path, item in openapi_document()["paths"].items()
                  for method in item if method != "parameters"}
    assert documented == routed - {("GET", "/")}
