"""Catalog: products, their variants and barcodes, prices (tenant, region and store, each from a date on),
tax classes with rates per region, and the tenant's catalog version, bumped by every change."""

from pathlib import Path

from hub.domains import Domain

DOMAIN = Domain("catalog", migrations=Path(__file__).parent / "migrations")
