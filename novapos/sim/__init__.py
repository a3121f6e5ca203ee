"""The fleet simulator: N stores on the real outbox, forwarder, health reporter and catalog sync, spread over
worker processes, selling against a hub (`novapos sim`, bench.fleet). See novapos.sim.fleet."""

from novapos.sim.fleet import run_fleet, run_fleet_sync
from novapos.sim.report import FleetReport, ProcessUsage, Progress, StoreTally
from novapos.sim.seed import seed_fleet
from novapos.sim.spec import FleetSpec, Outage, parse_outages

__all__ = ["FleetReport", "FleetSpec", "Outage", "ProcessUsage", "Progress", "StoreTally", "parse_outages",
           "run_fleet", "run_fleet_sync", "seed_fleet"]
