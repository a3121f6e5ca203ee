"""Facts about this release that the code relies on at run time."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata

BUILD_DATE = "2026-12-01"
"""The day this release was cut; bump it with every release. No event this software makes can have
happened before it, so it is the floor under a store's clock (a box without an RTC battery or NTP
boots in 1970). A constant, not a file's mtime: copying or unpacking the software must not move it."""

BUILD_FLOOR_MS = int(datetime.fromisoformat(BUILD_DATE).replace(tzinfo=UTC).timestamp() * 1000)
"""BUILD_DATE at midnight UTC, in the milliseconds events carry."""


def _version() -> str:
    try:
        return metadata.version("novapos")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


VERSION = _version()
"""The installed release (pyproject's version): what each store reports to the hub's fleet page."""
