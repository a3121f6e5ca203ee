"""Which seen device a rule claims: by host:port, by port path, or by USB ids (and serial number)."""

from __future__ import annotations

import os

from drivers.buses import SeenDevice
from novapos.config import DeviceRule


def matches(rule: DeviceRule, seen: SeenDevice) -> bool:
    if seen.bus != rule.bus:
        return False
    if rule.bus == "network":
        return seen.address == f"{rule.host}:{rule.port}"
    if rule.bus == "serial":
        assert rule.path is not None
        return seen.address == rule.path or os.path.realpath(seen.address) == os.path.realpath(rule.path)
    if (seen.vendor_id, seen.product_id) != (rule.vendor_id, rule.product_id):
        return False
    return rule.serial_number is None or seen.serial_number == rule.serial_number
