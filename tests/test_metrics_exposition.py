"""What Prometheus scrapes, as it scrapes it: a store's edge and the hub run as the processes systemd runs, one
sale goes through, and both /metrics pass `promtool check metrics` (Prometheus' own lint: `_total` on counters,
base units, no abbreviated units, help text) and carry the names the dashboards and alerts are built on
(docs: the README's metrics list). Then the cardinality bound: more sales, carts, KPI reports and events make
no new series on either side, and no label value is an id."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from edge.app import run_edge
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.adapters.nats import INGEST_CONSUMER
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_STREAM
from tests.conftest import wait_until
from tests.edges import printer_rule, start_edge, store_box
from tests.fleet import fleet_world
from tests.pos import COFFEE, MILK, sell
from tests.test_hub_process import HubProcess

PROMTOOL = shutil.which("promtool")
Series = frozenset[tuple[str, tuple[tuple[str, str], ...]]]

EDGE_NAMES = {
    "novapos_build_info", "novapos_edge_sales_completed_total", "novapos_edge_outbox_depth",
    "novapos_edge_events_forwarded_total", "novapos_edge_device_up", "novapos_edge_device_reconnects_total",
    "novapos_edge_print_queue_depth", "novapos_edge_checkout_seconds", "novapos_edge_checkout_taps",
    "novapos_edge_checkout_commit_seconds"}
HUB_NAMES = {
    "novapos_build_info", "novapos_hub_events_total", "novapos_hub_dead_letters_total",
    "novapos_hub_ingest_batch_seconds", "novapos_hub_jetstream_consumer_pending_messages",
    "novapos_hub_jetstream_consumer_ack_pending_messages", "novapos_hub_jetstream_consumer_redelivered_messages",
    "novapos_hub_jetstream_stream_messages", "novapos_hub_jetstream_stream_bytes", "novapos_hub_fleet_online",
    "novapos_hub_fleet_outbox_depth", "novapos_hub_fleet_oldest_unsent_age_seconds",
    "novapos_hub_store_event_delay_seconds"}
LABELS = {"tenant", "store", "till", "device", "kind", "error", "result", "outcome", "state", "stream", "consumer",
          "version", "le", "method", "how", "action", "call", "source", "currency", "operation", "reason", "why", "via",
          "direction", "offline", "use", "lease"}
"""Every label name either process may use: bounded sets, never an id (a sale, cart, cashier, customer, card)."""
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|[0-9]{6,}|@")
"""What an id looks like in a label value: a UUID, a long number, an e-mail address."""


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """family name -> {sorted labels: value} of every sample (histograms: their _bucket/_sum/_count samples)."""
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name  # the parser strips _total
        for sample in family.samples:
            families.setdefault(name, {})[(("__name__", sample.name), *sorted(sample.labels.items()))] = \
                sample.value
    return families


def series(texts: Iterable[str]) -> Series:
    return frozenset((name, labels) for text in texts for name, samples in parse(text).items() for labels in samples)


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def promtool(text: str) -> str:
    assert PROMTOOL is not None
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    return f"exit {checked.returncode}: {checked.stdout}{checked.stderr}".strip()


async def report_kpis(http: httpx.AsyncClient, edge_url: str, receipt: dict[str, object], latency_ms: int) -> None:
    answer = await http.post(f"{edge_url}/api/tills/till-1/kpis",
                             json={"cart": receipt["cart"], "latency_ms": latency_ms, "taps": 4})
    assert answer.status_code == 200 and answer.json()["recorded"], answer.text


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (`make tools` as root: Debian's prometheus)")
async def test_a_live_edge_and_hub_pass_promtool_with_the_names_the_dashboards_use(
        tmp_path, nats_server: EmbeddedNats, database_url: str, printer: MockNetworkPrinter,  # type: ignore[no-untyped-def]
        http: httpx.AsyncClient) -> None:
    hub = HubProcess(tmp_path, nats_server.url, database_url, nats_server.hub_credentials,
                     tls=nats_server.tls_settings())
    box = store_box(tmp_path, [printer_rule(printer.port)])
    edge = None
    try:
        async def hub_ready() -> bool:
            health = await trio.to_thread.run_sync(hub.health)
            return health is not None and health[0] == 200
        await wait_until(hub_ready, timeout=30)
        await fleet_world(database_url)  # the store provisioned, so that the hub keeps its health reports
        hub_url = f"http://127.0.0.1:{hub.port}"
        edge = await start_edge(box.config, nats_server, box.url, http)
        await report_kpis(http, box.url, await sell(http, box.url, [(COFFEE, 1), (MILK, 2)]), 1800)

        async def hub_sees_it() -> str | None:  # the sale applied, polled since (every 10 s), the store's report in
            text = (await http.get(f"{hub_url}/metrics")).text
            applied = value(text, "novapos_hub_events_total", result="applied") or 0
            polled = value(text, "novapos_hub_jetstream_stream_messages", stream=EVENTS_STREAM) == applied >= 1
            caught_up = value(text, "novapos_hub_jetstream_consumer_pending_messages", stream=EVENTS_STREAM,
                              consumer=INGEST_CONSUMER) == 0
            reported = value(text, "novapos_hub_fleet_online", tenant="demo", store="store-001") == 1
            return text if polled and caught_up and reported else None
        hub_text = await wait_until(hub_sees_it, timeout=40)
        edge_text = (await http.get(f"{box.url}/metrics")).text
    finally:
        if edge is not None:
            edge.terminate()
            edge.wait(15)
        assert hub.stop() == 0, hub.log

    assert promtool(edge_text) == "exit 0:"
    assert promtool(hub_text) == "exit 0:"
    edge_families, hub_families = parse(edge_text), parse(hub_text)
    assert EDGE_NAMES <= set(edge_families), EDGE_NAMES - set(edge_families)
    assert HUB_NAMES <= set(hub_families), HUB_NAMES - set(hub_families)
    assert not [name for name in edge_families if name.startswith("novapos_hub_")]  # each process its own
    assert not [name for name in hub_families if name.startswith("novapos_edge_")]
    for families in (edge_families, hub_families):
        assert not [name for name in families if name.endswith("_created")]  # no second series per counter
        build = families["novapos_build_info"]
        assert list(build.values()) == [1.0] and [key for key, _ in next(iter(build))] == ["__name__", "version"]

    # the edge's own series carry no tenant or store (its scrape target does), the hub's per-store ones do
    assert not [labels for samples in edge_families.values() for labels in samples
                if {"tenant", "store"} & {key for key, _ in labels}]
    assert value(edge_text, "novapos_edge_checkout_seconds_bucket", le="1.0") == 0
    assert value(edge_text, "novapos_edge_checkout_seconds_bucket", le="2.0") == 1  # the SLO's threshold
    assert value(edge_text, "novapos_edge_checkout_taps_bucket", le="5.0") == 1
    assert value(edge_text, "novapos_edge_checkout_commit_seconds_bucket", le="2.0") == 1
    assert value(edge_text, "novapos_edge_device_up", device="receipt-printer", kind="printer") == 1
    assert value(hub_text, "novapos_hub_jetstream_consumer_ack_pending_messages", stream=EVENTS_STREAM,
                 consumer=INGEST_CONSUMER) == 0  # applied, then acknowledged
    assert value(hub_text, "novapos_hub_dead_letters_total", tenant="demo") == 0  # there from the start


async def test_more_sales_make_no_new_series_and_no_label_is_an_id(
        store_config: StoreConfig, hub_config: HubConfig, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.ingest import jetstream
    monkeypatch.setattr(jetstream, "POLL_EVERY_S", 0.2)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)

        async def scrape() -> tuple[str, str]:
            return (await http.get(f"{edge.url}/metrics")).text, (await http.get(f"{hub.url}/metrics")).text

        async def sales(count: int) -> None:
            for number in range(count):
                receipt = await sell(http, edge.url, [(COFFEE, 1 + number), (MILK, 1)])
                await report_kpis(http, edge.url, receipt, 500 + 700 * number)  # across the buckets

        async def sent() -> bool:
            return value((await scrape())[0], "novapos_edge_outbox_depth") == 0

        async def applied() -> tuple[str, str] | None:  # polled after the last event reached the stream
            texts = await scrape()
            lag = [value(texts[1], f"novapos_hub_jetstream_consumer_{gauge}_messages", stream=EVENTS_STREAM,
                         consumer=INGEST_CONSUMER) for gauge in ("pending", "ack_pending")]
            return texts if lag == [0, 0] else None

        async def settled() -> tuple[str, str]:
            await wait_until(sent)
            await trio.sleep(3 * jetstream.POLL_EVERY_S)
            return await wait_until(applied)

        await sales(2)
        first = await settled()
        await sales(6)
        then = await settled()
        nursery.cancel_scope.cancel()

    before, after = series(first), series(then)
    assert after == before, sorted(after ^ before)
    assert value(then[0], "novapos_edge_sales_completed_total", till="till-1") == \
        (value(first[0], "novapos_edge_sales_completed_total", till="till-1") or 0) + 6  # the figures moved, not the series
    ours = [(name, labels) for name, labels in after if name.startswith("novapos_")]  # not the client's own
    names = {key for _, labels in ours for key, _ in labels} - {"__name__"}
    assert names <= LABELS, names - LABELS
    ids = [(name, labels) for name, labels in ours if any(ID.search(v) for k, v in labels if k not in ("__name__", "le"))]
    assert not ids, ids
