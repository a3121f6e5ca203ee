"""Identity: users, their roles in the tenant, its regions and stores, console sign-in with sessions and
CSRF tokens, the check every console route makes (hub.identity.access.authorize), user management, and
each store's staff list (who may log in at its tills, with their PIN verifiers)."""

from collections.abc import Sequence
from pathlib import Path

from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.domains import Domain
from hub.identity import routes as signing
from hub.identity import user_routes
from hub.identity.staff import answer_staff
from novapos.wire.staff import STAFF_REQUESTS


def _routes(console: Console) -> Sequence[BaseRoute]:
    return [*signing.routes(console), *user_routes.routes(console)]


DOMAIN = Domain("identity", migrations=Path(__file__).parent / "migrations", routes=_routes,
                responders={STAFF_REQUESTS: answer_staff},
                openapi={"paths": {**signing.OPENAPI["paths"], **user_routes.OPENAPI["paths"]},
                         "schemas": {**signing.OPENAPI["schemas"], **user_routes.OPENAPI["schemas"]}})
