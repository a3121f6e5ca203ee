"""Every console action against every role, on one real hub (PostgreSQL and NATS): who is let in, who is
refused and with which status, and that a refusal changed nothing.

The world (tests/stock_world.py): tenant demo with regions north (store-001, store-002, warehouse wh-north) and
south (store-003), and tenant other (region west, store o-1). The roles: a tenant admin of demo, a regional
admin of north, a store manager and a supervisor of store-001, a cashier of store-001 (who cannot sign in to
the console, so is anonymous to it), an anonymous client, and the tenant admin again with a forged change
(no CSRF header). Ids of another region are 403; ids of another tenant are answered as ids that do not exist
(404 in a URL or a query, the field's 422 in a body), so a console user learns nothing of other tenants.

To add a route: add its rows to ACTIONS (and to FRESH if each request needs a new item); the guard test
fails until every /api route of the built console is in the table or in ELSEWHERE.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from starlette.routing import Route

from hub.app import run_hub
from hub.console.app import build_console
from hub.console.context import Console
from hub.console.openapi import SIGN_IN, document
from hub.domains import domains
from novapos.adapters.http import STATE_CHANGING
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import PASSWORD, add_user, grant, signed_in
from tests.stock_world import build_world

ADMIN, NORTH, MANAGER, SUPERVISOR, CASHIER, ANONYMOUS, FORGED = (
    "ada", "nora", "mona", "sam", "carl", "anonymous", "forged")
SIGNED_IN = (ADMIN, NORTH, MANAGER, SUPERVISOR)
ROLES = (*SIGNED_IN, CASHIER, ANONYMOUS, FORGED)


def by(admin: int, north: int, manager: int, supervisor: int) -> dict[str, int]:
    """The statuses of the four signed-in roles; the cashier and anonymous get 401 everywhere, and a forged
    change (the admin's session without its CSRF header) 403 (a read: what the admin gets)."""
    return {ADMIN: admin, NORTH: north, MANAGER: manager, SUPERVISOR: supervisor, CASHIER: 401, ANONYMOUS: 401}


EVERYONE = by(200, 200, 200, 200)
NO_TENANT = by(404, 404, 404, 404)
TENANT_WIDE = by(200, 403, 403, 403)
IN_NORTH = by(200, 200, 403, 403)
AT_STORE_001 = by(200, 200, 200, 403)
PRICE_SETTERS_REFUSE = by(422, 422, 403, 403)
STOCK_ADJUSTERS_REFUSE = by(422, 422, 422, 403)


@dataclass(frozen=True)
class Action:
    method: str
    path: str
    """The route as the console declares it."""
    url: str
    """What is requested: ids filled in, a query; `{id}` is a FRESH item made for each request."""
    expect: Mapping[str, int]
    body: Mapping[str, Any] | None = None
    fresh: str | None = None
    """A FRESH maker's name: `{id}` in the url becomes a new item's id, made just before the request."""
    note: str = field(default="", compare=False)


def _stock(path: str, expect: Mapping[str, int], **body: Any) -> Action:
    return Action("POST", path, path, expect, {"sku": "COF-250", **body})


LOYALTY_PROGRAM = {"point_value_minor": 1, "earn_points_per_unit": 1, "earn_unit_minor": 100,
                   "earn_per_order_points": 0, "earn_bonuses": [],
                   "tiers": [{"name": "Member", "min_spend_minor": 0, "multiplier_ppm": 1_000_000}],
                   "expiry_months": 12, "notice_days": 30, "offline_store_budget_points": 100,
                   "offline_customer_cap_points": 10}


def _new_user(role: str, **where: str) -> dict[str, Any]:
    return {"login": "new-{role}-" + role + "-" + "-".join(where.values()), "name": "New", "password": PASSWORD,
            "roles": [{"role": role, **where}]}


ADJUST = {"quantity": 1, "reason": "counted"}
ACTIONS: tuple[Action, ...] = (
    # the console's own session
    Action("GET", "/api/session", "/api/session", EVERYONE),
    # catalog reads: catalog.view anywhere; another tenant's tenant or product is not found
    Action("GET", "/api/catalog/products", "/api/catalog/products", EVERYONE),
    Action("GET", "/api/catalog/products", "/api/catalog/products?tenant=other", NO_TENANT),
    Action("GET", "/api/catalog/products/{id}", "/api/catalog/products/coffee", EVERYONE),
    Action("GET", "/api/catalog/products/{id}", "/api/catalog/products/thing", NO_TENANT, note="other's product"),
    Action("GET", "/api/catalog/tax-classes", "/api/catalog/tax-classes", EVERYONE),
    Action("GET", "/api/catalog/settings", "/api/catalog/settings", EVERYONE),
    Action("GET", "/api/catalog/settings", "/api/catalog/settings?tenant=other", NO_TENANT),
    # catalog edits: catalog.edit across the tenant
    Action("POST", "/api/catalog/product-changes", "/api/catalog/product-changes", TENANT_WIDE,
           {"product": "coffee", "name": "Coffee", "tax_class": "std"}),
    Action("POST", "/api/catalog/product-changes", "/api/catalog/product-changes", by(404, 403, 403, 403),
           {"tenant": "other", "product": "thing", "name": "Thing", "tax_class": "std"}),
    Action("POST", "/api/catalog/barcode-changes", "/api/catalog/barcode-changes", TENANT_WIDE,
           {"sku": "COF-250", "barcodes": ["COF250"]}),
    Action("POST", "/api/catalog/tax-class-changes", "/api/catalog/tax-class-changes", TENANT_WIDE,
           {"tax_class": "std", "name": "Standard", "rates": [{"region": "north", "rate_ppm": 200_000}]}),
    Action("POST", "/api/catalog/settings-changes", "/api/catalog/settings-changes", TENANT_WIDE,
           {"prices_include_tax": True}),
    # prices: prices.set covering the price's scope
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", TENANT_WIDE,
           {"sku": "COF-250", "amount_minor": 500}),
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", IN_NORTH,
           {"sku": "COF-250", "amount_minor": 510, "scope": "region", "scope_id": "north"}),
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", TENANT_WIDE,
           {"sku": "COF-250", "amount_minor": 520, "scope": "region", "scope_id": "south"}),
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", IN_NORTH,
           {"sku": "COF-250", "amount_minor": 530, "scope": "store", "scope_id": "store-001"}),
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", TENANT_WIDE,
           {"sku": "COF-250", "amount_minor": 540, "scope": "store", "scope_id": "store-003"}),
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", PRICE_SETTERS_REFUSE,
           {"sku": "COF-250", "amount_minor": 550, "scope": "store", "scope_id": "o-1"}, note="other's store"),
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", PRICE_SETTERS_REFUSE,
           {"sku": "COF-250", "amount_minor": 560, "scope": "region", "scope_id": "west"}, note="other's region"),
    Action("POST", "/api/catalog/price-changes", "/api/catalog/price-changes", by(404, 404, 403, 403),
           {"tenant": "other", "sku": "OTH-1", "amount_minor": 570, "scope": "store", "scope_id": "o-1"}),
    # stock reads: stock.view, narrowed to the locations in reach
    Action("GET", "/api/stock", "/api/stock", EVERYONE),
    Action("GET", "/api/stock", "/api/stock?location=s1-floor", EVERYONE),
    Action("GET", "/api/stock", "/api/stock?location=s3-floor", TENANT_WIDE),
    Action("GET", "/api/stock", "/api/stock?location=wh-north", IN_NORTH),
    Action("GET", "/api/stock", "/api/stock?location=o1-floor", NO_TENANT),
    Action("GET", "/api/stock", "/api/stock?tenant=other", NO_TENANT),
    Action("GET", "/api/stock/movements", "/api/stock/movements", EVERYONE),
    Action("GET", "/api/stock/movements", "/api/stock/movements?location=s3-floor", TENANT_WIDE),
    Action("GET", "/api/stock/low", "/api/stock/low", EVERYONE),
    Action("GET", "/api/stock/low", "/api/stock/low?tenant=other", NO_TENANT),
    # stock changes: stock.adjust at every location touched; an adjustment needs a reason
    _stock("/api/stock/adjustments", AT_STORE_001, location="s1-floor", **ADJUST),
    _stock("/api/stock/adjustments", TENANT_WIDE, location="s3-floor", **ADJUST),
    _stock("/api/stock/adjustments", IN_NORTH, location="wh-north", **ADJUST),
    _stock("/api/stock/adjustments", STOCK_ADJUSTERS_REFUSE, location="o1-floor", **ADJUST),
    _stock("/api/stock/adjustments", STOCK_ADJUSTERS_REFUSE, location="s1-floor", quantity=1),
    _stock("/api/stock/adjustments", by(404, 404, 404, 403), location="o1-floor", tenant="other", **ADJUST),
    _stock("/api/stock/receipts", AT_STORE_001, location="s1-floor", quantity=1),
    _stock("/api/stock/receipts", TENANT_WIDE, location="s3-floor", quantity=1),
    _stock("/api/stock/returns", IN_NORTH, location="s2-floor", quantity=1),
    _stock("/api/stock/transfers", AT_STORE_001, quantity=1, **{"from": "s1-floor", "to": "s1-back"}),
    _stock("/api/stock/transfers", TENANT_WIDE, quantity=1, **{"from": "s1-floor", "to": "s3-floor"}),
    _stock("/api/stock/reservations", AT_STORE_001, location="s1-floor", quantity=1, expires_in_s=600),
    _stock("/api/stock/reservations", TENANT_WIDE, location="s3-floor", quantity=1, expires_in_s=600),
    Action("POST", "/api/stock/reservations/{id}/release", "/api/stock/reservations/{id}/release", AT_STORE_001,
           {}, fresh="reservation at s1-floor"),
    Action("POST", "/api/stock/reservations/{id}/release", "/api/stock/reservations/{id}/release", TENANT_WIDE,
           {}, fresh="reservation at s3-floor"),
    Action("POST", "/api/stock/reservations/{id}/release", "/api/stock/reservations/{id}/release",
           by(404, 404, 404, 403), {}, fresh="reservation of other"),
    _stock("/api/stock/thresholds", AT_STORE_001, location="s1-floor", threshold=5),
    _stock("/api/stock/thresholds", IN_NORTH, location="wh-north", threshold=5),
    # ingest: dead letters of the stores in reach; a re-drive at the letter's store
    Action("GET", "/api/dead-letters", "/api/dead-letters", IN_NORTH),
    Action("POST", "/api/dead-letters/{id}/redrive", "/api/dead-letters/{id}/redrive", IN_NORTH, {},
           fresh="dead letter of store-001"),
    Action("POST", "/api/dead-letters/{id}/redrive", "/api/dead-letters/{id}/redrive", TENANT_WIDE, {},
           fresh="dead letter of store-003"),
    Action("POST", "/api/dead-letters/{id}/redrive", "/api/dead-letters/{id}/redrive", by(404, 404, 403, 403), {},
           fresh="dead letter of o-1"),
    Action("GET", "/api/sequence-issues", "/api/sequence-issues", EVERYONE),
    # fleet (hub/fleet): fleet.view, the stores in reach
    Action("GET", "/api/fleet", "/api/fleet", EVERYONE),
    Action("GET", "/api/fleet", "/api/fleet?tenant=other", NO_TENANT),
    Action("GET", "/api/fleet/{store}", "/api/fleet/store-001", EVERYONE),
    Action("GET", "/api/fleet/{store}", "/api/fleet/store-003", TENANT_WIDE),
    Action("GET", "/api/fleet/{store}", "/api/fleet/o-1", NO_TENANT, note="other's store"),
    # audit (hub/audit): audit.view, records of the stores in reach; audit.verify, the whole tenant's chain
    Action("GET", "/api/audit", "/api/audit", by(200, 200, 200, 403)),
    Action("GET", "/api/audit", "/api/audit?tenant=other", by(404, 404, 404, 403)),
    Action("GET", "/api/audit", "/api/audit?store=store-001", by(200, 200, 200, 403)),
    Action("GET", "/api/audit", "/api/audit?store=store-003", by(200, 403, 403, 403), note="south's store"),
    Action("GET", "/api/audit", "/api/audit?store=o-1", by(404, 404, 404, 403), note="other's store"),
    Action("GET", "/api/audit/verify", "/api/audit/verify", by(200, 200, 403, 403)),
    Action("GET", "/api/audit/verify", "/api/audit/verify?tenant=other", by(404, 404, 403, 403)),
    # sales and orders: sales.view, narrowed to the stores in reach
    Action("GET", "/api/stores", "/api/stores", EVERYONE),
    Action("GET", "/api/sales", "/api/sales", EVERYONE),
    Action("GET", "/api/price-diffs", "/api/price-diffs", EVERYONE),
    Action("GET", "/api/orders", "/api/orders", EVERYONE),
    Action("GET", "/api/orders", "/api/orders?tenant=other", NO_TENANT),
    Action("GET", "/api/orders", "/api/orders?store=store-001&till=till-1", EVERYONE),
    Action("GET", "/api/orders", "/api/orders?store=store-002", IN_NORTH),
    Action("GET", "/api/orders", "/api/orders?store=store-003", TENANT_WIDE),
    Action("GET", "/api/orders", "/api/orders?store=o-1", NO_TENANT, note="other's store"),
    Action("GET", "/api/orders/{id}", "/api/orders/{id}", EVERYONE, fresh="sale of store-001"),
    Action("GET", "/api/orders/{id}", "/api/orders/{id}", TENANT_WIDE, fresh="sale of store-003"),
    Action("GET", "/api/orders/{id}", "/api/orders/{id}", NO_TENANT, fresh="sale of o-1"),
    # drawer sessions (hub/cash): sales.view, store scope
    Action("GET", "/api/drawer-sessions", "/api/drawer-sessions", EVERYONE),
    Action("GET", "/api/drawer-sessions", "/api/drawer-sessions?tenant=other", NO_TENANT),
    Action("GET", "/api/drawer-sessions", "/api/drawer-sessions?store=store-001&day=2026-12-01", EVERYONE),
    Action("GET", "/api/drawer-sessions", "/api/drawer-sessions?store=store-002", IN_NORTH),
    Action("GET", "/api/drawer-sessions", "/api/drawer-sessions?store=store-003", TENANT_WIDE),
    Action("GET", "/api/drawer-sessions", "/api/drawer-sessions?store=o-1", NO_TENANT, note="other's store"),
    Action("GET", "/api/drawer-sessions/{id}", "/api/drawer-sessions/{id}", EVERYONE,
           fresh="drawer session of store-001"),
    Action("GET", "/api/drawer-sessions/{id}", "/api/drawer-sessions/{id}", TENANT_WIDE,
           fresh="drawer session of store-003"),
    Action("GET", "/api/drawer-sessions/{id}", "/api/drawer-sessions/{id}", NO_TENANT, fresh="drawer session of o-1"),
    # returns (hub/returns): sales.view, narrowed to the stores in reach
    Action("GET", "/api/returns", "/api/returns", EVERYONE),
    Action("GET", "/api/returns", "/api/returns?tenant=other", NO_TENANT),
    Action("GET", "/api/returns", "/api/returns?store=store-001", EVERYONE),
    Action("GET", "/api/returns", "/api/returns?store=store-002", IN_NORTH),
    Action("GET", "/api/returns", "/api/returns?store=store-003", TENANT_WIDE),
    Action("GET", "/api/returns", "/api/returns?store=o-1", NO_TENANT, note="other's store"),
    # reconciliation runs (hub/payments): payments.view anywhere to read (items narrowed to the stores in reach);
    # a run now needs payments.manage across the tenant (this hub has no provider: 503 for the one allowed)
    Action("GET", "/api/payments/reconciliations", "/api/payments/reconciliations", by(200, 200, 200, 403)),
    Action("GET", "/api/payments/reconciliations", "/api/payments/reconciliations?tenant=other",
           by(404, 404, 404, 403)),
    Action("GET", "/api/payments/reconciliations/{id}", "/api/payments/reconciliations/{id}", by(200, 200, 200, 403),
           fresh="reconciliation run of demo"),
    Action("GET", "/api/payments/reconciliations/{id}", "/api/payments/reconciliations/{id}", by(404, 404, 404, 403),
           fresh="reconciliation run of other"),
    Action("POST", "/api/payments/reconciliations", "/api/payments/reconciliations", by(503, 403, 403, 403), {}),
    # payments (hub/payments): payments.view where the store is; payments.manage there to change; limits tenant-wide
    Action("GET", "/api/payments/intents", "/api/payments/intents", by(200, 200, 200, 403)),
    Action("GET", "/api/payments/intents", "/api/payments/intents?tenant=other", by(404, 404, 404, 403)),
    Action("GET", "/api/payments/intents", "/api/payments/intents?store=store-003", by(200, 403, 403, 403)),
    Action("GET", "/api/payments/intents", "/api/payments/intents?store=o-1", by(404, 404, 404, 403),
           note="other's store"),
    Action("POST", "/api/payments/intents", "/api/payments/intents", by(201, 201, 403, 403),
           {"store": "store-001", "tender_id": "access-1", "amount_minor": 100, "currency": "EUR"}),
    Action("POST", "/api/payments/intents", "/api/payments/intents", by(201, 403, 403, 403),
           {"store": "store-003", "tender_id": "access-3", "amount_minor": 100, "currency": "EUR"}),
    Action("POST", "/api/payments/intents", "/api/payments/intents", by(404, 403, 403, 403),
           {"store": "o-1", "tender_id": "access-o", "amount_minor": 100, "currency": "EUR"}, note="other's store"),
    Action("GET", "/api/payments/settings", "/api/payments/settings", by(200, 200, 200, 403)),
    Action("PUT", "/api/payments/settings", "/api/payments/settings", TENANT_WIDE,
           {"offline_per_payment_minor": 4000, "offline_store_total_minor": 16000}),
    # promotions (hub/promotions): promotions.view to read, promotions.manage over the promotion's whole scope to
    # change (the {id} routes: tests/test_promotions_workflow.py); settings tenant-wide
    Action("GET", "/api/promotions", "/api/promotions", by(200, 200, 200, 403)),
    Action("GET", "/api/promotions", "/api/promotions?tenant=other", by(404, 404, 404, 403)),
    Action("POST", "/api/promotions", "/api/promotions", by(201, 201, 403, 403),
           {"name": "North coffee", "kind": "percent", "value": 500, "regions": ["north"]}),
    Action("POST", "/api/promotions", "/api/promotions", by(201, 403, 403, 403),
           {"name": "All coffee", "kind": "percent", "value": 500}),
    Action("POST", "/api/promotions", "/api/promotions", by(422, 422, 403, 403),
           {"name": "Too much", "kind": "percent", "value": 10001}),
    Action("GET", "/api/promotions/settings", "/api/promotions/settings", by(200, 200, 200, 403)),
    Action("PUT", "/api/promotions/settings", "/api/promotions/settings", TENANT_WIDE,
           {"approval_threshold_minor": 20000, "timezone": "Europe/Paris", "simulation_days": 14}),
    Action("GET", "/api/promotion-diffs", "/api/promotion-diffs", by(200, 200, 200, 403)),
    # loyalty (hub/loyalty): customers.view anywhere to read; customers.manage to adjust, across the tenant for the
    # program; another tenant's customer is not found
    Action("GET", "/api/loyalty/program", "/api/loyalty/program", by(200, 200, 200, 403)),
    Action("PUT", "/api/loyalty/program", "/api/loyalty/program", TENANT_WIDE, LOYALTY_PROGRAM),
    Action("GET", "/api/loyalty/accounts/{id}", "/api/loyalty/accounts/{id}", by(200, 200, 200, 403),
           fresh="customer of demo"),
    Action("GET", "/api/loyalty/accounts/{id}", "/api/loyalty/accounts/{id}", by(404, 404, 404, 403),
           fresh="customer of other"),
    Action("POST", "/api/loyalty/accounts/{id}/adjust", "/api/loyalty/accounts/{id}/adjust",
           by(200, 200, 403, 403), {"points": 5, "reason": "goodwill"}, fresh="customer of demo"),
    Action("POST", "/api/loyalty/accounts/{id}/adjust", "/api/loyalty/accounts/{id}/adjust",
           by(404, 404, 403, 403), {"points": 5, "reason": "goodwill"}, fresh="customer of other"),
    # coupons (hub/coupons): promotions.view to read; promotions.manage across the tenant to make codes (this world
    # has no promotion: the one allowed is told so); the {id} routes: tests/test_codes_hub.py
    Action("GET", "/api/coupons", "/api/coupons", by(200, 200, 200, 403)),
    Action("GET", "/api/coupons", "/api/coupons?tenant=other", by(404, 404, 404, 403)),
    Action("POST", "/api/coupons", "/api/coupons", by(404, 403, 403, 403),
           {"promotion": "0190a3c4-7e1f-7b2a-9c3d-0000000000f1", "code": "ACCESS10", "max_uses": 5}),
    Action("POST", "/api/coupon-batches", "/api/coupon-batches", by(404, 403, 403, 403),
           {"promotion": "0190a3c4-7e1f-7b2a-9c3d-0000000000f1", "count": 5}),
    # gift cards (hub/giftcards): gift_cards.manage for everything (a region's admin has it); the {id} routes:
    # tests/test_codes_hub.py
    Action("GET", "/api/gift-cards", "/api/gift-cards", by(200, 200, 403, 403)),
    Action("GET", "/api/gift-cards", "/api/gift-cards?tenant=other", by(404, 404, 403, 403)),
    Action("POST", "/api/gift-cards", "/api/gift-cards", by(201, 201, 403, 403), {"amount_minor": 500}),
    Action("POST", "/api/gift-card-lookups", "/api/gift-card-lookups", by(404, 404, 403, 403),
           {"number": "4242424242424242"}),
    # users (hub/identity): users.view to read, users.manage within scope to change; {role} in a body: the caller
    Action("GET", "/api/users", "/api/users", by(200, 200, 200, 403)),
    Action("GET", "/api/users", "/api/users?tenant=other", by(404, 404, 404, 403)),
    Action("GET", "/api/users/{login}", "/api/users/carl", by(200, 200, 200, 403)),
    Action("GET", "/api/users/{login}", "/api/users/sid", by(200, 403, 403, 403), note="south's cashier"),
    Action("GET", "/api/users/{login}", "/api/users/otto", by(404, 404, 404, 403), note="other's admin"),
    Action("POST", "/api/users", "/api/users", by(201, 201, 403, 403), _new_user("cashier", store="store-001")),
    Action("POST", "/api/users", "/api/users", by(201, 403, 403, 403), _new_user("cashier", store="store-003")),
    Action("POST", "/api/users", "/api/users", by(201, 403, 403, 403), _new_user("tenant_admin")),
    Action("POST", "/api/users", "/api/users", by(404, 404, 403, 403), _new_user("cashier", store="o-1")),
    Action("POST", "/api/users/{login}/changes", "/api/users/{id}/changes", by(200, 200, 403, 403),
           {"name": "Renamed"}, fresh="user at store-001"),
    Action("POST", "/api/users/{login}/changes", "/api/users/{id}/changes", by(200, 403, 403, 403),
           {"active": False}, fresh="user at store-003"),
    Action("POST", "/api/users/{login}/changes", "/api/users/otto/changes", by(404, 404, 403, 403), {"name": "X"}),
    Action("POST", "/api/users/{login}/roles", "/api/users/{id}/roles", by(200, 200, 403, 403),
           {"role": "supervisor", "store": "store-002"}, fresh="user at store-001"),
    Action("POST", "/api/users/{login}/roles", "/api/users/{id}/roles", by(200, 403, 403, 403),
           {"role": "regional_admin", "region": "north"}, fresh="user at store-001"),
    Action("POST", "/api/users/{login}/roles", "/api/users/{id}/roles", by(200, 403, 403, 403),
           {"role": "cashier", "store": "store-001"}, fresh="user at store-003"),
    Action("POST", "/api/users/{login}/roles/revoke", "/api/users/{id}/roles/revoke", by(200, 200, 403, 403),
           {"role": "cashier", "store": "store-001"}, fresh="user at store-001"),
    Action("POST", "/api/users/{login}/roles/revoke", "/api/users/otto/roles/revoke", by(404, 404, 403, 403),
           {"role": "tenant_admin"}),
    # customers (hub/customers): records are the tenant's (customers.view anywhere reads them all; customers.manage
    # anywhere changes them, a home store in reach); export and erase need customers.privacy tenant-wide
    Action("GET", "/api/customers", "/api/customers", by(200, 200, 200, 403)),
    Action("GET", "/api/customers", "/api/customers?tenant=other", by(404, 404, 404, 403)),
    Action("POST", "/api/customers", "/api/customers", by(201, 201, 403, 403), {"name": "Matrix Person"}),
    Action("POST", "/api/customers", "/api/customers", by(201, 403, 403, 403),
           {"name": "Matrix South", "home_store": "store-003"}),
    Action("POST", "/api/customers", "/api/customers", by(404, 404, 403, 403), {"tenant": "other", "name": "X"}),
    Action("GET", "/api/customers/{id}", "/api/customers/{id}", by(200, 200, 200, 403), fresh="customer of demo"),
    Action("GET", "/api/customers/{id}", "/api/customers/{id}", by(404, 404, 404, 403), fresh="customer of other"),
    Action("PATCH", "/api/customers/{id}", "/api/customers/{id}", by(200, 200, 403, 403), {"name": "Renamed"},
           fresh="customer of demo"),
    Action("PATCH", "/api/customers/{id}", "/api/customers/{id}", by(404, 404, 403, 403), {"name": "Renamed"},
           fresh="customer of other"),
    Action("POST", "/api/customers/{id}/export", "/api/customers/{id}/export", TENANT_WIDE, {},
           fresh="customer of demo"),
    Action("POST", "/api/customers/{id}/export", "/api/customers/{id}/export", by(404, 403, 403, 403), {},
           fresh="customer of other"),
    Action("POST", "/api/customers/{id}/erase", "/api/customers/{id}/erase", TENANT_WIDE, {"reason": "matrix"},
           fresh="customer of demo"),
    Action("POST", "/api/customers/{id}/erase", "/api/customers/{id}/erase", by(404, 403, 403, 403),
           {"reason": "matrix"}, fresh="customer of other"),
)

ELSEWHERE: dict[tuple[str, str], str] = {
    ("POST", "/api/login"): "tests/test_identity_login.py (signing in is what every role here starts with)",
    ("POST", "/api/logout"): "tests/test_identity_login.py (it would end the sessions this table uses)",
    ("POST", "/api/catalog/imports"): "tests/test_console_uploads.py (a text/csv body, not JSON; each role there)",
    ("GET", "/api/catalog/imports/{id}"): "tests/test_console_uploads.py (a job of the hub process; each role there)",
    ("POST", "/api/payments/webhooks/{tenant}/{provider}"): "tests/test_payment_webhooks.py (no session: the "
                                                             "provider's signature is the authentication)",
    **{(method, f"/api/payments/intents/{{id}}{action}"): "tests/test_payment_api.py (an intent authorized through "
       "the acquirer simulator; a store manager views but may not change, another store's is 403, another tenant's 404)"
       for method, action in [("GET", ""), ("POST", "/capture"), ("POST", "/cancel"), ("POST", "/refund")]},
    **{(method, f"/api/promotions/{{id}}{action}"): "tests/test_promotions_workflow.py (a region admin works only "
       "on promotions within her regions, and sees no other region's; a store manager reads, changes nothing; "
       "approval by a second person only)"
       for method, action in [("GET", ""), ("PUT", ""), ("GET", "/revisions"), ("POST", "/simulate"),
                              ("POST", "/submit"), ("POST", "/approve"), ("POST", "/reject"), ("POST", "/schedule"),
                              ("POST", "/end")]},
    **{(method, path): "tests/test_codes_hub.py (a store manager reads a code but may not withdraw it, a supervisor "
       "neither; a region's admin manages gift cards, a store manager none; another tenant's code or card is 404)"
       for method, path in [("GET", "/api/coupons/{id}"), ("POST", "/api/coupons/{id}/block"),
                            ("POST", "/api/coupons/{id}/unblock"), ("GET", "/api/gift-cards/{id}"),
                            ("POST", "/api/gift-cards/{id}/top-ups"), ("POST", "/api/gift-cards/{id}/block"),
                            ("POST", "/api/gift-cards/{id}/unblock")]},
}
"""Console routes whose role matrix lives in another test, or is added by their domain's owner."""

FINGERPRINT_SQL = """
SELECT (SELECT coalesce(sum(version), 0) FROM catalog_versions) AS catalog,
       (SELECT count(*) FROM prices) AS prices,
       (SELECT count(*) FROM stock_movements) AS movements,
       (SELECT coalesce(sum(on_hand * 7 + reserved * 3 + coalesce(low_threshold, -1)), 0) FROM stock_balances) AS stock,
       (SELECT count(*) FROM stock_reservations WHERE status = 'active') AS reservations,
       (SELECT count(*) FROM dead_letters) AS letters,
       (SELECT count(*) FROM dead_letters WHERE redriven_at IS NOT NULL) AS redriven,
       (SELECT coalesce(sum(seq), 0) FROM audit_heads) AS audited,
       (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM user_roles) AS roles,
       (SELECT coalesce(sum(hashtext(name || active::text || coalesce(password_hash, ''))), 0) FROM users) AS people,
       (SELECT coalesce(sum(hashtext(coalesce(name, '') || coalesce(erased_at::text, ''))), 0) FROM customers)
           AS customers,
       (SELECT count(*) FROM loyalty_ledger) AS loyalty, (SELECT count(*) FROM loyalty_programs) AS programs
"""
"""Everything a console change could touch, in one row: a refused request must leave it as it was."""


async def _letter(database_url: str, tenant: str, store: str) -> int:
    rows = await query(database_url, "INSERT INTO dead_letters (subject, reason, payload) VALUES ($1, $2, $3)"
                                     " RETURNING id", f"novapos.{tenant}.{store}.evt.sale_completed",
                       "not an envelope (made by the access test)", b"\x00")
    return int(rows[0]["id"])


async def _sale(database_url: str, tenant: str, store: str) -> str:
    rows = await query(database_url, "INSERT INTO sales (event_id, tenant, store, seq, till, session, cashier, currency,"
                                     " total_minor, tendered_minor, change_minor, completed_at) VALUES"
                                     " (gen_random_uuid(), $1, $2, 1, 'till-1', 's', 'alice', 'EUR', 499, 499, 0, now())"
                                     " RETURNING event_id::text", tenant, store)
    return str(rows[0]["event_id"])


async def _drawer_session(database_url: str, tenant: str, store: str) -> str:
    rows = await query(database_url, "WITH e AS (INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES"
                                     " (gen_random_uuid(), $1, $2, 1, 'drawer.opened') RETURNING event_id)"
                                     " INSERT INTO drawer_sessions (tenant, store, session, event_id, till, currency,"
                                     " opened_by, opened_ms, float_minor, float_counts) SELECT $1, $2,"
                                     " gen_random_uuid()::text, event_id, 'till-1', 'EUR', 'alice', 0, 0, '{}' FROM e"
                                     " RETURNING session", tenant, store)
    return str(rows[0]["session"])


async def _reconciliation(database_url: str, tenant: str) -> str:
    rows = await query(database_url, "INSERT INTO reconciliation_runs (id, tenant, provider, day, trigger, actor,"
                                     " status, finished_at) VALUES (gen_random_uuid(), $1, 'simulator', current_date,"
                                     " 'command', 'cli:test', 'clean', now()) RETURNING id::text", tenant)
    return str(rows[0]["id"])


async def _reservation(client: httpx.AsyncClient, location: str, sku: str) -> int:
    answer = await client.post("/api/stock/reservations", json={"location": location, "sku": sku, "quantity": 1,
                                                                "expires_in_s": 600})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["reservation"])


_MADE = iter(range(1, 1_000_000))


async def _user(database_url: str, store: str) -> str:
    login = f"fresh-{next(_MADE)}"
    await add_user(database_url, login, grant("cashier", store))
    return login


async def _customer(database_url: str, tenant: str) -> str:
    made = str(uuid.uuid4())
    await query(database_url, "INSERT INTO customers (tenant, id, created_by) VALUES ($1, $2, 'test')", tenant,
                uuid.UUID(made))
    return made


@dataclass
class World:
    hub_url: str
    database_url: str
    clients: dict[str, httpx.AsyncClient]
    """Per role: a client signed in as it (the cashier and anonymous: none; forged: the admin, no CSRF)."""
    other_admin: httpx.AsyncClient

    def fresh(self) -> dict[str, Callable[[], Any]]:
        admin, url = self.clients[ADMIN], self.database_url
        return {"reservation at s1-floor": lambda: _reservation(admin, "s1-floor", "COF-250"),
                "reservation at s3-floor": lambda: _reservation(admin, "s3-floor", "COF-250"),
                "reservation of other": lambda: _reservation(self.other_admin, "o1-floor", "OTH-1"),
                "dead letter of store-001": lambda: _letter(url, "demo", "store-001"),
                "dead letter of store-003": lambda: _letter(url, "demo", "store-003"),
                "dead letter of o-1": lambda: _letter(url, "other", "o-1"),
                "sale of store-001": lambda: _sale(url, "demo", "store-001"),
                "sale of store-003": lambda: _sale(url, "demo", "store-003"),
                "sale of o-1": lambda: _sale(url, "other", "o-1"),
                "drawer session of store-001": lambda: _drawer_session(url, "demo", "store-001"),
                "drawer session of store-003": lambda: _drawer_session(url, "demo", "store-003"),
                "drawer session of o-1": lambda: _drawer_session(url, "other", "o-1"),
                "reconciliation run of demo": lambda: _reconciliation(url, "demo"),
                "reconciliation run of other": lambda: _reconciliation(url, "other"),
                "user at store-001": lambda: _user(url, "store-001"),
                "customer of demo": lambda: _customer(url, "demo"),
                "customer of other": lambda: _customer(url, "other"),
                "user at store-003": lambda: _user(url, "store-003")}


async def _world(stack: AsyncExitStack, hub_url: str, database_url: str) -> World:
    await build_world(database_url)
    await add_user(database_url, ADMIN, grant("tenant_admin"))
    await add_user(database_url, NORTH, grant("regional_admin", "north"))
    await add_user(database_url, MANAGER, grant("store_manager", "store-001"))
    await add_user(database_url, SUPERVISOR, grant("supervisor", "store-001"))
    await add_user(database_url, CASHIER, grant("cashier", "store-001"))
    await add_user(database_url, "sid", grant("cashier", "store-003"))
    await add_user(database_url, "otto", grant("tenant_admin"), tenant="other")
    clients = {role: await stack.enter_async_context(signed_in(hub_url, role)) for role in SIGNED_IN}
    anonymous = await stack.enter_async_context(httpx.AsyncClient(base_url=hub_url, timeout=10))
    refused = await anonymous.post("/api/login", json={"login": CASHIER, "password": PASSWORD})
    assert refused.status_code == 403 and "set-cookie" not in refused.headers, refused.text
    forged = await stack.enter_async_context(httpx.AsyncClient(base_url=hub_url, timeout=10,
                                                               cookies=clients[ADMIN].cookies))
    clients |= {CASHIER: anonymous, ANONYMOUS: anonymous, FORGED: forged}
    other_admin = await stack.enter_async_context(signed_in(hub_url, "otto"))
    for location, sku, admin in [*((at, "COF-250", clients[ADMIN]) for at in
                                   ("s1-floor", "s1-back", "s2-floor", "wh-north", "s3-floor")),
                                 ("o1-floor", "OTH-1", other_admin)]:
        answer = await admin.post("/api/stock/receipts", json={"location": location, "sku": sku, "quantity": 1000})
        assert answer.status_code == 200, answer.text
    return World(hub_url, database_url, clients, other_admin)


@asynccontextmanager
async def _running(hub_config: HubConfig) -> AsyncIterator[World]:
    """A hub serving the world, with every role's client."""
    async with trio.open_nursery() as nursery:
        async with AsyncExitStack() as stack:
            hub = await nursery.start(run_hub, hub_config)
            yield await _world(stack, hub.url, hub_config.database_url)
        nursery.cancel_scope.cancel()


async def test_every_role_against_every_console_action_and_refusals_change_nothing(hub_config: HubConfig) -> None:
    problems: list[str] = []
    sent = 0
    async with _running(hub_config) as world:
        makers = world.fresh()
        for action in ACTIONS:
            for role in ROLES:
                expected = action.expect.get(role) if role != FORGED else (
                    403 if action.method in STATE_CHANGING else action.expect[ADMIN])
                url = action.url
                if action.fresh is not None:
                    url = url.replace("{id}", str(await makers[action.fresh]()))
                before = await query(world.database_url, FINGERPRINT_SQL)
                body = None if action.body is None else json.loads(json.dumps(action.body).replace("{role}", role))
                answer = await world.clients[role].request(action.method, url, json=body)
                sent += 1
                label = f"{role:9} {action.method} {url} {action.body or ''} {action.note}"
                if answer.status_code != expected:
                    problems.append(f"{label}: {answer.status_code}, expected {expected}: {answer.text[:160]}")
                if answer.status_code >= 400:
                    if set(answer.json()) != {"error"}:
                        problems.append(f"{label}: the refusal is not one error sentence: {answer.text[:160]}")
                    if answer.status_code == 403 and role in SIGNED_IN and "needs" not in answer.json()["error"]:
                        problems.append(f"{label}: a 403 that does not say who can: {answer.text[:160]}")
                    if await query(world.database_url, FINGERPRINT_SQL) != before:
                        problems.append(f"{label}: refused with {answer.status_code} but something changed")
    assert not problems, f"{len(problems)} of {sent} requests were answered wrongly:\n" + "\n".join(problems)


async def test_lists_show_only_what_the_role_reaches(hub_config: HubConfig) -> None:
    async with _running(hub_config) as world:
        clients = world.clients
        for tenant, store in [("demo", "store-001"), ("demo", "store-003"), ("other", "o-1")]:
            await _letter(world.database_url, tenant, store)
        await clients[ADMIN].post("/api/stock/thresholds", json={"location": "s3-floor", "sku": "COF-250",
                                                                 "threshold": 5000})
        await clients[ADMIN].post("/api/stock/thresholds", json={"location": "s1-floor", "sku": "COF-250",
                                                                 "threshold": 5000})

        async def seen(role: str, path: str, key: str) -> set[str]:
            answer = await clients[role].get(path)
            assert answer.status_code == 200, (role, path, answer.text)
            return {row[key] for row in answer.json()["items"]}
        everything = {"s1-floor", "s1-back", "s2-floor", "wh-north", "s3-floor"}
        assert await seen(ADMIN, "/api/stock", "location") == everything
        assert await seen(NORTH, "/api/stock", "location") == everything - {"s3-floor"}
        assert await seen(MANAGER, "/api/stock", "location") == {"s1-floor", "s1-back"}
        assert await seen(SUPERVISOR, "/api/stock/movements", "location") == {"s1-floor", "s1-back"}
        assert await seen(NORTH, "/api/stock/movements", "location") == everything - {"s3-floor"}
        assert await seen(ADMIN, "/api/stock/low", "location") == {"s1-floor", "s3-floor"}
        assert await seen(NORTH, "/api/stock/low", "location") == {"s1-floor"}
        assert await seen(ADMIN, "/api/dead-letters", "subject") == {
            "novapos.demo.store-001.evt.sale_completed", "novapos.demo.store-003.evt.sale_completed"}
        assert await seen(NORTH, "/api/dead-letters", "subject") == {"novapos.demo.store-001.evt.sale_completed"}
        other = await world.other_admin.get("/api/dead-letters")
        assert [row["subject"] for row in other.json()["items"]] == ["novapos.other.o-1.evt.sale_completed"]
        other_stock = await world.other_admin.get("/api/stock")
        assert {row["location"] for row in other_stock.json()["items"]} == {"o1-floor"}


def test_every_console_api_route_is_in_the_matrix() -> None:
    app = build_console(Console(None, None, frozenset()))  # type: ignore[arg-type]  # routes only, not served
    routed = {(method, route.path) for route in app.routes if isinstance(route, Route) and route.path.startswith("/api/")
              for method in (route.methods or set()) - {"HEAD", "OPTIONS"}}
    tabled = {(action.method, action.path) for action in ACTIONS}
    assert not tabled - routed, f"rows for routes the console does not serve: {tabled - routed}"
    missing = routed - tabled - set(ELSEWHERE)
    assert not missing, f"console routes with no row in ACTIONS (add them, with every role's status): {missing}"
    assert all(set(action.expect) == set(ROLES) - {FORGED} for action in ACTIONS)


def test_openapi_documents_401_and_403_on_every_console_api_route() -> None:
    spec = document(domains())
    responses = spec["components"]["responses"]
    assert "sign in" in responses["Unauthorized"]["description"] and "who can" in responses["Forbidden"]["description"]
    undocumented = [f"{method.upper()} {path}" for path, item in spec["paths"].items()
                    if path.startswith("/api/") and path != SIGN_IN
                    for method, operation in item.items() if not {"401", "403"} <= set(operation["responses"])]
    assert not undocumented, undocumented
    adjust = spec["paths"]["/api/stock/adjustments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "reason" in adjust["required"] and adjust["properties"]["reason"]["maxLength"] > 0


async def test_each_console_change_is_audited_with_its_user_in_the_same_transaction(hub_config: HubConfig) -> None:
    async with _world_audit(hub_config) as (world, audit_before):
        nora, ada, mona = world.clients[NORTH], world.clients[ADMIN], world.clients[MANAGER]
        done = [
            await nora.post("/api/catalog/price-changes", json={"sku": "COF-250", "amount_minor": 455, "scope": "store",
                                                                "scope_id": "store-001",
                                                                "effective_from": "2030-01-01T00:00:00+00:00"}),
            await ada.post("/api/catalog/product-changes", json={"product": "coffee", "name": "Coffee",
                                                                 "tax_class": "std"}),
            await ada.post("/api/catalog/barcode-changes", json={"sku": "COF-500", "barcodes": ["4006381333931"]}),
            await ada.post("/api/catalog/tax-class-changes", json={"tax_class": "std", "name": "Standard", "rates": []}),
            await ada.post("/api/catalog/settings-changes", json={"prices_include_tax": False}),
            await mona.post("/api/stock/adjustments", json={"location": "s1-floor", "sku": "COF-250", "quantity": -3,
                                                            "reason": "broken jar"}),
            await nora.post(f"/api/dead-letters/{await _letter(world.database_url, 'demo', 'store-002')}/redrive",
                            json={}),
        ]
        assert [answer.status_code for answer in done] == [200] * len(done), [answer.text for answer in done]
        refused = await mona.post("/api/stock/adjustments", json={"location": "s1-floor", "sku": "COF-250",
                                                                  "quantity": -5000, "reason": "too many"})
        assert refused.status_code == 409  # refused inside the transaction: no record of it either
        rows = await query(world.database_url, "SELECT actor, action, store, target, details FROM audit_records"
                                               " WHERE tenant = 'demo' AND seq > $1 ORDER BY seq", audit_before)
    made = [(row["actor"], row["action"], row["store"], row["target"]) for row in rows]
    assert made == [
        (NORTH, "price.set", "store-001", "COF-250"),
        (ADMIN, "catalog.product_saved", None, "coffee"),
        (ADMIN, "catalog.barcodes_set", None, "COF-500"),
        (ADMIN, "catalog.tax_class_saved", None, "std"),
        (ADMIN, "catalog.settings_set", None, None),
        (MANAGER, "stock.adjusted", "store-001", "COF-250"),
        (NORTH, "dead_letter.redriven", "store-002", str(json.loads(rows[6]["details"])["id"])),
    ]
    price = json.loads(rows[0]["details"])
    assert (price["sku"], price["scope"], price["scope_id"], price["amount_minor"]) == ("COF-250", "store", "store-001", 455)
    assert price["from"].startswith("2030-01-01T00:00:00")
    adjusted = json.loads(rows[5]["details"])
    assert (adjusted["location"], adjusted["quantity"], adjusted["reason"], adjusted["on_hand"]) == (
        "s1-floor", -3, "broken jar", 997)
    assert json.loads(rows[6]["details"])["outcome"].startswith("refused again")


@asynccontextmanager
async def _world_audit(hub_config: HubConfig) -> AsyncIterator[tuple[World, int]]:
    """The running world, and its tenant's audit chain length once it is built (sign-ins are records too)."""
    async with _running(hub_config) as world:
        [head] = await query(world.database_url, "SELECT seq FROM audit_heads WHERE tenant = 'demo'")
        yield world, int(head["seq"])
