"""The supervisor: an actor whose work is starting, watching and restarting other actors.

Being an actor is the point: child exits arrive as messages, so its mailbox serializes
every decision (no locks, no two restarts racing). It never sleeps on its thread: backoff
is a delayed message to itself. Its own exit is reported to its parent like any child's,
so escalation is simply "this supervisor crashed" one level up.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from pykka.messages import ProxyCall

from edge_runtime.actor import Actor
from edge_runtime.errors import RestartIntensityExceeded
from edge_runtime.link import Link, binding
from edge_runtime.spec import ChildSpec, Restart, Strategy, SupervisorSpec

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Child:
    spec: ChildSpec | SupervisorSpec
    index: int
    ref: pykka.ActorRef[Any] | None = None
    urn: str | None = None  # the live instance; exit reports from any other instance are stale
    removed: bool = False  # exited for good (temporary, or transient that stopped normally)
    consecutive: int = 0  # restarts in a row, for backoff
    last_exit: float = -math.inf
    due: float = -math.inf  # when pending, not to be started before this (backoff)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_actor(self) -> bool:
        return isinstance(self.spec, ChildSpec)


class Supervisor(Actor):
    """Runs the children of one `SupervisorSpec` (see `spec` for the semantics)."""

    def __init__(self, spec: SupervisorSpec, count_restart: Callable[[], None]) -> None:
        super().__init__()
        self._spec = spec
        self._count_restart = count_restart
        self._children = [_Child(child, i) for i, child in enumerate(spec.children)]
        self._pending: list[_Child] = []  # to start, in spec order, each once it is due
        self._restarts: deque[float] = deque()  # times of recent restarts, for intensity
        self._resume_at: float | None = None
        self._announced = False
        self._resume_generation = 0
        for child in self._children:
            if child.is_actor:
                self.registry.declare(child.name)

    def started(self) -> None:
        self._pending = list(self._children)
        try:
            self._start_pending()
        except RestartIntensityExceeded:
            self.stopping()  # a failed start owes no stopping(): stop the children started so far here
            raise

    def stopping(self) -> None:
        for child in reversed(self._children):
            if child.ref is not None:
                self._stop_child(child)

    def _announce_up(self) -> None:
        # A supervisor is up once all its children first are: a child failing its first start
        # (and waiting out a backoff) keeps the parent, and `supervision_tree`, waiting too.
        if not self._pending and not self._announced:
            self._announced = True
            super()._announce_up()

    # -- messages to self ------------------------------------------------------------------

    def _child_exited(self, name: str, urn: str, reason: BaseException | None) -> None:
        child = next(c for c in self._children if c.name == name)
        if child.urn != urn:
            return  # an instance we stopped ourselves, or one abandoned after its timeout
        child.ref = child.urn = None
        if child.is_actor:
            self.registry.unbind(name)
        try:
            self._on_exit(child, reason)
            self._start_pending()
        except RestartIntensityExceeded as exc:
            self._exit_with(exc)

    def _resume(self, generation: int) -> None:
        if generation != self._resume_generation:
            return  # superseded by an earlier schedule
        self._resume_at = None
        try:
            self._start_pending()
        except RestartIntensityExceeded as exc:
            self._exit_with(exc)

    # -- decisions -------------------------------------------------------------------------

    def _on_exit(self, child: _Child, reason: BaseException | None) -> None:
        """Apply restart type, intensity, strategy and backoff to `child`, which has just exited."""
        what = "stopped" if reason is None else "crashed"
        if not child.spec.restart.wanted(reason):
            logger.info(
                "child %s supervisor=%s child=%s reason=%r restart=%s next=forget",
                what, self._spec.name, child.name, reason, child.spec.restart.value,
            )
            self._forget(child)
            return
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts[0] < now - self._spec.period:
            self._restarts.popleft()
        if len(self._restarts) > self._spec.intensity:
            logger.error(
                "restart intensity exceeded supervisor=%s child=%s reason=%r "
                "limit=%d-in-%.1fs next=stop-children-and-escalate",
                self._spec.name, child.name, reason, self._spec.intensity, self._spec.period,
            )
            raise RestartIntensityExceeded(
                f"supervisor {self._spec.name!r}: more than {self._spec.intensity} restarts "
                f"in {self._spec.period}s, last: child {child.name!r} {what} ({reason!r})"
            )
        self._count_restart()
        group = self._group(child)
        for sibling in reversed(group):
            if sibling is not child and sibling.ref is not None:
                self._stop_child(sibling)
                if sibling.spec.restart is Restart.TEMPORARY:
                    self._forget(sibling)  # as in OTP: a group restart does not revive temporaries
        group = [c for c in group if not c.removed]
        child.consecutive = 1 if now - child.last_exit > self._spec.period else child.consecutive + 1
        child.last_exit = now
        delay = self._spec.backoff.delay(child.consecutive)
        for member in group:
            member.due = max(member.due, now + delay) if member in self._pending else now + delay
        self._pending = sorted({*self._pending, *group}, key=lambda c: c.index)
        logger.warning(
            "child %s supervisor=%s child=%s reason=%r strategy=%s next=restart%s delay=%.3fs",
            what, self._spec.name, child.name, reason, self._spec.strategy.value,
            [c.name for c in group], delay,
        )

    def _group(self, child: _Child) -> list[_Child]:
        """The children restarted together with `child`, in start order."""
        live = [c for c in self._children if not c.removed]
        if self._spec.strategy is Strategy.ONE_FOR_ALL:
            return live
        if self._spec.strategy is Strategy.REST_FOR_ONE:
            return [c for c in live if c.index >= child.index]
        return [child]

    def _schedule_resume(self, when: float) -> None:
        """Have `_resume` run at `when`, unless it already will by then (it reschedules itself)."""
        if self._resume_at is not None and self._resume_at <= when:
            return
        self._resume_at = when
        self._resume_generation += 1
        self.send_after(when - time.monotonic(), "_resume", self._resume_generation)

    def _forget(self, child: _Child) -> None:
        child.removed = True
        if child in self._pending:
            self._pending.remove(child)
        if child.is_actor:
            self.registry.forget(child.name)

    # -- mechanics -------------------------------------------------------------------------

    def _start_pending(self) -> None:
        """Start the pending children that are due, in spec order, each up before the next.

        Order is a dependency: until this supervisor is first up, and under one_for_all and
        rest_for_one, a child still in backoff holds back the pending children after it. Under
        one_for_one, once up, siblings are independent: one flapping child delays no other.
        """
        ordered = not self._announced or self._spec.strategy is not Strategy.ONE_FOR_ONE
        while True:
            now = time.monotonic()
            due = [c for c in self._pending if c.due <= now]
            if not due or (ordered and due[0] is not self._pending[0]):
                break
            child = due[0]
            reason = self._spawn(child)
            if reason is None:
                self._pending.remove(child)
                continue
            logger.warning(
                "child failed to start supervisor=%s child=%s reason=%r",
                self._spec.name, child.name, reason,
            )
            self._on_exit(child, reason)
        if self._pending:
            self._schedule_resume(min(c.due for c in self._pending))
        else:
            self._announce_up()

    def _spawn(self, child: _Child) -> BaseException | None:
        """Start `child` and wait (on this thread) until its `started()` returned; None = up."""
        started = threading.Event()
        failure: list[BaseException | None] = []

        def up(urn: str) -> None:
            started.set()

        def down(urn: str, reason: BaseException | None) -> None:
            if started.is_set():
                self._tell_self("_child_exited", child.name, urn, reason)
            else:
                failure.append(reason)
                started.set()

        try:
            with binding(Link(child.name, self.registry, up, down)):
                if isinstance(child.spec, ChildSpec):
                    ref = child.spec.actor_class.start(*child.spec.args, **child.spec.kwargs)
                else:
                    ref = Supervisor.start(child.spec, self._count_restart)
        except Exception as exc:  # the constructor raised: a failed start like any other
            return exc
        started.wait()
        if failure:
            return failure[0]
        child.ref, child.urn = ref, ref.actor_urn
        if child.is_actor:
            self.registry.bind(child.name, ref)
        logger.debug("child started supervisor=%s child=%s", self._spec.name, child.name)
        return None

    def _stop_child(self, child: _Child) -> None:
        """Stop `child` and wait for its `stopping()`, at most its shutdown timeout."""
        ref, child.ref, child.urn = child.ref, None, None
        assert ref is not None
        if child.is_actor:
            self.registry.unbind(child.name)
        try:
            ref.stop(block=True, timeout=child.spec.shutdown_timeout)
        except pykka.Timeout:
            logger.warning(
                "child did not stop in time supervisor=%s child=%s timeout=%.1fs next=abandon-thread",
                self._spec.name, child.name, child.spec.shutdown_timeout,
            )

    def _tell_self(self, method: str, *args: Any) -> None:
        try:
            self.actor_ref.tell(ProxyCall(attr_path=(method,), args=args, kwargs={}))
        except pykka.ActorDeadError:
            pass  # we have stopped; our stopping() already dealt with the children
