"""Follows the hub's staff list for this store into the state folder (actors.staff.cache).

It subscribes to `novapos.<tenant>.<store>.staff`, where the hub publishes the store's list after every
change that touches it (a deactivation reaches the tills within seconds), and asks for the list on
`novapos.<tenant>.<store>.req.staff` at start, on every reconnect (a publish missed while away) and every
`refresh_s` (a publish lost in transit). NATS away: said once, the tills log in from the kept list.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from prometheus_client import Gauge

from actors.staff.cache import StaffCache, staff_path
from edge_runtime import Actor, AsyncioSeam
from novapos.adapters.nats import NatsLink
from novapos.validators import Invalid
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER
from novapos.wire.staff import StaffList, decode_list, staff_request_subject, staff_subject

log = logging.getLogger(__name__)

VERSION = Gauge("novapos_edge_staff_version", "The version of the staff list the store's tills log in from")
TICK_S = 1.0
"""How often the actor looks at the link (a reconnect asks for the list at once)."""
ASK_WITHIN_S = 3.0
RETRY_S = 5.0
"""After a failed ask, the next one; a refresh may come sooner on a reconnect."""


class StaffActor(Actor):
    """One per store. `lookup(login)` for the till login; `status()` for /healthz."""

    def __init__(self, seam: AsyncioSeam, link: NatsLink, state_dir: Path, tenant: str, store: str,
                 refresh_s: float = 60.0, offline_after_s: float = 180.0) -> None:
        """`offline_after_s`: how old the hub's last confirmation may be before the tills log in offline."""
        super().__init__()
        self._seam = seam
        self._link = link
        self._path = staff_path(state_dir)
        self._tenant = tenant
        self._store = store
        self._refresh_s = refresh_s
        self._offline_after_s = offline_after_s
        self._cache: StaffCache | None = None
        self._subscription: Any = None
        self._next_ask = 0.0
        self._reconnects = 0
        self._failing: str | None = None

    def started(self) -> None:
        self._cache = StaffCache(self._path)
        version, _age, people = self._cache.status()
        if version is not None:
            VERSION.set(version)
        log.info("staff: the tills log in from staff list version %s (%d people); following %s",
                 version if version is not None else "none yet", people, staff_subject(self._tenant, self._store))
        self.send_after(0.0, "tick")

    def stopping(self) -> None:
        if self._subscription is not None:
            try:
                self._seam.run_blocking(self._subscription.unsubscribe, timeout=2.0)
            except Exception as exc:  # the link is gone already: nothing left to unsubscribe from
                log.debug("staff: unsubscribing: %s", exc)
        if self._cache is not None:
            self._cache.close()

    def lookup(self, login: str) -> dict[str, Any] | None:
        """The till login's question: this store's person `login` ({login, name, roles, pin_verifier}) or None."""
        assert self._cache is not None
        member = self._cache.lookup(login)
        return None if member is None else {"login": member.login, "name": member.name, "roles": list(member.roles),
                                            "pin_verifier": member.pin_verifier}

    def status(self) -> dict[str, Any]:
        """For /healthz: the list's version, how long since the hub confirmed it, how many people it holds, and
        whether the tills' logins are offline (that confirmation older than offline_after_s)."""
        assert self._cache is not None
        version, age, people = self._cache.status()
        return {"staff_version": version, "staff_age_s": None if age is None else round(age, 1),
                "staff_people": people, "logins_offline": age is None or age > self._offline_after_s}

    def tick(self) -> None:
        """Subscribe once connected; ask for the list when due or just reconnected; then again in TICK_S."""
        now = time.monotonic()
        reconnects = self._reconnects_so_far()
        try:
            if self._subscription is None:
                self._subscription = self._seam.run_blocking(self._subscribe, timeout=ASK_WITHIN_S + 1.0)
                self._next_ask = now
            if now >= self._next_ask or reconnects != self._reconnects:
                self._reconnects = reconnects  # a publish may have been missed while away: ask now
                self.received(self._seam.run_blocking(self._ask, timeout=ASK_WITHIN_S + 1.0))
                self._next_ask = now + self._refresh_s
            if self._failing is not None:
                log.info("staff: the hub answers again (it did not: %s)", self._failing)
                self._failing = None
        except (ConnectionError, TimeoutError, OSError, nats.errors.Error, Invalid) as exc:
            self._failed(str(exc) or type(exc).__name__)
            self._next_ask = now + min(RETRY_S, self._refresh_s)
        self.send_after(TICK_S, "tick")

    def _reconnects_so_far(self) -> int:
        """How often the link has reconnected (nats-py counts them): a change means it was away."""
        try:
            return int(self._link.client.stats["reconnects"])
        except ConnectionError:  # not connected the first time yet
            return 0

    def received(self, data: bytes) -> None:
        """A list from the hub (a reply or a publish): kept if newer; a bad one is logged and dropped."""
        assert self._cache is not None
        try:
            staff = decode_list(data)
            if (staff.tenant, staff.store) != (self._tenant, self._store):
                raise Invalid("staff list", f"is for {staff.tenant}/{staff.store}, not this store")
        except Invalid as exc:
            log.warning("staff: refused a staff list from the hub (%s); the tills keep the one they have", exc)
            return
        self._keep(staff)

    def _keep(self, staff: StaffList) -> None:
        assert self._cache is not None
        if self._cache.replace(staff):
            VERSION.set(staff.version)
            log.info("staff: list version %d kept, %d people may log in at the tills", staff.version, len(staff.users))

    def _failed(self, why: str) -> None:
        if self._failing is None:
            log.warning("staff: cannot reach the hub for the staff list (%s); the tills log in from the list kept "
                        "in %s, and it is asked again. Check the store's network and NATS", why, self._path)
        self._failing = why

    async def _subscribe(self) -> Any:
        """(asyncio side) The store's staff subject, each message handed to this actor."""
        await self._link.connect()

        async def deliver(message: Msg) -> None:
            self.send_after(0.0, "received", message.data)
        subscription = await self._link.client.subscribe(staff_subject(self._tenant, self._store), cb=deliver)
        await self._link.client.flush(timeout=int(ASK_WITHIN_S))
        return subscription

    async def _ask(self) -> bytes:
        await self._link.connect()
        reply = await self._link.client.request(staff_request_subject(self._tenant, self._store), b"",
                                                timeout=ASK_WITHIN_S)
        headers = reply.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise Invalid("the hub", f"refused the staff request ({headers.get(ERROR_HEADER, '?')})")
        data: bytes = reply.data
        return data
