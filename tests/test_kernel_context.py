"""Context variables travel with asks and tells by name: the handler runs in a copy of its sender's (the trace a
sale belongs to reaches the outbox actor), and what a handler binds never leaks into the next message."""

from __future__ import annotations

import contextvars
import threading

import trio

from edge_runtime import Actor, Backoff, ChildSpec, SupervisorSpec, supervision_tree
from tests.conftest import wait_until

REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


class Echo(Actor):
    """Answers what REQUEST holds where its handler runs, then binds its own value (which must not stick)."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[str] = []

    def seen(self) -> str:
        value = REQUEST.get()
        REQUEST.set("set by the handler")
        return value

    def relay(self) -> str:
        """Asks the other actor by name from this actor's thread: the context goes one hop further."""
        answer: str = self.registry.ask("other", "seen")
        return answer

    def note(self) -> None:
        self.told.append(REQUEST.get())

    def notes(self) -> list[str]:
        return list(self.told)


def _tree() -> SupervisorSpec:
    return SupervisorSpec("root", [ChildSpec("echo", Echo), ChildSpec("other", Echo)],
                          backoff=Backoff(initial=0.001, maximum=0.01, jitter=0.0))


async def test_the_senders_context_variables_reach_the_handler_and_go_no_further() -> None:
    async with supervision_tree(_tree()) as tree:
        REQUEST.set("sale-1")
        assert await tree.ask("echo", "seen") == "sale-1"
        assert await tree.ask("echo", "relay") == "sale-1", "an actor's ask by name carries what it was sent with"
        tree.tell("echo", "note")
        REQUEST.set("sale-2")
        assert await tree.ask("echo", "seen") == "sale-2", "the handler's own binding did not stick"
        assert REQUEST.get() == "sale-2", "nor did it reach the sender"

        def from_a_thread() -> str:
            REQUEST.set("thread")
            answer: str = tree.registry.ask("other", "seen")
            return answer
        assert await trio.to_thread.run_sync(from_a_thread) == "thread"
        assert threading.current_thread() is threading.main_thread()

        async def told() -> list[str]:
            notes: list[str] = await tree.ask("echo", "notes")
            return notes
        assert await wait_until(told) == ["sale-1"]
