"""Catalog: products, their variants and barcodes, prices (tenant, region and store, each from a date on),
tax classes with rates per region, and the tenant's catalog version, bumped by every change; the CSV
import; and the publisher that keeps each tenant's catalog stream, which the stores read, equal to it."""

from pathlib import Path

from hub.catalog import uploads
from hub.catalog.publisher import run_publisher
from hub.catalog.routes import OPENAPI, routes
from hub.domains import Domain

DOMAIN = Domain("catalog", migrations=Path(__file__).parent / "migrations",
                routes=lambda console: [*routes(console), *uploads.routes(console)],
                openapi={key: {**OPENAPI[key], **uploads.OPENAPI[key]} for key in ("paths", "schemas")},
                jobs={"catalog_publisher": run_publisher})
