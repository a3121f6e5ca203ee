"""Names to actors, across restarts.

A restarted actor is a new pykka ref, so nobody should hold refs: callers name the actor and
the registry resolves the name at call time. Supervisors keep it current: a name is *up*
(a live ref), *down* (crashed, being restarted: callers wait) or unknown (never declared, or
a temporary/finished child that will not come back: callers get LookupError at once).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

import pykka
from pykka.messages import ProxyCall

from edge_runtime._errors import is_crash

logger = logging.getLogger(__name__)


_HOOKS = frozenset({"started", "stopping"})  # public for subclasses to override, but not protocol


def proxy_call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ProxyCall:
    """The pykka message calling public `method` of an actor. Public methods are the protocol,
    except the lifecycle hooks `started` and `stopping`, which only the actor's own life runs."""
    if method.startswith("_"):
        raise ValueError(f"{method!r} is private: only public methods of an actor can be called")
    if method in _HOOKS:
        raise ValueError(f"{method!r} is a lifecycle hook, not part of an actor's protocol")
    return ProxyCall(attr_path=(method,), args=args, kwargs=kwargs)


class InContext(NamedTuple):
    """A call with the caller's context variables: the actor runs its handler in them (a copy taken when it
    was sent), as asyncio runs a task in its creator's. What the caller's request bound (the trace a sale
    belongs to, the fields its log lines carry) follows it into the actor; what the handler binds stays there."""

    call: ProxyCall
    context: contextvars.Context


def in_context(call: ProxyCall) -> InContext:
    return InContext(call, contextvars.copy_context())


class Registry:
    """Thread-safe map of names to the current ref of each supervised actor."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._refs: dict[str, pykka.ActorRef[Any] | None] = {}
        self._reserved: set[str] = set()  # the static tree's names: never free for `claim`

    # -- callers -------------------------------------------------------------------------

    def get(self, name: str) -> pykka.ActorRef[Any]:
        """The current ref. LookupError if the name is unknown or its actor is down right now."""
        with self._changed:
            ref = self._refs.get(name)
        if ref is None:
            raise LookupError(f"no running actor named {name!r}")
        return ref

    def names(self) -> list[str]:
        """Every known name, up or down (mid-restart), in the order they were declared: a
        supervisor declares all the static names below it when it is built, depth first."""
        with self._changed:
            return list(self._refs)

    def ask(self, name: str, method: str, *args: Any, timeout: float = 5.0, **kwargs: Any) -> Any:
        """Call `method(*args, **kwargs)` on the actor named `name`; block this thread for the result.

        Not for the trio thread (use `Tree.ask`). If the actor is mid-restart, or dies before the
        message reaches a handler, waits for the new instance and delivers there, all within
        `timeout` (pykka.Timeout after). The handler's own exceptions come back as they are and
        are never retried: the message was handled.
        """
        call = in_context(proxy_call(method, args, kwargs))
        deadline = time.monotonic() + timeout
        stale: pykka.ActorRef[Any] | None = None
        while True:
            ref = self.wait_for(name, replacing=stale, timeout=deadline - time.monotonic())
            try:
                return ref.ask(call, timeout=max(0.0, deadline - time.monotonic()))
            except pykka.ActorDeadError as exc:
                if is_crash(exc):
                    raise
                stale = ref

    def tell(self, name: str, method: str, *args: Any, **kwargs: Any) -> bool:
        """Send `method(*args, **kwargs)` without waiting. Never blocks.

        At most once: a tell to an actor that is down is dropped with a warning, and False is
        returned (tells still queued in an actor that crashes are lost too, unseen). Use `ask`
        when the sender must know the message was handled.
        """
        call = in_context(proxy_call(method, args, kwargs))
        with self._changed:
            if name not in self._refs:
                raise LookupError(f"no actor named {name!r}")
            ref = self._refs[name]
        if ref is not None:
            try:
                ref.tell(call)
                return True
            except pykka.ActorDeadError:
                pass  # died since; its supervisor has not unbound it yet
        logger.warning("tell dropped actor=%s method=%s reason=actor-down", name, method)
        return False

    def wait_for(
        self, name: str, *, replacing: pykka.ActorRef[Any] | None = None, timeout: float
    ) -> pykka.ActorRef[Any]:
        """The live ref for `name` other than `replacing`, waiting up to `timeout` seconds for it.

        `replacing` is a ref the caller found dead; the wait ends when its supervisor has put a
        successor in place. A timeout <= 0 only looks. LookupError if the name is (or becomes)
        unknown; pykka.Timeout if no such ref appears in time.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if name not in self._refs:
                    raise LookupError(f"no actor named {name!r}")
                ref = self._refs[name]
                if ref is not None and ref is not replacing:
                    return ref
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise pykka.Timeout(f"actor {name!r} did not come back within {timeout:.3f}s")
                self._changed.wait(remaining)

    # -- supervisors ---------------------------------------------------------------------

    def declare(self, name: str) -> None:
        """Make `name` known and down: callers wait for it instead of failing."""
        with self._changed:
            self._refs.setdefault(name, None)

    def reserve(self, names: Iterable[str]) -> None:
        """`names` (those of the static tree) can never be `claim`ed, even while forgotten: a
        supervisor restarted from its spec would bring them back."""
        with self._changed:
            self._reserved.update(names)

    def claim(self, names: Iterable[str]) -> str | None:
        """Declare every one of `names` (a dynamic child), or none of them: return the first that
        is known or reserved already. Atomic, so two supervisors cannot claim the same name."""
        names = list(names)
        with self._changed:
            for name in names:
                if name in self._refs or name in self._reserved:
                    return name
            for name in names:
                self._refs[name] = None
        return None

    def bind(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        """`name` is up as `ref`."""
        with self._changed:
            self._refs[name] = ref
            self._changed.notify_all()

    def unbind(self, name: str) -> None:
        """`name` is down (exited, or being stopped); it may come back."""
        with self._changed:
            if name in self._refs:
                self._refs[name] = None

    def forget(self, name: str) -> None:
        """`name` will not come back; waiting callers get LookupError."""
        with self._changed:
            self._refs.pop(name, None)
            self._changed.notify_all()
