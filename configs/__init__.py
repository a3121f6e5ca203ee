"""The shipped configuration: the demo store, the hub and the systemd units.

A package so that the wheel carries it (TOML and units as package data) and the installed `novapos`
finds it wherever it runs: `importlib.resources.files("configs")`.
"""
