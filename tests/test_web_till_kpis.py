"""Checkout KPIs (P0-04): what the page reports lands in /metrics once, bounded; the edge times its commits."""

from __future__ import annotations

import re

import httpx
import trio

from edge.app import run_edge
from novapos.config import StoreConfig
from tests.pos import COFFEE, MILK, log_in, sell


def sample(metrics: str, name: str) -> float:
    """One unlabelled sample of /metrics text (0 when absent): the store's tenant and store come from its scrape
    target, never from the edge's own labels."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def bucket(metrics: str, name: str, le: str) -> float:
    match = re.search(rf'^{re.escape(name)}_bucket\{{le="{re.escape(le)}"\}} (\S+)$', metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_sales_figures_are_recorded_once_and_absurd_ones_refused(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        kpis = f"{edge.url}/api/tills/till-1/kpis"
        before = (await http.get(f"{edge.url}/metrics")).text
        receipt = await sell(http, edge.url, [(COFFEE, 1), (MILK, 1)])
        cart = receipt["cart"]

        refused = {
            "taps 0": {"cart": cart, "latency_ms": 4000, "taps": 0},
            "taps 501": {"cart": cart, "latency_ms": 4000, "taps": 501},
            "latency as text": {"cart": cart, "latency_ms": "4000", "taps": 4},
            "negative latency": {"cart": cart, "latency_ms": -1, "taps": 4},
            "a day": {"cart": cart, "latency_ms": 86_400_000, "taps": 4},
            "longer than the cart lived": {"cart": cart, "latency_ms": 3_000_000, "taps": 4},
            "not a cart": {"cart": "nope", "latency_ms": 4000, "taps": 4},
            "a cart never sold": {"cart": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "latency_ms": 4000, "taps": 4},
        }
        for label, body in refused.items():
            response = await http.post(kpis, json=body)
            assert response.status_code in (409, 422), (label, response.status_code, response.text)
            assert response.json()["error"], label
        assert "longer than the cart existed" in (await http.post(kpis, json=refused["longer than the cart lived"])).text
        await log_in(http, edge.url, "till-2", "bob")
        elsewhere = await http.post(f"{edge.url}/api/tills/till-2/kpis", json={"cart": cart, "latency_ms": 10, "taps": 4})
        assert elsewhere.status_code == 409 and "not a sale completed at this till" in elsewhere.json()["error"]

        first = await http.post(kpis, json={"cart": cart, "latency_ms": 4000, "taps": 4})
        assert first.status_code == 200 and first.json() == {"recorded": True}
        again = await http.post(kpis, json={"cart": cart, "latency_ms": 0, "taps": 9})  # a resend counts once
        assert again.status_code == 200 and again.json()["recorded"] is False

        after = (await http.get(f"{edge.url}/metrics")).text
        delta = {name: round(sample(after, name) - sample(before, name), 6) for name in (
            "novapos_edge_checkout_seconds_count", "novapos_edge_checkout_seconds_sum",
            "novapos_edge_checkout_taps_count", "novapos_edge_checkout_taps_sum",
            "novapos_edge_checkout_commit_seconds_count")}  # rounded: earlier tests' sums are not whole seconds
        assert delta == {"novapos_edge_checkout_seconds_count": 1, "novapos_edge_checkout_seconds_sum": 4,
                         "novapos_edge_checkout_taps_count": 1, "novapos_edge_checkout_taps_sum": 4,
                         "novapos_edge_checkout_commit_seconds_count": 1}, delta
        assert bucket(after, "novapos_edge_checkout_taps", "4.0") - \
            bucket(before, "novapos_edge_checkout_taps", "4.0") == 1
        commit_sum = sample(after, "novapos_edge_checkout_commit_seconds_sum") - \
            sample(before, "novapos_edge_checkout_commit_seconds_sum")
        assert 0 < commit_sum < 5
        ours = [line for line in after.splitlines() if line.startswith("novapos_edge_checkout")]
        assert ours and not [line for line in ours if "till" in line or cart in line or "store" in line
                             or "tenant" in line]  # no labels but the buckets' le
        assert [bucket(after, "novapos_edge_checkout_seconds", le) - bucket(before, "novapos_edge_checkout_seconds", le)
                for le in ("2.0", "3.0", "5.0")] == [0, 0, 1]  # 4 s: above the SLO's 2 s bucket
        assert "novapos_edge_checkout_commit_seconds_bucket{le=\"2.0\"}" in after  # the SLO's threshold is a bucket
        refused_completion = await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": cart[:-1] + ("1" if cart.endswith("0") else "0")})  # not the sold cart
        assert refused_completion.status_code in (409, 422)
        last = (await http.get(f"{edge.url}/metrics")).text
        assert sample(last, "novapos_edge_checkout_commit_seconds_count") == \
            sample(after, "novapos_edge_checkout_commit_seconds_count")  # a refusal is not timed
        nursery.cancel_scope.cancel()
