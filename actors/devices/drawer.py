"""A cash drawer: kicked open by its till, locally, never waiting on the hub or the print queue.

Either standalone on a serial port (with an open/closed sensor), or wired to a receipt printer and
pulsed through it (no sensor). A till that asks for a pulse hears back once it was sent (drawer_pulsed)
or could not be (drawer_not_pulsed): until then the pulse stays owed in the till's saved state.
"""

from __future__ import annotations

import logging

import pykka
from prometheus_client import Counter

from actors.devices.base import DeviceActor
from actors.devices.context import device_actor_name
from drivers.cash_drawer import CashDrawer
from drivers.errors import DeviceGone, DeviceProtocolError

log = logging.getLogger(__name__)

KICKS = Counter("novapos_edge_drawer_kicks_total", "Drawer open pulses, by outcome", ["device", "result"])
SENSOR_INTERVAL_S = 1.0


class DrawerDevice(DeviceActor):
    def started(self) -> None:
        # A drawer driver opens on first use: trouble is reported by the sensor poll.
        self._drawer: CashDrawer | None = self.open_driver()
        if self._drawer is not None:
            self.poll_sensor()
        else:
            self.report("ready", f"through printer {self.rule.printer}")

    def stopping(self) -> None:
        if self._drawer is not None:
            self._drawer.close()

    def kick(self, sale: str | None = None, till: str | None = None) -> bool:
        """Pulse the drawer; True once the bytes were sent. `till` (an actor name) is told the outcome
        for `sale`, so it stops owing the pulse only when it was really sent."""
        why = ""
        try:
            if self._drawer is not None:
                self._drawer.kick(self.rule.pin)
                done = True
            else:
                assert self.rule.printer is not None
                done = bool(self.registry.ask(device_actor_name(self.rule.printer), "kick_drawer", self.rule.pin))
                why = "" if done else f"printer {self.rule.printer} could not pulse it"
        except DeviceGone as exc:
            self.report("offline", str(exc))
            done, why = False, str(exc)
        except (pykka.Timeout, LookupError) as exc:  # its printer is busy or just unplugged
            log.warning("drawer %s: printer %s did not pulse it (%s)", self.rule.name, self.rule.printer,
                        type(exc).__name__)
            done, why = False, f"printer {self.rule.printer} did not answer"
        KICKS.labels(self.rule.name, "opened" if done else "failed").inc()
        if till is not None and sale is not None:
            if done:
                self.registry.tell(till, "drawer_pulsed", sale)
            else:
                self.registry.tell(till, "drawer_not_pulsed", sale, why)
        return done

    def poll_sensor(self) -> None:
        assert self._drawer is not None
        try:
            self.report("open" if self._drawer.is_open() else "closed")
        except DeviceGone as exc:
            self.report("offline", str(exc))
        except DeviceProtocolError as exc:  # a garbled answer: say so, ask again next time
            self.report("error", str(exc))
        self.send_after(SENSOR_INTERVAL_S, "poll_sensor")
