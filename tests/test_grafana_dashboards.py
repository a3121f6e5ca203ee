"""The Grafana dashboards of configs/grafana: well formed, and every query they make answers with data from a real
Prometheus (Debian's `prometheus`) that scrapes a running `novapos demo` (its hub and its store box, over HTTPS with
the demo's CA) with the shipped scrape config and rules."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml

from mocks.control import send_command
from novapos.demo.processes import free_port
from novapos.demo.provision import DEMO_USERS
from tests.demo_process import start_demo
from tests.pos import COFFEE

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "configs" / "grafana"
PROMETHEUS = ROOT / "configs" / "prometheus"
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted(GRAFANA.glob("*.json"))}
BUILTIN = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
"""Grafana's own variables, as the live test sets them: the test's whole run fits in the hour."""
DEMO = {"tenant": "demo", "store": "store-001", "instance": ".*"}
"""The dashboards' variables on the demo: its one tenant and store, every hub process."""
METRIC = re.compile(r"\b(novapos_[a-z0-9_]+|up)\b(?!\s*\()")


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel or variable, PromQL) for every query the dashboards make, variables' included: a
    `label_values(SELECTOR, LABEL)` variable is the query `count by (LABEL) (SELECTOR)`."""
    found = []
    for name, board in DASHBOARDS.items():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"]).groups()  # type: ignore[union-attr]
                found.append((name, f"variable {variable['name']}", f"count by ({label}) ({selector})"))
        found += [(name, panel["title"], target["expr"]) for panel in _panels(board)
                  for target in panel.get("targets", [])]
    return found


def _concrete(expr: str) -> str:
    return re.sub(r"\$(\w+)", lambda m: {**BUILTIN, **DEMO}[m[1]], expr)


def test_the_five_dashboards_are_there_and_well_formed() -> None:
    assert sorted(DASHBOARDS) == ["checkout", "devices", "fleet", "hub-ingest", "store"]
    assert len({board["uid"] for board in DASHBOARDS.values()}) == len(DASHBOARDS)
    for name, board in DASHBOARDS.items():
        variables = {variable["name"] for variable in board["templating"]["list"]}
        assert "datasource" in variables, name
        cells: set[tuple[int, int]] = set()
        ids = [panel["id"] for panel in _panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in _panels(board):
            where = f"{name}: {panel['title']}"
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24, where
            area = {(x, y) for x in range(position["x"], position["x"] + position["w"])
                    for y in range(position["y"], position["y"] + position["h"])}
            assert not area & cells, f"{where} overlaps another panel"
            cells |= area
            if panel["type"] == "row":
                continue
            assert panel["description"] and panel["targets"], where
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            for target in panel["targets"]:
                used = set(re.findall(r"\$(\w+)", target["expr"])) - set(BUILTIN)
                assert used <= variables, f"{where}: {used - variables} not defined"
    # the checkout dashboard: the SLI (the box's completion time) and the KPIs (taps, the web till's scan to done),
    # each at p50 and p95; everything measured against 2 s (the SLO) is the SLI, never people's time
    exprs = [target["expr"] for panel in _panels(DASHBOARDS["checkout"]) for target in panel.get("targets", [])]
    checkout = " ".join(exprs)
    for metric in ("novapos_edge_checkout_commit_seconds_bucket", "novapos_edge_checkout_taps_bucket"):
        for quantile in ("0.5", "0.95"):
            assert f"histogram_quantile({quantile}, sum by (le) (rate({metric}" in checkout
    for quantile in ("0.5", "0.95"):
        assert f"histogram_quantile({quantile}, sum by (tenant, store, le) (rate(novapos_edge_checkout_seconds_bucket" \
            in checkout
    slo = [expr for expr in exprs if 'le="2.0"' in expr or "checkout_slow" in expr]
    assert slo and all("novapos_edge_checkout_seconds" not in expr for expr in slo), slo


def _wait(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not in {timeout:.0f} s"
        time.sleep(0.25)
    return result


class Demo:
    """`novapos demo` on free ports, as a user runs it, with what a test needs to drive it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        started = start_demo(state)
        self.process, self.till_port, self.console_port = started.process, started.till_port, started.console_port
        banner = started.banner()
        self.nats_url = re.search(r"NATS\s+(tls://\S+)", banner)[1]  # type: ignore[index]
        self.ca_file = state / "tls" / "ca.pem"  # the demo's local CA: its HTTPS and NATS certificates
        self.tls = ssl.create_default_context(cafile=self.ca_file)
        self.till = httpx.Client(base_url=f"https://127.0.0.1:{self.till_port}", timeout=10, verify=self.tls)

    def stop(self) -> None:
        self.till.close()
        self.process.send_signal(signal.SIGINT)
        self.process.communicate(timeout=60)

    def mock(self, *words: str) -> None:
        ok, message = send_command(self.state / "mock.sock", list(words))
        assert ok, message

    def sell(self) -> None:
        """A cash sale at till-1, its coffee scanned on the HID scanner, and the web till's report of its checkout
        figures (1.2 s, 4 taps)."""
        self.mock("scan", "scanner-1", COFFEE)
        state = _wait(lambda: (answer := self.till.get("/api/tills/till-1").json())["lines"] and answer,
                      "the scan in the cart", 15)
        assert self.till.post("/api/tills/till-1/tenders", json={"amount_minor": 500}).status_code == 200
        done = self.till.post("/api/tills/till-1/complete", json={"cart": state["cart"]})
        assert done.status_code == 200, done.text
        report = self.till.post("/api/tills/till-1/kpis", json={"cart": state["cart"], "latency_ms": 1200, "taps": 4})
        assert report.json() == {"recorded": True}, report.text

    def dead_letter(self) -> None:
        """An event the hub cannot read, published on the store's subjects (with the hub's NATS user)."""
        async def publish() -> None:
            client = await nats.connect(self.nats_url, tls=self.tls,
                                        nkeys_seed=str(self.state / "credentials" / "hub.seed"))
            await client.jetstream().publish("novapos.demo.store-001.evt.sale.completed", b"not msgpack")
            await client.close()
        asyncio.run(publish())


class Prometheus:
    """/usr/bin/prometheus with the shipped prometheus.yml and rules, the demo's hub and store box as its targets."""

    def __init__(self, folder: Path, demo: Demo) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: `make test` installs it (apt-get install prometheus)"
        folder.mkdir()
        for rules in PROMETHEUS.glob("*.rules.yml"):
            shutil.copy(rules, folder)
        config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="2s", scrape_timeout="2s", evaluation_interval="1s")
        for job in config["scrape_configs"]:  # as shipped (HTTPS), with the demo's CA
            assert job["scheme"] == "https"
            job["tls_config"]["ca_file"] = str(demo.ca_file)
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        (folder / "hubs.yml").write_text(yaml.safe_dump([{"targets": [f"127.0.0.1:{demo.console_port}"]}]))
        (folder / "stores.yml").write_text(yaml.safe_dump([{"targets": [f"127.0.0.1:{demo.till_port}"],
                                                            "labels": {"tenant": "demo", "store": "store-001"}}]))
        port = free_port()
        self.log = (folder / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=self.log, stderr=subprocess.STDOUT)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def ready() -> bool:
            try:
                return self.api.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False
        _wait(ready, "Prometheus ready", 30)

    def stop(self) -> None:
        self.api.close()
        self.process.terminate()
        self.process.wait(30)
        self.log.close()

    def get(self, path: str, **params: str) -> Any:
        answer = self.api.get(f"/api/v1/{path}", params=params).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def answers(self, query: str) -> Callable[[], list[Any]]:
        """A condition for _wait: the query's result (empty: not yet)."""
        return lambda: self.get("query", query=query)["result"]

    def scrapes(self, count: int = 3) -> None:
        """Wait for `count` more scrapes of every target (and as many rule evaluations)."""
        def last() -> list[str]:
            return [target["lastScrape"] for target in self.get("targets")["activeTargets"]]
        def after(seen: list[str]) -> Callable[[], bool]:
            return lambda: all(now != then for now, then in zip(last(), seen, strict=True))
        for _ in range(count):
            _wait(after(last()), "a scrape", 15)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "demo")
    try:
        yield running
    finally:
        running.stop()


def test_every_dashboard_query_answers_from_a_real_prometheus_scraping_the_demo(tmp_path: Path, demo: Demo) -> None:
    prometheus = Prometheus(tmp_path / "prometheus", demo)
    try:
        _wait(lambda: [t["health"] for t in prometheus.get("targets")["activeTargets"]] == ["up", "up"],
              "the hub and the store box scraped over HTTPS", 30)
        cashier = next(user for user in DEMO_USERS if user.pin is not None)
        _wait(lambda: demo.till.post("/api/tills/till-1/login",
                                     json={"login": cashier.login, "pin": cashier.pin}).status_code == 200,
              "the cashier logged in (the staff list reached the store)")
        # Two rounds of everything a dashboard shows, scrapes between them: a labelled counter appears at its
        # first increment, and rate() needs the second one.
        for lap in (1, 2):
            demo.sell()
            demo.dead_letter()
            demo.mock("unplug", "receipt-printer")
            lost = f'sum(novapos_edge_device_errors_total{{device="receipt-printer"}}) >= {lap}'
            _wait(prometheus.answers(lost), "the printer seen lost", 30)
            demo.mock("plug", "receipt-printer")
            _wait(prometheus.answers('novapos_edge_device_up{device="receipt-printer"} == 1'), "the printer seen up")
            prometheus.scrapes()

        known = set(prometheus.get("metadata")) | {"up"}
        empty, unknown = [], []
        for board, panel, expr in _queries():
            names = {re.sub(r"_(bucket|count|sum)$", "", name) for name in METRIC.findall(expr)}
            unknown += [f"{board} / {panel}: {name}" for name in names - known]
            if not prometheus.get("query", query=_concrete(expr))["result"]:
                empty.append(f"{board} / {panel}: {_concrete(expr)}")
        assert unknown == [], "metrics no target exports"
        assert empty == [], "queries without data"

        # the shipped rules evaluate without error on the real figures, and the only alert is the dead letters'
        rules = [rule for group in prometheus.get("rules")["groups"] for rule in group["rules"]]
        assert {(rule["name"], rule["health"], rule.get("lastError", "")) for rule in rules} == {
            (rule["name"], "ok", "") for rule in rules}
        alerts = {(alert["labels"]["alertname"], alert["state"]) for alert in prometheus.get("alerts")["alerts"]}
        assert alerts == {("NovaPosDeadLetters", "firing")}
    finally:
        prometheus.stop()
