"""Tenancy: tenants, their regions, stores and stock locations, and each store's NATS identity.

A tenant is a retail chain; a region groups its stores (prices and tax rates may differ by region);
a store is one shop with its edge box; a location holds stock: a store's shop floor (where its tills
sell from) and back room, or a warehouse (a location with no store and no tills).
"""

from pathlib import Path

from hub.domains import Domain

DOMAIN = Domain("tenancy", migrations=Path(__file__).parent / "migrations")
