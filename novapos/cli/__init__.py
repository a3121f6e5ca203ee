"""The `novapos` command: edge, hub, demo and mock subcommands, on top of everything else."""

from novapos.cli.main import main

__all__ = ["main"]
