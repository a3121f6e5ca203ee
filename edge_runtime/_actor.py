"""The base of every supervised actor: pykka's threading actor with OTP crash semantics.

In plain pykka an exception in an `ask` handler goes back to the caller and the actor
carries on, and a failing `on_start` is only logged: no supervisor could ever hear of
either. Here any exception escaping a handler (ask or tell), or `started()`, ends the
actor: the caller of an ask still gets the exception, the actor stops taking messages,
`stopping()` releases its resources, and the parent is told through its `Link` so it can
restart a fresh instance. State that a crash may have corrupted dies with the instance.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar, cast

import pykka
from pykka.messages import ProxyCall

from edge_runtime import _link as links
from edge_runtime import _timers as timers
from edge_runtime._errors import mark_crash
from edge_runtime._future import CallbackFuture
from edge_runtime._inbox import Inbox
from edge_runtime._registry import InContext, Registry

logger = logging.getLogger(__name__)


class Actor(pykka.ThreadingActor):
    """Base of every supervised actor. Its public methods are its protocol.

    Override `started()` and `stopping()`, not pykka's `on_start`/`on_stop`/`on_failure`.
    Threads are daemons: the tree, not interpreter exit, decides when actors stop, and an
    actor abandoned after its shutdown timeout must not keep the process alive.
    """

    use_daemon_thread: ClassVar[bool] = True

    registry: Registry
    """Where to reach other actors by name; injected by the supervisor before start."""

    actor_name: str
    """The name it is supervised (and registered) under."""

    _refusals: ClassVar[tuple[type[Exception], ...]] = ()
    """Exceptions a handler raises to refuse a request: they go back to the caller and the
    actor carries on (its state is intact: it refused before changing anything)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Double underscores: name-mangled, so subclasses' own attributes cannot clash with these.
        self.__link = links.current()
        self.__up = False  # started() returned: stopping() is owed
        self.__exit_reason: BaseException | None = None
        if self.__link is not None:
            self.registry, self.actor_name = self.__link.registry, self.__link.name
        else:
            self.registry, self.actor_name = Registry(), f"{type(self).__name__}-{self.actor_urn[9:17]}"

    # -- hooks for subclasses --------------------------------------------------------------

    def started(self) -> None:
        """Acquire resources and set up, on the actor's thread. Raising = a failed start."""

    def stopping(self) -> None:
        """Release what `started()` acquired. Runs once, after a normal stop or a crash alike."""

    # -- API -------------------------------------------------------------------------------

    def send_after(self, delay: float, method: str, *args: Any, still: Callable[[], bool] | None = None) -> None:
        """Tell this actor `method(*args)` after `delay` seconds; dropped if it has stopped by then, or if
        `still()`, asked on the timer thread when the delay is up, is False: a wake-up superseded meanwhile then
        costs no hop to the actor's thread (`still` only reads, and the handler checks again: it may turn False
        in between)."""
        ref = self.actor_ref
        call = ProxyCall(attr_path=(method,), args=args, kwargs={})

        def deliver() -> None:
            if still is not None and not still():
                return
            try:
                ref.tell(call)
            except pykka.ActorDeadError:
                pass

        if delay <= 0:
            deliver()
        else:
            timers.call_later(delay, deliver)

    # -- pykka hooks -----------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.started()
        except Exception as exc:
            # Not re-raised: pykka would only log it. The exit report carries it to the parent.
            self._exit_with(exc)
            return
        self.__up = True
        self._announce_up()

    def _announce_up(self) -> None:
        """Tell the parent this actor is up (its `started()` returned)."""
        if self.__link is not None:
            self.__link.up(self.actor_ref)

    def on_stop(self) -> None:
        self.__release()

    def _handle_receive(self, message: Any) -> Any:
        # The one place every message passes, ask or tell: an escaping exception ends the actor.
        # Re-raised so pykka still returns it to an asker (and logs it for a tell).
        if isinstance(message, InContext):  # an ask or tell by name: run in its sender's context variables
            return message.context.run(self._handle_receive, message.call)
        try:
            return super()._handle_receive(message)
        except Exception as exc:
            if isinstance(exc, self._refusals):
                raise
            mark_crash(exc, self.actor_name)
            self._exit_with(exc)
            raise

    def _handle_failure(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        # pykka stops the actor when a *tell* handler raises. A refusal is no crash: nobody
        # waits to hear it, so log it and carry on.
        if isinstance(exc_value, self._refusals):
            logger.warning("told request refused actor=%s reason=%r next=drop", self.actor_name, exc_value)
            return
        super()._handle_failure(exc_type, exc_value, traceback)

    @staticmethod
    def _create_actor_inbox() -> Inbox:
        # pykka's extension point for the mailbox: ours closes before the last drain (see inbox).
        return Inbox()

    def _actor_loop_teardown(self) -> None:
        cast(Inbox, self.actor_inbox).close()
        super()._actor_loop_teardown()

    @staticmethod
    def _create_future() -> CallbackFuture[Any]:
        # pykka's extension point for futures: ours can wake trio (see bridge.wait_future).
        return CallbackFuture()

    def _start_actor_loop(self) -> None:
        # pykka's extension point for the actor thread: ours reports the exit when the loop ends.
        threading.Thread(target=self.__run, name=self.actor_name, daemon=self.use_daemon_thread).start()

    # -- lifecycle -------------------------------------------------------------------------

    def _exit_with(self, reason: BaseException) -> None:
        """Stop taking messages now and exit with `reason`. Queued asks get ActorDeadError."""
        if self.__exit_reason is None:
            self.__exit_reason = reason
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def __release(self) -> None:
        """Run `stopping()` if it is owed; a failure in it becomes the exit reason."""
        if not self.__up:
            return
        self.__up = False
        try:
            self.stopping()
        except Exception as exc:
            logger.exception("stopping() failed actor=%s next=exit-abnormally", self.actor_name)
            if self.__exit_reason is None:
                self.__exit_reason = exc

    def __run(self) -> None:
        try:
            self._actor_loop()
        except BaseException as exc:  # SystemExit in started(): pykka only catches Exception there
            self.__exit_reason = self.__exit_reason or exc
            raise
        finally:
            self._actor_loop_teardown()  # again if the loop ended normally: by then a no-op
            self.__release()  # a crash skips on_stop: release before a successor is started
            if self.__link is not None:
                self.__link.down(self.actor_urn, self.__exit_reason)
