"""The device manager: hot-plug for every bus, one scan every `scan_interval` seconds.

Each scan enumerates the buses the rules use and matches what is present to the rules. A device
that appears is started as an actor under the `devices` supervisor (one_for_one, so a crashing
driver takes down nothing else); one missing for `debounce_scans` scans in a row is stopped. A
brief drop shorter than the debounce never restarts anything: the device actor reconnects on its
own. Identity is the rule's name, so a replugged device is the same device whatever port it is on.
Devices that match no rule are logged once and left alone.

The manager is also the device status board: device actors report their status here, and every
change is published to the web till and to the device health metrics (roadmap P13-03): device_up, the
times each device stopped working and why (device_errors_total), the times it worked again
(device_reconnects_total).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka
from prometheus_client import Counter, Gauge

from actors.devices.context import SUPERVISOR, DeviceContext, device_actor_name
from actors.devices.kinds import actor_class_for
from actors.devices.matching import matches
from drivers.buses import BusUnavailable, SeenDevice, probe_network, scan_hid, scan_serial, scan_usb
from edge_runtime import Actor, Backoff, ChildSpec, Restart
from novapos.config import DeviceRule, DevicesConfig

log = logging.getLogger(__name__)

DEVICE_UP = Gauge("novapos_edge_device_up",
                  "1 while a configured device is present and working; 0 from the start until it works, and while "
                  "it is missing, failed to start, offline, in error or out of paper", ["device", "kind"])
DEVICE_ERRORS = Counter("novapos_edge_device_errors_total",
                        "Times a device stopped working, by what happened: offline, error, paper_out (as its actor "
                        "reported), unplugged (missing from its bus, or its printer gone), start_failed",
                        ["device", "kind", "error"])
DEVICE_RECONNECTS = Counter("novapos_edge_device_reconnects_total",
                            "Times a device worked again after going offline, failing or being unplugged",
                            ["device", "kind"])

OFFLINE_STATES = frozenset({"offline"})
NOT_WORKING = frozenset({"offline", "error", "down", "starting"})
DOWN_STATES = NOT_WORKING | {"paper_out"}
"""Reported states with device_up 0: a printer out of paper is present, but no receipt comes out of it."""
PROBLEMS = frozenset({"offline", "error", "paper_out"})
"""Reported states counted as device errors (paper_out too: the printer works, its receipts do not come out)."""
LOST = frozenset({"offline", "error"})
"""Reported states after which working again counts as a reconnect."""
START_WAIT_S = 10.0  # how long a scan waits for a device actor's start before giving up on it
START_RETRY = Backoff(initial=1.0, maximum=30.0)  # a device whose start failed: next scan, then less often


class DeviceManagerActor(Actor):
    def __init__(self, devices: DevicesConfig, context: DeviceContext, *, start_wait: float = START_WAIT_S) -> None:
        super().__init__()
        for rule in devices.rules:
            actor_class_for(rule)  # a driver of a kind no actor runs is refused now, not at its first plug
        self._start_wait = start_wait
        self._devices = devices
        self._context = context
        self._rules = {rule.name: rule for rule in devices.rules}
        self._up: dict[str, SeenDevice | None] = {}
        self._missed: dict[str, int] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._ignored: set[tuple[str, str]] = set()
        self._failed_starts: dict[str, int] = {}  # starts failed in a row, per device
        self._retry_at: dict[str, float] = {}  # monotonic time before which a failed start is not retried
        self._lost: set[str] = set()  # devices that stopped working (LOST, unplugged) and have not worked since

    def started(self) -> None:
        # A restarted manager knows nothing of device actors its predecessor started: clear them, the
        # first scan starts what is present (queued print jobs wait safely in the spooler meanwhile).
        # Told, not asked: the supervisor may be stuck in a start, and the removals stay queued ahead
        # of the first scan's starts all the same.
        for rule in self._devices.rules:
            self._remove_actor(rule)
        for rule in self._devices.rules:
            self._set_status(rule, "down", "not seen yet")
            DEVICE_UP.labels(rule.name, rule.kind).set(0)  # a device never plugged is down, not absent
            DEVICE_RECONNECTS.labels(rule.name, rule.kind)  # its series from the start, so rate() sees the first
        self.send_after(0.0, "scan")

    # -- protocol --------------------------------------------------------------------------

    def scan(self) -> None:
        """One hot-plug pass; reschedules itself."""
        try:
            self._scan_once()
        finally:
            self.send_after(self._devices.scan_interval, "scan")

    def report(self, device: str, state: str, detail: str = "") -> None:
        """A device actor's own view: 'ready', 'offline', 'paper_out', 'paper_near_end', 'error'...

        device_up follows it: a device counts as up once its actor says it works, not merely started."""
        rule = self._rules.get(device)
        if rule is not None and device in self._up:
            previous = self._status[rule.name]["state"]
            self._set_status(rule, state, detail)
            DEVICE_UP.labels(rule.name, rule.kind).set(0 if state in DOWN_STATES else 1)
            if state in PROBLEMS and state != previous:
                self._stopped_working(rule, state, lost=state in LOST)
            elif state not in NOT_WORKING and state not in PROBLEMS and rule.name in self._lost:
                self._lost.discard(rule.name)
                DEVICE_RECONNECTS.labels(rule.name, rule.kind).inc()

    def statuses(self) -> list[dict[str, Any]]:
        return [self._status[rule.name] for rule in self._devices.rules]

    # -- scanning --------------------------------------------------------------------------

    def _enumerate(self) -> tuple[dict[str, list[SeenDevice]], set[str]]:
        buses = {rule.bus for rule in self._devices.rules}
        seen: dict[str, list[SeenDevice]] = {}
        unavailable: set[str] = set()
        lookers = {
            "hid": lambda: scan_hid(self._context.hid),
            "serial": lambda: scan_serial(rule.path for rule in self._devices.rules if rule.path),
            "usb": scan_usb,
            # Network devices that are up prove their presence through their own status polls.
            "network": lambda: probe_network((rule.host, rule.port) for rule in self._devices.rules
                                             if rule.bus == "network" and rule.name not in self._up
                                             and rule.host is not None and rule.port is not None),
        }
        for bus in buses & set(lookers):
            try:
                seen[bus] = lookers[bus]()
            except BusUnavailable as exc:
                unavailable.add(bus)
                log.warning("%s; devices on it keep their last state", exc)
        return seen, unavailable

    def _scan_once(self) -> None:
        seen, unavailable = self._enumerate()
        claimed: set[SeenDevice] = set()
        for rule in self._devices.rules:
            if rule.bus == "none" or rule.bus in unavailable:
                continue
            found = next((device for device in seen.get(rule.bus, []) if matches(rule, device)), None)
            present = found is not None or (rule.bus == "network" and rule.name in self._up
                                            and self._status[rule.name]["state"] not in OFFLINE_STATES)
            if found is not None:
                claimed.add(found)
            if present:
                self._missed[rule.name] = 0
                known = self._up.get(rule.name)
                if found is not None and known is not None and known.address != found.address:
                    # replugged elsewhere within the debounce: its actor holds the old address
                    self._take_down(rule, f"moved to {found.address}")
                if rule.name not in self._up:
                    self._bring_up(rule, found)
            elif rule.name in self._up:
                self._missed[rule.name] = self._missed.get(rule.name, 0) + 1
                if self._missed[rule.name] >= self._devices.debounce_scans:
                    self._take_down(rule, f"missing for {self._missed[rule.name]} scans")
        for rule in self._devices.rules:  # devices that live on another device (a drawer on a printer)
            if rule.bus == "none":
                host_up = rule.printer in self._up
                if host_up and rule.name not in self._up:
                    self._bring_up(rule, None)
                elif not host_up and rule.name in self._up:
                    self._take_down(rule, f"its printer {rule.printer} is down")
        self._log_unknown(seen, claimed)

    def _log_unknown(self, seen: dict[str, list[SeenDevice]], claimed: set[SeenDevice]) -> None:
        for bus in ("hid", "usb"):  # serial/network listings include the system's own ports; not worth a line
            for device in seen.get(bus, []):
                key = (bus, device.address)
                if device not in claimed and key not in self._ignored:
                    self._ignored.add(key)
                    log.info("ignoring unknown %s: no [[devices.rules]] entry matches it", device.label())

    # -- lifecycle -------------------------------------------------------------------------

    def _bring_up(self, rule: DeviceRule, seen: SeenDevice | None) -> None:
        if time.monotonic() < self._retry_at.get(rule.name, 0.0):
            return  # its last start failed: wait out the backoff
        started = time.perf_counter()
        self._up[rule.name] = seen
        self._set_status(rule, "starting", seen.label() if seen else f"on {rule.printer}")
        spec = ChildSpec(device_actor_name(rule.name), actor_class_for(rule), (rule, seen, self._context),
                         restart=Restart.TRANSIENT, shutdown_timeout=3.0)
        try:
            self.registry.ask(SUPERVISOR, "start_child", spec, timeout=self._start_wait)
        except pykka.Timeout:  # its start is stuck (a driver open that hangs); it may still come up
            self._start_failed(rule, f"its actor did not start within {self._start_wait:g} s")
            return
        except Exception as exc:  # refused (an actor not yet removed holds the name), or any other failure:
            self._start_failed(rule, str(exc) or type(exc).__name__)  # the manager outlives every device
            return
        self._failed_starts.pop(rule.name, None)
        self._retry_at.pop(rule.name, None)
        log.info("device %s (%s) plugged: %s, up in %.1f ms", rule.name, rule.driver,
                 seen.label() if seen else f"via {rule.printer}", (time.perf_counter() - started) * 1000)

    def _start_failed(self, rule: DeviceRule, why: str) -> None:
        """Remove whatever the failed start left and retry it after a backoff; never raises."""
        del self._up[rule.name]
        failures = self._failed_starts[rule.name] = self._failed_starts.get(rule.name, 0) + 1
        delay = START_RETRY.delay(failures)
        self._retry_at[rule.name] = time.monotonic() + delay
        self._remove_actor(rule)
        DEVICE_UP.labels(rule.name, rule.kind).set(0)
        when = f"in {delay:.1f} s" if delay else "on the next scan"
        self._set_status(rule, "down", f"could not start: {why}; retrying {when}")
        self._stopped_working(rule, "start_failed", lost=False)
        log.warning("device %s (%s): could not start: %s; retrying %s (if this repeats, check its connection)",
                    rule.name, rule.driver, why, when)

    def _take_down(self, rule: DeviceRule, why: str) -> None:
        self._up.pop(rule.name, None)
        self._missed.pop(rule.name, None)
        self._remove_actor(rule)
        DEVICE_UP.labels(rule.name, rule.kind).set(0)
        self._set_status(rule, "down", why)
        self._stopped_working(rule, "unplugged", lost=True)
        log.warning("device %s (%s) unplugged: %s", rule.name, rule.kind, why)

    def _stopped_working(self, rule: DeviceRule, error: str, *, lost: bool) -> None:
        DEVICE_ERRORS.labels(rule.name, rule.kind, error).inc()
        if lost:
            self._lost.add(rule.name)

    def _remove_actor(self, rule: DeviceRule) -> None:
        """Have the supervisor stop and remove the device's actor, if it has one, without waiting.

        Never blocks: the supervisor may be stuck in a start (whose actor may or may not come up).
        Its mailbox is in order, so the removal happens before any start the manager asks for later."""
        self.registry.tell(SUPERVISOR, "terminate_child", device_actor_name(rule.name))

    def _set_status(self, rule: DeviceRule, state: str, detail: str) -> None:
        status = {"type": "device", "device": rule.name, "kind": rule.kind, "driver": rule.driver,
                  "till": rule.till, "state": state, "detail": detail, "at": time.time()}
        previous = self._status.get(rule.name)
        self._status[rule.name] = status
        if previous is None or (previous["state"], previous["detail"]) != (state, detail):
            self._context.notify(status)
