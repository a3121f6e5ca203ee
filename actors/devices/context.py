"""What every device actor is given besides its rule: the shared HID backend and the event sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.hid_backend import HidBackend

Notify = Callable[[dict[str, Any]], None]
"""Thread-safe sink for events people should see (device status, till state): the web till's stream."""

MANAGER = "devices.manager"
SUPERVISOR = "devices"
SPOOLER = "spooler"


def device_actor_name(device: str) -> str:
    return f"device.{device}"


@dataclass(frozen=True)
class DeviceContext:
    hid: HidBackend
    notify: Notify
