"""Customers: the tenant's customer records, their lookup from the till and the console, the customer 360 view,
and data subject requests (export everything about a customer; erase them)."""

from pathlib import Path

from hub.customers import routes
from hub.customers.requests import RESPONDERS
from hub.domains import Domain

DOMAIN = Domain("customers", migrations=Path(__file__).parent / "migrations", responders=RESPONDERS,
                routes=routes.routes, openapi=routes.OPENAPI)
