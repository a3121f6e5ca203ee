"""The trio <-> actor bridge and the registry: asking by name, across threads and restarts."""

from __future__ import annotations

import time

import pykka
import pytest
import trio

from edge_runtime import Actor, Backoff, ChildSpec, SupervisorSpec, supervision_tree
from edge_runtime._registry import proxy_call
from tests.conftest import wait_until
from tests.conftest_kernel import Boom, Journal, Worker, worker

FAST = Backoff(initial=0.001, maximum=0.01, jitter=0.0)


def sup(children: list, **kwargs) -> SupervisorSpec:
    return SupervisorSpec("root", children, backoff=FAST, **kwargs)


async def test_tree_ask_does_not_block_the_trio_loop() -> None:
    journal = Journal()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with supervision_tree(sup([worker(journal, "slow")])) as tree:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.sleep(0)
            begun = time.monotonic()
            assert await tree.ask("slow", "sleep", 0.3) == 0.3
            assert time.monotonic() - begun >= 0.3
            nursery.cancel_scope.cancel()
    assert ticks >= 5  # ~30 possible; a blocked loop would give 0 or 1


async def test_many_concurrent_asks_from_trio() -> None:
    journal = Journal()
    async with supervision_tree(sup([worker(journal, "a")])) as tree:
        results: list[float] = []

        async def one(i: int) -> None:
            results.append(await tree.ask("a", "sleep", 0))

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)
    assert len(results) == 200


async def test_registry_ask_from_a_thread_waits_for_the_restarted_instance() -> None:
    journal = Journal()
    async with supervision_tree(sup([worker(journal, "a", start_delay=0.15)])) as tree:
        first = await tree.ask("a", "ping")
        begun = time.monotonic()
        with pytest.raises(Boom):
            await tree.ask("a", "crash")
        # The successor spends 0.15 s in started(): a blocking ask from a plain thread waits for it.
        second = await trio.to_thread.run_sync(lambda: tree.registry.ask("a", "ping", timeout=2.0))
        assert second != first
        assert time.monotonic() - begun >= 0.15
        assert tree.registry.get("a").actor_urn == second


async def test_asks_queued_behind_a_crash_are_delivered_to_the_successor() -> None:
    journal = Journal()
    async with supervision_tree(sup([worker(journal, "a")])) as tree:
        first = await tree.ask("a", "ping")
        answers: list[str] = []

        async def crash() -> None:
            with pytest.raises(Boom):
                await tree.ask("a", "crash", 0.1)

        async def ping() -> None:
            answers.append(await tree.ask("a", "ping"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(crash)
            await trio.sleep(0.02)  # the crash is being handled; these asks queue behind it
            for _ in range(5):
                nursery.start_soon(ping)
        assert len(answers) == 5
        assert first not in answers and len(set(answers)) == 1


class Relay(Actor):
    """Asks a dead actor with a raw pykka ref: the ActorDeadError escapes its handler."""

    calls = 0

    def relay(self) -> None:
        Relay.calls += 1
        dead = pykka.ThreadingActor.start()
        dead.stop()
        dead.ask("anything")


async def test_actor_dead_error_raised_by_a_handler_is_not_retried() -> None:
    async with supervision_tree(sup([ChildSpec("relay", Relay)])) as tree:
        with pytest.raises(pykka.ActorDeadError):
            await tree.ask("relay", "relay")
        with pytest.raises(pykka.ActorDeadError):
            await trio.to_thread.run_sync(lambda: tree.registry.ask("relay", "relay"))
        assert Relay.calls == 2  # handled once each: not replayed on the restarted instance

        async def restarted_twice() -> bool:  # the caller hears of the crash before the restart
            return tree.restarts == 2

        await wait_until(restarted_twice, timeout=5)
        assert Relay.calls == 2


class EarlyBird(Actor):
    """Its first message, queued by started(), tells itself by name: the name must be up by then."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def started(self) -> None:
        self.send_after(0.0, "first")

    def first(self) -> None:
        self.registry.tell("bird", "second")

    def second(self) -> None:
        self.journal.add("second")


async def test_a_child_is_reachable_by_name_from_its_first_message() -> None:
    """A device reporting to the manager it was just started by must not be dropped: the name is
    published when started() returns, not when the supervisor's thread next runs."""
    for _ in range(20):
        journal = Journal()
        async with supervision_tree(sup([ChildSpec("bird", EarlyBird, (journal,))])):
            await journal.wait_for(lambda journal=journal: journal.events("second") == [("second",)])


def test_mail_that_races_an_actors_death_is_refused_not_lost() -> None:
    """pykka checks is_alive() and then enqueues: mail that lands after the dying actor's last drain
    must still be answered (ActorDeadError, so the registry redelivers), never wait out a timeout."""
    journal = Journal()
    ref = Worker.start(journal, "w")
    assert ref.ask(proxy_call("ping", (), {}), timeout=5)
    ref.stop(block=True)
    ref.actor_stopped.clear()  # as seen by a sender that checked is_alive() just before the death
    begun = time.monotonic()
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(proxy_call("ping", (), {}), timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(proxy_call("ping", (), {}))
    assert ref.stop(block=True, timeout=5) is True
    assert time.monotonic() - begun < 4  # answered at once, not after a timeout


async def test_actors_reach_each_other_by_name_across_restarts() -> None:
    journal = Journal()
    async with supervision_tree(sup([worker(journal, "a"), worker(journal, "b")], intensity=5)) as tree:
        assert await tree.ask("b", "ask_peer", "a") == await tree.ask("a", "ping")
        with pytest.raises(Boom):
            await tree.ask("a", "crash")
        assert await tree.ask("b", "ask_peer", "a") == await tree.ask("a", "ping")


async def test_unknown_names_private_methods_and_timeouts() -> None:
    journal = Journal()
    async with supervision_tree(sup([worker(journal, "a")])) as tree:
        with pytest.raises(LookupError):
            await tree.ask("nobody", "ping")
        with pytest.raises(LookupError):
            tree.tell("nobody", "ping")
        with pytest.raises(LookupError):
            tree.registry.get("nobody")
        with pytest.raises(ValueError, match="private"):
            await tree.ask("a", "_exit", None)
        with pytest.raises(pykka.Timeout):
            await tree.ask("a", "sleep", 0.3, timeout=0.05)
        with pytest.raises(pykka.Timeout):
            await trio.to_thread.run_sync(lambda: tree.registry.ask("a", "sleep", 0.3, timeout=0.05))


async def test_send_after_delivers_later_and_not_after_stop() -> None:
    journal = Journal()
    async with supervision_tree(sup([worker(journal, "a")])) as tree:
        await tree.ask("a", "tick_after", 0.05)
        await journal.wait_for(lambda: journal.events("tick"))
        (_, _, waited), = journal.events("tick")
        assert 0.045 <= waited < 1.0
        await tree.ask("a", "tick_after", 0.5)
    await trio.sleep(0.7)  # the tree (and "a") stopped before the tick was due
    assert len(journal.events("tick")) == 1


async def test_restart_counter_and_health() -> None:
    journal = Journal()
    async with supervision_tree(sup([worker(journal, "a")], intensity=10)) as tree:
        for _ in range(3):
            with pytest.raises(Boom):
                await tree.ask("a", "crash")
        await tree.ask("a", "ping")
        assert tree.restarts == 3
        assert tree.healthy()
