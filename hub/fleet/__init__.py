"""Fleet health: each store's reports (software version, outbox, devices, clock, open tills, last sale) kept
as its latest state and a day of history, stores marked offline when their reports stop, and the console's
fleet page, alerts first."""

from pathlib import Path

from hub.domains import Domain
from hub.fleet.reports import take_report
from hub.fleet.routes import OPENAPI, routes
from hub.fleet.watch import fleet_gauges, watch_fleet
from novapos.wire.health import HEALTH_REQUESTS

DOMAIN = Domain("fleet", migrations=Path(__file__).parent / "migrations", link_responders={HEALTH_REQUESTS: take_report},
                routes=routes, services=(fleet_gauges,), jobs={"fleet_watch": watch_fleet}, openapi=OPENAPI)
