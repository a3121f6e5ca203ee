"""The `novapos` command: `edge` (a store), `hub` (the centre), `demo` (everything on this machine)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from novapos.cli.audit import add_audit_commands
from novapos.cli.backup import add_edge_backup_commands
from novapos.cli.catalog import add_catalog_commands
from novapos.cli.certs import add_certs_commands
from novapos.cli.leaf import add_leaf_command
from novapos.cli.payments import add_payments_commands
from novapos.cli.sim import add_sim_command
from novapos.cli.tenancy import add_tenancy_commands
from novapos.cli.users import add_user_commands

if TYPE_CHECKING:
    from novapos.config import StoreConfig
    from novapos.config.telemetry import TelemetrySettings

CONFIGS = Path(str(files("configs")))
"""The shipped configs: the repository's configs/ folder, installed as the package `configs`."""


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, or the exceptions inside it (trio nurseries group them)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _address_in_use(exc: BaseException) -> bool:
    """Whether `exc`, or any exception inside it, is a bind to a busy port."""
    return any(isinstance(leaf, OSError) and leaf.errno == errno.EADDRINUSE for leaf in _leaves(exc))


def _serve(command: str, main: Callable[[], Awaitable[None]], host: str, port: int, setting: str,
           telemetry: TelemetrySettings) -> int:
    """Run a serving process, with traces if [telemetry] says where (sent on to the end, however it ends); a port
    already taken is exit 2 and one sentence, not a traceback."""
    from edge_runtime import run
    from novapos import tracing
    # the hub samples by its own ratio whatever a store's (or a browser's) traceparent says (tracing.sampler)
    provider = tracing.setup(telemetry, f"novapos-{command}", remote_decides=command != "hub")
    try:
        return run(main)
    except (OSError, BaseExceptionGroup) as exc:
        if not _address_in_use(exc):
            raise
        print(f"novapos {command}: port {port} on {host} is already in use: stop the other process or set {setting}",
              file=sys.stderr)
        return 2
    finally:
        if provider is not None:
            provider.shutdown()


def _port(text: str) -> int:
    """A TCP port from the command line; argparse turns the refusal into exit 2 and its sentence."""
    from novapos.validators import Invalid, integer
    try:
        return integer("the port", int(text) if text.isdigit() else text, 0, 65535)
    except Invalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load_edge_config(path: Path) -> StoreConfig:
    """The store config at `path`, a relative [state] dir kept under $STATE_DIRECTORY when systemd sets it."""
    from novapos.config import load_store
    config = load_store(path)
    state_directory = os.environ.get("STATE_DIRECTORY")  # systemd's StateDirectory=: the one writable place
    if state_directory and not config.state_dir.is_absolute():
        config = replace(config, state_dir=Path(state_directory.split(":")[0]) / config.state_dir)
    if state_directory and config.leaf is not None and not config.leaf.state_dir.is_absolute():  # [leaf] dir too
        config = replace(config, leaf=replace(config.leaf, state_dir=Path(state_directory.split(":")[0])
                                              / config.leaf.state_dir))
    return config


def _edge(args: argparse.Namespace) -> int:
    from edge.app import StateFolderInUse, run_edge
    config = load_edge_config(args.config)
    config.check_runnable()
    try:
        return _serve("edge", lambda: run_edge(config), config.http_host, config.http_port,
                      f"[http] port in {args.config}", config.telemetry)
    except (StateFolderInUse, BaseExceptionGroup) as exc:
        in_use = next((leaf for leaf in _leaves(exc) if isinstance(leaf, StateFolderInUse)), None)
        if in_use is None:
            raise
        print(f"novapos edge: {in_use}", file=sys.stderr)
        return 2


def _hub(args: argparse.Namespace) -> int:
    from hub.app import run_hub
    from novapos.config import load_hub
    config = load_hub(args.config)
    if args.http_port is not None:
        config = replace(config, http_port=args.http_port)
    config.check_runnable()
    setting = "another --http-port" if args.http_port is not None else f"[http] port in {args.config}"
    return _serve("hub", lambda: run_hub(config), config.http_host, config.http_port, setting, config.telemetry)


def _hub_dead_letters(args: argparse.Namespace) -> int:
    from hub.ingest.commands import dead_letters
    from novapos.config import load_hub
    config = load_hub(args.config)
    if not config.database_url:  # dead letters live in PostgreSQL alone: no NATS needed here
        print("novapos hub dead-letters: set NOVAPOS_DATABASE_URL or [database] url in the hub config",
              file=sys.stderr)
        return 2
    return dead_letters(config, args.action, args.ids, args.all, args.reason_like)


def _hub_replay(args: argparse.Namespace) -> int:
    from hub.ingest.replay import parse_since, run_replay
    from novapos.config import load_hub
    config = load_hub(args.config)
    try:
        since = parse_since(args.since)
    except ValueError:
        print(f"novapos hub replay: --since takes an ISO 8601 time such as 2026-12-01T09:30:00Z, not {args.since!r}",
              file=sys.stderr)
        return 2
    if not config.database_url or not config.nats_url:
        print("novapos hub replay: needs both NATS and PostgreSQL: set [nats] url and [database] url in the hub "
              "config (or NOVAPOS_NATS_URL / NOVAPOS_DATABASE_URL)", file=sys.stderr)
        return 2
    done = run_replay(config, since, lambda line: print(line, flush=True))
    print(f"{done.seen} events read since {since.isoformat()}: {done.applied} applied, {done.duplicates} already "
          f"there, {done.rejected} dead-lettered, {done.held} waiting for a newer hub, {done.to_go} not reached")
    return 0 if done.to_go == 0 else 1


def _add_hub_replay(hub_commands: Any) -> None:
    """`novapos hub replay --since TIME`: after a database restore, apply the stream's kept history again."""
    replay = hub_commands.add_parser(
        "replay", help="apply the events stream again from a point in time (after restoring PostgreSQL)",
        description="After PostgreSQL was restored to an earlier point (point-in-time recovery, a standby promoted "
        "before it caught up), apply every event the NATS events stream still holds from TIME on, through the same "
        "ingest path as the hub: events the database already has are skipped, so a TIME too early costs only "
        "time. The hubs may keep running. Exit 0 once caught up, 1 if the stream's end was not reached.")
    replay.add_argument("--since", required=True, metavar="TIME",
                        help="ISO 8601, e.g. 2026-12-01T09:30:00Z (no zone: UTC); take it a few minutes before the "
                        "time the database was restored to")
    replay.set_defaults(run=_hub_replay)


def _add_hub_dead_letters(hub_commands: Any) -> None:
    """`novapos hub dead-letters list|redrive`: see and re-drive the events the hub refused."""
    dead = hub_commands.add_parser(
        "dead-letters", help="list dead letters, or re-drive them after fixing their cause",
        description="Dead letters are events the hub refused, with the reason. After fixing the cause, re-drive "
        "them: each goes through the same ingest path again (an event already applied stays applied once) and "
        "is kept, marked with the outcome.")
    actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the dead letters not yet re-driven").set_defaults(ids=[], all=False,
                                                                                      reason_like=None)
    redrive = actions.add_parser("redrive", help="re-drive the given dead letters, or --all of them")
    redrive.add_argument("ids", nargs="*", type=int, metavar="ID", help="dead letter ids (see list)")
    redrive.add_argument("--all", action="store_true", help="every dead letter not yet re-driven")
    redrive.add_argument("--reason-like", metavar="TEXT", help="with --all: only those whose reason contains TEXT")
    dead.set_defaults(run=_hub_dead_letters)


def _demo(args: argparse.Namespace) -> int:
    from novapos.demo.run import Demo
    if args.cluster and args.leaf:
        print("novapos demo: --leaf runs one NATS server: not with --cluster", file=sys.stderr)
        return 2
    state_dir = args.state_dir or Path(".state/demo-cluster" if args.cluster else ".state/demo-leaf" if args.leaf
                                       else ".state/demo")
    return Demo(state_dir, till_port=args.till_port, console_port=args.console_port,
                printer_port=args.printer_port, acquirer_port=args.acquirer_port, cluster=args.cluster,
                leaf=args.leaf).run()


def _mock(args: argparse.Namespace) -> int:
    from mocks.control import send_command
    socket_path = args.state_dir / "mock.sock"
    if not socket_path.exists():
        print(f"novapos mock: no demo is running with state in {args.state_dir} (start `make demo` first)",
              file=sys.stderr)
        return 1
    ok, message = send_command(socket_path, args.words or ["help"])
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    from novapos.__about__ import VERSION
    root = argparse.ArgumentParser(prog="novapos", description="NovaPOS: store edge runtime and hub.")
    root.add_argument("--version", action="version", version=f"%(prog)s {VERSION}",
                      help="the installed release (say it when reporting a problem; docs/upgrading.md)")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    edge = commands.add_parser("edge", help="run one store's edge runtime (tills, devices, offline queue, web till)",
                               description="Run one store's edge runtime: supervised actors for the tills, the "
                               "receipt printer, the durable SQLite outbox and its forwarder to the hub's NATS, and "
                               "the web till over HTTP. Keeps selling while the hub or NATS is away. Runs until "
                               "SIGTERM/SIGINT; speaks sd_notify when started by systemd (Type=notify).")
    edge.add_argument("--config", type=Path, default=CONFIGS / "demo-store.toml",
                      help="store TOML (default: %(default)s); NOVAPOS_NATS_URL overrides its [nats] url, and a "
                      "relative [state] dir is kept under $STATE_DIRECTORY when systemd sets it")
    edge.set_defaults(run=_edge)
    add_edge_backup_commands(edge.add_subparsers(dest="edge_command", metavar="SUBCOMMAND"))

    hub = commands.add_parser("hub", help="run the hub (ingest to PostgreSQL, hub console)",
                              description="Run a hub process: applies store events from JetStream to PostgreSQL "
                              "exactly once (idempotent inbox), and serves the hub console. Start N of them to "
                              "share the load. NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL override the config.")
    hub.add_argument("--config", type=Path, default=CONFIGS / "hub.toml", help="hub TOML (default: %(default)s)")
    hub.add_argument("--http-port", type=_port, metavar="PORT",
                     help="console port, instead of the config's [http] port: each of N hub processes on one "
                     "machine needs its own (the systemd unit novapos-hub@PORT passes its instance name)")
    hub.set_defaults(run=_hub)
    hub_commands = hub.add_subparsers(dest="hub_command", metavar="SUBCOMMAND")
    _add_hub_dead_letters(hub_commands)
    _add_hub_replay(hub_commands)
    add_tenancy_commands(hub_commands)
    add_catalog_commands(hub_commands)
    add_user_commands(hub_commands)
    add_audit_commands(hub_commands)
    add_payments_commands(hub_commands)

    demo = commands.add_parser("demo", help="run everything here: embedded NATS and PostgreSQL, hub, one store",
                               description="Start embedded NATS (JetStream) and PostgreSQL (unless NOVAPOS_NATS_URL / "
                               "NOVAPOS_DATABASE_URL point elsewhere), a simulated network receipt printer, the hub and "
                               "one store edge; print the web till and hub console addresses; run until Ctrl-C, then "
                               "stop everything in reverse order.")
    demo.add_argument("--state-dir", type=Path, help="where data lives (default: .state/demo, with --cluster "
                      ".state/demo-cluster, with --leaf .state/demo-leaf)")
    demo.add_argument("--cluster", action="store_true",
                      help="three embedded NATS servers in a cluster instead of one, the streams replicated on each")
    demo.add_argument("--leaf", action="store_true",
                      help="run the store through its own NATS leaf node (`novapos leaf`), sourced by the hub")
    demo.add_argument("--till-port", type=_port, default=8600, help="web till port (default: %(default)s)")
    demo.add_argument("--console-port", type=_port, default=8700, help="hub console port (default: %(default)s)")
    demo.add_argument("--printer-port", type=_port, default=0, help="simulated printer port (default: any free port)")
    demo.add_argument("--acquirer-port", type=_port, default=0,
                      help="simulated card acquirer and QR wallet port (default: any free port)")
    demo.set_defaults(run=_demo)

    mock = commands.add_parser("mock", help="plug, unplug and scan on the running demo's simulated devices",
                               description="Talk to the simulated hardware of a running `novapos demo`: plug or "
                               "unplug a device, scan a barcode, run the printer out of paper, present a card. "
                               "Run `novapos mock help` for the list of commands.",
                               epilog="examples: novapos mock list | novapos mock unplug receipt-printer | "
                               "novapos mock scan scanner-1 4006381333931 | novapos mock paper receipt-printer out")
    mock.add_argument("--state-dir", type=Path, default=Path(".state/demo"), help="the demo's state folder")
    mock.add_argument("words", nargs="*", metavar="COMMAND", help="e.g. list, plug NAME, unplug NAME, scan NAME BARCODE")
    mock.set_defaults(run=_mock)
    add_certs_commands(commands)
    add_leaf_command(commands)
    add_sim_command(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    from novapos.config import ConfigError
    from novapos.logs import setup
    args = parser().parse_args(argv)
    setup(args.command)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"novapos {args.command}: configuration problem: {exc}", file=sys.stderr)
        return 2

