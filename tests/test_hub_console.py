"""The hub console tells a regional admin which stores have gaps or reused sequence numbers."""

from __future__ import annotations

import httpx
import trio
from starlette.routing import Route

from hub.app import run_hub
from hub.console.app import build_console
from hub.console.context import Console
from hub.console.openapi import document
from hub.domains import domains
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import SUBJECT, publish, sale_event


async def test_stores_show_missing_and_reused_sequence_numbers(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    # seq 2 never arrives; seq 3 arrives twice under two different ids (a store whose disk was replaced)
    events = [sale_event(seq=1), sale_event(seq=3), sale_event(seq=3), sale_event(seq=4)]
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await publish(nats_server, [(SUBJECT, event.encode(), None) for event in events])

        async def four() -> bool:
            return len(await query(database_url, "SELECT 1 FROM sales")) == 4
        await wait_until(four)
        await sign_in_admin(http, hub.url, database_url)
        [store] = (await http.get(f"{hub.url}/api/stores")).json()
        assert (store["store"], store["sales"], store["last_seq"], store["missing"], store["reused"]) == \
            ("store-001", 4, 4, 1, 1)
        page = await http.get(f"{hub.url}/")
        script = await http.get(f"{hub.url}/static/console.js")  # the page's fleet section shows gaps and reuses
        assert "/static/console.js" in page.text and "Reused numbers (event id)" in script.text
        nursery.cancel_scope.cancel()


async def test_openapi_describes_every_console_api_route_with_its_bounds(
        hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        spec = (await http.get(f"{hub.url}/openapi.json")).json()
        nursery.cancel_scope.cancel()
    assert spec["openapi"].startswith("3.")
    assert {"/api/stores", "/api/sales", "/api/dead-letters", "/api/dead-letters/{id}/redrive", "/healthz"} <= \
        set(spec["paths"])
    [limit] = spec["paths"]["/api/sales"]["get"]["parameters"]
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)
    assert spec["paths"]["/api/dead-letters"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"]["properties"]["items"]["maxItems"] == 100
    assert "post" in spec["paths"]["/api/dead-letters/{id}/redrive"]


def test_every_console_route_is_in_openapi() -> None:
    """A domain adding a route without describing it fails here."""
    app = build_console(Console(None, None, frozenset()))  # type: ignore[arg-type]  # routes only, not served
    served = {route.path.replace("{id:int}", "{id}") for route in app.routes if isinstance(route, Route)} - {"/"}
    assert served == set(document(domains())["paths"]) | {"/openapi.json"}
