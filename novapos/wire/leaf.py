"""Names that a store's leaf node (novapos.leaf) and the hub agree on: the store's JetStream domain, its local
events stream (which the hub's events stream sources) and the API prefixes each side reaches the other at."""

from __future__ import annotations

from novapos.validators import token

HUB_DOMAIN = "hub"
"""The JetStream domain of the hub's NATS: a leaf reaches the hub's JetStream API at `$JS.hub.API`."""
HUB_API = f"$JS.{HUB_DOMAIN}.API"


def leaf_name(tenant: str, store: str) -> str:
    """The store's JetStream domain and the stem of its stream's name: unambiguous (the tenant's length first:
    "a_b"/"c" and "a"/"b_c" differ), made of token characters only (a domain is one subject token)."""
    tenant, store = token("tenant", tenant), token("store", store)
    return f"L{len(tenant)}_{tenant}_{store}"


def leaf_events_stream(tenant: str, store: str) -> str:
    """The store's local events stream, which the hub's events stream sources."""
    return f"EVENTS_{leaf_name(tenant, store)}"


def leaf_api(tenant: str, store: str) -> str:
    """The prefix at which the hub reaches the store's JetStream API across the leaf connection."""
    return f"$JS.{leaf_name(tenant, store)}.API"


def source_deliver_prefix(tenant: str, store: str) -> str:
    """Where the store's leaf delivers what the hub's events stream sources from it (the server appends `.S.<id>`):
    one store's own prefix, so that the hub's authorization lets each leaf publish only its own deliveries."""
    return f"$JS.S.{leaf_name(tenant, store)}"


def mirror_deliver_prefix(tenant: str, store: str) -> str:
    """Where the hub delivers the store's catalog mirror (the server appends `.M.<id>`): the store's own, so that no
    leaf may receive another's."""
    return f"$JS.M.{leaf_name(tenant, store)}"


def store_events_filter(tenant: str, store: str) -> str:
    """Every event subject of one store (novapos.wire.subjects.event_subject)."""
    return f"novapos.{token('tenant', tenant)}.{token('store', store)}.evt.>"
