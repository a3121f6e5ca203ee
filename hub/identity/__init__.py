"""Identity: users, their roles in the tenant, its regions and stores, console sign-in with sessions and
CSRF tokens, and the check every console route makes (hub.identity.access.authorize)."""

from pathlib import Path

from hub.domains import Domain
from hub.identity.routes import OPENAPI, routes

DOMAIN = Domain("identity", migrations=Path(__file__).parent / "migrations", routes=routes, openapi=OPENAPI)
