"""The catalog upload against a real hub and PostgreSQL: a CSV far past the door's 64 KiB is taken from a tenant
admin only, imported as a job whose progress ends at every row, recorded in the audit chain; what the door and
the route refuse (no session, no CSRF token, the wrong role, the wrong type, nothing, past 50 MiB, another
tenant's job) changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import trio

from hub.app import run_hub
from hub.catalog.uploads import MAX_UPLOAD_BYTES
from novapos.config import HubConfig
from tests.conftest import query, wait_until
from tests.identity import PASSWORD, add_user, grant, signed_in
from tests.stock_world import build_world

ROWS = 4000
HEADER = b"product,product_name,tax_class,attributes,sku,barcodes,price,price_overrides\n"


def _csv(rows: int, prefix: str = "up") -> bytes:
    return HEADER + b"".join(f"{prefix}-{n},Uploaded product {n},std,,{prefix.upper()}-{n},,2.{n % 100:02d},\n".encode()
                             for n in range(rows))


async def _chunks(total: int) -> AsyncIterator[bytes]:
    """A body sent without a Content-Length, a MiB at a time: the door can only count it as it arrives."""
    chunk = b"x" * (1024 * 1024)
    for _ in range(total // len(chunk)):
        yield chunk


async def test_a_large_csv_is_uploaded_imported_with_progress_and_audited(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    data = _csv(ROWS)
    assert len(data) > 3 * 64 * 1024
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "nora", grant("regional_admin", "north"))
        await add_user(url, "mona", grant("store_manager", "store-001"))
        await add_user(url, "sam", grant("supervisor", "store-001"))
        await add_user(url, "carl", grant("cashier", "store-001"))
        await add_user(url, "olga", grant("tenant_admin"), tenant="other")
        csv = {"content-type": "text/csv"}
        async with signed_in(hub.url, "ada") as ada:
            taken = await ada.post("/api/catalog/imports", params={"name": "spring catalog.csv"}, content=data,
                                   headers=csv)
            assert taken.status_code == 202, taken.text
            job = taken.json()
            assert (job["state"], job["rows_total"], job["size_bytes"], job["name"]) == ("queued", ROWS, len(data),
                                                                                "spring catalog.csv")

            async def finished() -> dict[str, object] | None:
                answer = (await ada.get(f"/api/catalog/imports/{job['id']}")).json()
                return answer if answer["state"] in ("done", "failed") else None
            done = await wait_until(finished, timeout=60)
            assert done["state"] == "done" and done["rows_done"] == done["rows_total"] == ROWS, done
            assert (done["landed"], done["refused"], done["errors"]) == (ROWS, 0, []), done

            # two at once: the second waits for its turn, told so
            answers = [await ada.post("/api/catalog/imports", content=data, headers=csv) for _ in range(2)]
            assert [answer.status_code for answer in answers] == [202, 429], [a.text for a in answers]
            assert "running" in answers[1].json()["error"]
            await wait_until(lambda: _state(ada, answers[0].json()["id"], "done"), timeout=120)

            malformed = await ada.post("/api/catalog/imports", content=b"not,a,catalog\n1,2,3\n", headers=csv)
            failed = await wait_until(lambda: _state(ada, malformed.json()["id"], "failed"))
            assert "refused whole, nothing changed" in failed["step"] and "column" in failed["step"], failed

            named = await ada.post("/api/catalog/imports", params={"name": "evil\u202ename.csv"}, content=data,
                                   headers=csv)
            assert named.status_code == 422 and "name" in named.json()["error"]
            empty = await ada.post("/api/catalog/imports", content=b"", headers=csv)
            assert empty.status_code == 422 and "empty" in empty.json()["error"]
            as_json = await ada.post("/api/catalog/imports", json={"csv": "product"})
            assert as_json.status_code == 415 and "text/csv" in as_json.json()["error"]
            huge = await ada.post("/api/catalog/imports", content=_chunks(MAX_UPLOAD_BYTES + 1024 * 1024), headers=csv)
            assert huge.status_code == 413 and "too large" in huge.json()["error"], huge.text
            try:  # refused on its Content-Length: the server may close before the client has sent it all
                declared = await ada.post("/api/catalog/imports", content=b"x" * (MAX_UPLOAD_BYTES + 1), headers=csv)
                assert declared.status_code == 413
            except httpx.TransportError:
                pass
            forged = await ada.post("/api/catalog/imports", content=data, headers={**csv, "x-csrf-token": "guess"})
            assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
            elsewhere = await ada.post("/api/catalog/products", content=data, headers=csv)
            assert elsewhere.status_code in (405, 413)  # the larger bound is this one path's

        for login in ("nora", "mona", "sam"):  # a regional admin, a store manager, a supervisor
            async with signed_in(hub.url, login) as someone:
                refused = await someone.post("/api/catalog/imports", content=_csv(3, login), headers=csv)
                assert refused.status_code == 403 and "tenant admin" in refused.json()["error"], refused.text
                assert (await someone.get(f"/api/catalog/imports/{job['id']}")).status_code == 403
        async with signed_in(hub.url, "olga") as olga:
            hidden = await olga.get(f"/api/catalog/imports/{job['id']}")
            assert hidden.status_code == 404 and "no import" in hidden.json()["error"]
        async with httpx.AsyncClient(base_url=hub.url, timeout=10) as anonymous:
            cashier = await anonymous.post("/api/login", json={"login": "carl", "password": PASSWORD})
            assert cashier.status_code == 403  # a cashier has no console session to upload with
            refused_upload = await anonymous.post("/api/catalog/imports", content=data,
                                                  headers={**csv, "connection": "close"})  # refused unread: not reused
            assert refused_upload.status_code == 401
            assert (await anonymous.get(f"/api/catalog/imports/{job['id']}")).status_code == 401
        nursery.cancel_scope.cancel()

    assert (await query(url, "SELECT count(*) AS n FROM variants WHERE sku LIKE 'UP-%'"))[0]["n"] == ROWS
    assert (await query(url, "SELECT count(*) AS n FROM variants WHERE sku SIMILAR TO '(NORA|MONA|SAM)-%'"))[0]["n"] == 0
    audited = await query(url, "SELECT actor, target, details->>'rows' AS rows, details->>'refused' AS refused"
                               " FROM audit_records WHERE action = 'catalog.imported' ORDER BY seq")
    assert [(row["actor"], row["target"], row["rows"], row["refused"]) for row in audited] == [
        ("ada", "spring catalog.csv", str(ROWS), "0"), ("ada", None, str(ROWS), "0")], audited  # the named, the busy


async def _state(client: httpx.AsyncClient, job: int, state: str) -> dict[str, object] | None:
    answer = (await client.get(f"/api/catalog/imports/{job}")).json()
    return answer if answer["state"] == state else None
