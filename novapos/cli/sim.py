"""`novapos sim`: a fleet of simulated stores selling against a hub, with its ingest lag and what it costs.

Each store runs the real outbox, forwarder, health reporter and catalog sync (novapos.sim); without --nats-url
the command starts everything itself (embedded NATS with a user per store, PostgreSQL unless --database-url is
given, and a `novapos hub`); with --nats-url it sells against a running hub whose stores exist (their seeds in
--credentials). Progress goes to stderr (one line refreshed on a terminal, a line every few seconds otherwise);
the last line of stdout is the run's figures as one JSON object. Exit status 0 when every sale reached
PostgreSQL exactly once, 1 otherwise, 2 when the command was wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PLAIN_EVERY_S = 5.0
LATE_WARNING_S = 0.5


def add_sim_command(commands: argparse._SubParsersAction) -> None:
    sim = commands.add_parser(
        "sim", help="simulate N stores selling against a hub; print ingest lag and per-process CPU and memory",
        description="Simulate a fleet: N stores, each with the real outbox (SQLite), forwarder, health reporter and "
        "catalog sync and its own NATS user, a sale every --sale-every seconds, links cut on the --outages schedule, "
        "spread over --processes worker processes. Without --nats-url: embedded NATS, PostgreSQL (unless "
        "--database-url) and a hub are started here. Prints ingest lag (a sale's commit in its store to its row in "
        "the hub's PostgreSQL) and each process's CPU and memory; the last stdout line is JSON.")
    sim.add_argument("--stores", type=int, default=20, help="simulated stores (default: %(default)s)")
    sim.add_argument("--sale-every", type=float, default=1.0, metavar="S", help="seconds between a store's sales "
                     "(default: %(default)s)")
    sim.add_argument("--duration", type=float, default=60.0, metavar="S", help="selling time (default: %(default)s)")
    sim.add_argument("--outages", default="", metavar="AT:FOR:SHARE,...",
                     help="links cut on a schedule: '20:10:0.1' cuts a tenth of the stores 20 s in, for 10 s")
    sim.add_argument("--processes", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                     help="worker processes (default: %(default)s)")
    sim.add_argument("--state-dir", type=Path, default=Path(".state/sim"),
                     help="stores' SQLite files, logs, embedded servers (default: %(default)s; /dev/shm/... spares the "
                     "disk the stores' fsyncs in big runs)")
    sim.add_argument("--tenant", default="demo", help="the stores' tenant (default: %(default)s)")
    sim.add_argument("--region", default="north", help="the stores' region when seeded here (default: %(default)s)")
    sim.add_argument("--prefix", default="sim-", help="store names: PREFIX0001... (default: %(default)s)")
    sim.add_argument("--no-catalog", action="store_true", help="do not run the stores' catalog sync")
    sim.add_argument("--health-interval", type=int, default=5, metavar="S",
                     help="seconds between a store's health reports (default: %(default)s, as the edge's)")
    sim.add_argument("--drain-timeout", type=float, default=60.0, metavar="S",
                     help="after selling, how long to wait for the outboxes and the hub (default: %(default)s)")
    sim.add_argument("--cluster", action="store_true",
                     help="embedded NATS as a three-node cluster (the hub's streams on three replicas)")
    sim.add_argument("--nats-url", default=os.environ.get("NOVAPOS_NATS_URL"),
                     help="a running hub's NATS (default: $NOVAPOS_NATS_URL; none: embedded)")
    sim.add_argument("--database-url", default=os.environ.get("NOVAPOS_DATABASE_URL"),
                     help="the hub's PostgreSQL (default: $NOVAPOS_DATABASE_URL; none: embedded)")
    sim.add_argument("--credentials", type=Path, metavar="DIR",
                     help="with --nats-url: the stores' NKEY seeds, DIR/<tenant>.<store>.seed")
    sim.add_argument("--ca-file", type=Path, help="with --nats-url: the CA the NATS server's certificate is from")
    sim.add_argument("--cert-file", type=Path, help="with --nats-url: a client certificate, when NATS asks for one")
    sim.add_argument("--key-file", type=Path, help="with --nats-url: its key")
    sim.set_defaults(run=_sim)


def _fail(message: str) -> int:
    print(f"novapos sim: {message}", file=sys.stderr)
    return 2


class _Display:
    """Progress on stderr: one line rewritten in place on a terminal, a plain line every PLAIN_EVERY_S otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, progress: object) -> None:
        line = progress.line()  # type: ignore[attr-defined]
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        elif time.monotonic() - self._last >= PLAIN_EVERY_S:
            self._last = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _sim(args: argparse.Namespace) -> int:
    from novapos.sim import FleetSpec, parse_outages, run_fleet_sync
    from novapos.tls import TlsSettings
    try:
        spec = FleetSpec(stores=args.stores, sale_every_s=args.sale_every, outages=parse_outages(args.outages),
                         processes=args.processes, tenant=args.tenant, region=args.region, prefix=args.prefix,
                         catalog=not args.no_catalog, health_interval_s=args.health_interval)
    except ValueError as exc:
        return _fail(str(exc))
    if not args.duration > 0 or not args.drain_timeout > 0:
        return _fail("--duration and --drain-timeout: more than 0 s")
    if any(outage.at_s + outage.for_s > args.duration for outage in spec.outages):
        return _fail(f"every outage must end within --duration ({args.duration:g} s)")
    state_dir = args.state_dir.resolve()
    display = _Display()
    if args.nats_url:
        if args.cluster:
            return _fail("--cluster starts an embedded cluster: not with --nats-url")
        if not args.database_url or args.credentials is None:
            return _fail("with --nats-url (a running hub) give --database-url and --credentials DIR too")
        folder: Path = args.credentials
        missing = [name for name in spec.store_names() if not (folder / f"{spec.tenant}.{name}.seed").exists()]
        if missing:
            return _fail(f"{len(missing)} store(s) have no seed in {folder}, e.g. {spec.tenant}.{missing[0]}.seed: "
                         "provision them on the hub first (`novapos hub store add`)")
        tls = TlsSettings(cert_file=args.cert_file, key_file=args.key_file, ca_file=args.ca_file)
        report = run_fleet_sync(spec, args.nats_url, args.database_url,
                                credentials=lambda tenant, store: folder / f"{tenant}.{store}.seed", tls=tls,
                                duration_s=args.duration, state_dir=state_dir / "stores",
                                drain_timeout_s=args.drain_timeout, progress=display)
    else:
        from novapos.sim.embedded import embedded_world
        print(f"novapos sim: starting embedded NATS{' (3 nodes)' if args.cluster else ''}"
              f"{'' if args.database_url else ', PostgreSQL'} and a hub under {state_dir}", file=sys.stderr, flush=True)
        with embedded_world(state_dir, spec, args.database_url, cluster=args.cluster) as world:
            report = run_fleet_sync(spec, world.nats.url, world.database_url, credentials=world.nats.store_credentials,
                                    tls=world.nats.tls_settings(), duration_s=args.duration,
                                    state_dir=state_dir / "stores", drain_timeout_s=args.drain_timeout,
                                    progress=display)
    display.end()
    summary = report.summary()
    lag = "-" if report.lag_p99_s is None else f"p50 {report.lag_p50_s:.3f} s, p99 {report.lag_p99_s:.3f} s, " \
                                                f"max {report.lag_max_s:.3f} s"
    print(f"novapos sim: {spec.stores} stores, {report.sent} sales in {report.selling_s:.0f} s; ingested "
          f"{report.ingested}, lost {report.lost}, doubled {report.doubled}; ingest lag {lag}; worker CPU "
          f"{summary['worker_cpu_ms_per_store_s']} ms per store-second; logs in {state_dir / 'stores'}",
          file=sys.stderr, flush=True)
    if summary["sale_late_p99_s"] > LATE_WARNING_S:
        print(f"novapos sim: the workers were short of CPU: sales started up to {summary['sale_late_p99_s']:.2f} s "
              "late (p99), which the lag does not show; use fewer stores per process or another machine",
              file=sys.stderr, flush=True)
    print(json.dumps(summary))
    return 0 if report.drained and report.lost == 0 and report.doubled == 0 else 1
