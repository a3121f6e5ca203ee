"""The shipped configuration: the demo store, the hub and the systemd units.

This folder stays at the top of the repository, where operators look for it; the wheel carries it as
the package `novapos.configs` (see pyproject.toml), so the installed `novapos` finds it wherever it runs.
"""
