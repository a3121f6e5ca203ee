"""The supervisor: an actor whose work is starting, watching and restarting other actors.

Being an actor is the point: child exits arrive as messages, so its mailbox serializes
every decision (no locks, no two restarts racing). It never sleeps on its thread: backoff
is a delayed message to itself. Its own exit is reported to its parent like any child's,
so escalation is simply "this supervisor crashed" one level up.

Children can also be added and removed while it runs (`start_child`, `terminate_child`, as
OTP's supervisor:start_child/terminate_child): dynamic children are appended to the static
ones and follow the same rules. Like OTP, a restarted supervisor comes back with its static
children only.
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

from edge_runtime._actor import Actor
from edge_runtime._errors import ChildRefused, RestartIntensityExceeded, StartTimedOut
from edge_runtime._link import Link, binding
from edge_runtime._spec import ChildSpec, Restart, Strategy, SupervisorSpec

logger = logging.getLogger(__name__)


class Handle:
    """The instance of a running supervisor, for whoever stops it: how long to wait for it.

    A supervisor's stop takes as long as its children's, and dynamic children are not in its
    spec. The supervisor fills the handle in when it is built (on the caller's thread)."""

    supervisor: Supervisor | None = None

    def shutdown_timeout(self, spec: SupervisorSpec) -> float:
        return spec.shutdown_timeout if self.supervisor is None else self.supervisor._shutdown_budget()


@dataclass(eq=False)
class _Child:
    spec: ChildSpec | SupervisorSpec
    index: int  # start order: spec order, then order of addition
    dynamic: bool = False  # added by start_child: not in the spec, its names are ours to free
    ref: pykka.ActorRef[Any] | None = None
    urn: str | None = None  # the live instance; exit reports from any other instance are stale
    removed: bool = False  # exited for good (temporary, or transient that stopped normally)
    consecutive: int = 0  # restarts in a row, for backoff
    last_exit: float = -math.inf
    due: float = -math.inf  # when pending, not to be started before this (backoff)
    handle: Handle | None = None  # a supervisor child: its running instance

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def names(self) -> list[str]:
        """Its name and, for a supervisor, the static names below it."""
        if isinstance(self.spec, SupervisorSpec):
            return [spec.name for spec in self.spec.walk()]
        return [self.spec.name]

    @property
    def shutdown_timeout(self) -> float:
        if isinstance(self.spec, SupervisorSpec) and self.handle is not None:
            return self.handle.shutdown_timeout(self.spec)
        return self.spec.shutdown_timeout


class Supervisor(Actor):
    """Runs the children of one `SupervisorSpec` (see `spec` for the semantics).

    Its public methods (`start_child`, `terminate_child`, `which_children`) are its protocol:
    ask it by its spec name, like any actor.
    """

    _refusals = (ChildRefused,)

    def __init__(
        self, spec: SupervisorSpec, count_restart: Callable[[], None], handle: Handle | None = None
    ) -> None:
        super().__init__()
        self._spec = spec
        self._count_restart = count_restart
        self._children = [_Child(child, i) for i, child in enumerate(spec.children)]
        self._next_index = len(self._children)
        self._pending: list[_Child] = []  # to start, in spec order, each once it is due
        self._restarts: deque[float] = deque()  # times of recent restarts, for intensity
        self._resume_at: float | None = None
        self._announced = False
        self._resume_generation = 0
        for child in self._children:
            for name in child.names:  # all of them now: none is then free for a dynamic child
                self.registry.declare(name)
        if handle is not None:
            handle.supervisor = self

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
        for child in self._children:
            if child.dynamic:  # gone for good: a successor comes back with static children only
                self._free_names(child)

    # -- protocol --------------------------------------------------------------------------

    def start_child(self, spec: ChildSpec | SupervisorSpec) -> None:
        """Add a child after the current ones and start it, as a static child is started.

        Returns once its first start attempt is over, at most its start timeout: the child is
        up (its `started()` returned and its name is bound), or that attempt failed or timed
        out, which is a crash like any other (restart type, backoff, intensity; nothing is
        raised here). Under one_for_all
        and rest_for_one, while an earlier sibling waits out a backoff, the new child waits
        behind it, and this returns at once.

        Raises `ChildRefused` (a ValueError) if `spec` is not a spec, or if its name, or a name
        inside it, is in use anywhere in the tree or belongs to the static tree. A name is free
        again once `terminate_child` returned, or once its child exited for good.
        """
        if not isinstance(spec, ChildSpec | SupervisorSpec):
            raise ChildRefused(f"supervisor {self._spec.name!r}: not a child spec: {spec!r}")
        if isinstance(spec, SupervisorSpec):
            try:
                spec.validate()
            except ValueError as exc:
                raise ChildRefused(str(exc)) from None
        child = _Child(spec, self._next_index, dynamic=True)
        taken = self.registry.claim(child.names)
        if taken is not None:
            raise ChildRefused(f"supervisor {self._spec.name!r}: name {taken!r} is already in use")
        self._next_index += 1
        self._children.append(child)
        self._pending.append(child)  # the highest index: _pending stays in start order
        logger.info("child added supervisor=%s child=%s", self._spec.name, child.name)
        try:
            self._start_pending()
        except RestartIntensityExceeded as exc:
            self._exit_with(exc)

    def terminate_child(self, name: str) -> bool:
        """Stop the child `name` (within its shutdown timeout) and remove it for good.

        It is not restarted, whatever its restart type or how it exits, and its names are freed.
        A child waiting out a backoff is just removed. Static children can be removed too, until
        this supervisor is itself restarted from its spec. False if there is no such child.
        """
        child = next((c for c in self._children if c.name == name), None)
        if child is None:
            return False
        if child.ref is not None:
            self._stop_child(child)
        self._forget(child)
        logger.info("child terminated supervisor=%s child=%s", self._spec.name, name)
        if self._pending:  # ordered strategies: it may have been holding back those after it
            try:
                self._start_pending()
            except RestartIntensityExceeded as exc:
                self._exit_with(exc)
        return True

    def which_children(self) -> list[tuple[str, bool]]:
        """(name, is up) of each child, in start order. Children gone for good are not listed."""
        return [(child.name, child.ref is not None) for child in self._children]

    def _announce_up(self) -> None:
        # A supervisor is up once all its children first are: a child failing its first start
        # (and waiting out a backoff) keeps the parent, and `supervision_tree`, waiting too.
        if not self._pending and not self._announced:
            self._announced = True
            super()._announce_up()

    # -- messages to self ------------------------------------------------------------------

    def _child_exited(self, name: str, urn: str, reason: BaseException | None) -> None:
        child = next((c for c in self._children if c.urn == urn), None)
        if child is None:
            return  # an instance we stopped or terminated ourselves, or one abandoned after its timeout
        child.ref = child.urn = None
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
        """`child` is gone for good: drop it and free its names."""
        child.removed = True
        if child in self._pending:
            self._pending.remove(child)
        if child in self._children:
            self._children.remove(child)
        self._free_names(child)

    def _free_names(self, child: _Child) -> None:
        for name in child.names:
            self.registry.forget(name)

    def _shutdown_budget(self) -> float:
        """How long stopping this supervisor may take: its current children's timeouts, one after
        another, plus a little for its mailbox. Read from its parent's thread (a copy of the list)."""
        return sum(child.shutdown_timeout for child in tuple(self._children)) + 0.5

    # -- mechanics -------------------------------------------------------------------------

    def _start_pending(self) -> None:
        """Start the pending children that are due, in spec order, each up before the next.

        Order is a dependency: until this supervisor is first up, and under one_for_all and
        rest_for_one, a child still in backoff holds back the pending children after it. Under
        one_for_one, once up, siblings are independent: one flapping child delays no other.
        After a failed start it returns, and carries on from a message to itself.
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
            # The retry, even an immediate one, goes through the mailbox: a child failing every
            # start (each a start timeout long, say) must not keep its siblings' exits unread.
            break
        if self._pending:
            # Ordered, nothing moves before the first pending child is due: waking earlier,
            # for a later one that is, would only spin on the mailbox.
            self._schedule_resume(self._pending[0].due if ordered else min(c.due for c in self._pending))
        else:
            self._announce_up()

    def _spawn(self, child: _Child) -> BaseException | None:
        """Start `child` and wait (on this thread) until its `started()` returned; None = up.

        The wait is bounded by its start timeout, so a blocked start holds back no sibling's
        restart for longer. A timed-out instance is abandoned: it is asked to stop (it does
        once its `started()` returns), it is never bound to the name, its exit is not reported.
        """
        lock = threading.Lock()  # orders the child's up/down against giving up on it
        started = threading.Event()
        failure: list[BaseException | None] = []
        abandoned = False

        def up(ref: pykka.ActorRef[Any]) -> None:
            with lock:
                if abandoned:
                    return  # its stop request is queued already: its stopping() runs next
                self.registry.bind(child.name, ref)  # before the child's first message, see Link
                started.set()

        def down(urn: str, reason: BaseException | None) -> None:
            with lock:
                if abandoned:
                    return
                if started.is_set():
                    self._tell_self("_child_exited", child.name, urn, reason)
                else:
                    failure.append(reason)
                    started.set()

        ref: pykka.ActorRef[Any]
        try:
            with binding(Link(child.name, self.registry, up, down)):
                if isinstance(child.spec, ChildSpec):
                    handle = None
                    ref = child.spec.actor_class.start(*child.spec.args, **child.spec.kwargs)
                else:
                    handle = Handle()
                    ref = Supervisor.start(child.spec, self._count_restart, handle)
        except Exception as exc:  # the constructor raised: a failed start like any other
            return exc
        timeout = child.spec.start_timeout
        if not started.wait(timeout):
            with lock:
                abandoned = not started.is_set()  # else it came up or failed just in time
            if abandoned:
                # Stopped as soon as it takes mail: a child supervisor still retrying its own
                # children must not go on doing so, nor hold their names, beside its successor.
                ref.stop(block=False)
                return StartTimedOut(
                    f"child {child.name!r} did not finish starting within {timeout:g}s: "
                    "that instance is abandoned (stopped if it ever comes up)"
                )
        if failure:
            return failure[0]
        child.ref, child.urn, child.handle = ref, ref.actor_urn, handle
        logger.debug("child started supervisor=%s child=%s", self._spec.name, child.name)
        return None

    def _stop_child(self, child: _Child) -> None:
        """Stop `child` and wait for its `stopping()`, at most its shutdown timeout."""
        timeout = child.shutdown_timeout
        ref, child.ref, child.urn = child.ref, None, None
        assert ref is not None
        self.registry.unbind(child.name)
        try:
            ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            logger.warning(
                "child did not stop in time supervisor=%s child=%s timeout=%.1fs next=abandon-thread",
                self._spec.name, child.name, timeout,
            )

    def _tell_self(self, method: str, *args: Any) -> None:
        try:
            self.actor_ref.tell(ProxyCall(attr_path=(method,), args=args, kwargs={}))
        except pykka.ActorDeadError:
            pass  # we have stopped; our stopping() already dealt with the children
