"""Dynamic children (start_child / terminate_child) on real pykka threads under real trio."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import trio

from edge_runtime import (
    Actor,
    Backoff,
    ChildRefused,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorSpec,
    supervision_tree,
)
from edge_runtime._supervisor import Supervisor
from tests.conftest_kernel import Boom, Countdown, Journal, worker

FAST = Backoff(initial=0.001, maximum=0.01, jitter=0.0)


def sup(name: str, children: list, **kwargs) -> SupervisorSpec:
    kwargs.setdefault("backoff", FAST)
    return SupervisorSpec(name, children, **kwargs)


def store(journal: Journal, devices: list | None = None, **kwargs) -> SupervisorSpec:
    """A root with one static actor and an (initially empty) "devices" supervisor."""
    return sup("root", [worker(journal, "a"), sup("devices", devices or [], **kwargs)])


async def urns(tree, *names: str) -> dict[str, str]:
    return {name: await tree.ask(name, "ping") for name in names}


async def test_start_child_from_trio_is_up_when_it_returns() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        assert await tree.ask("root", "which_children") == [("a", True), ("devices", True)]
        assert await tree.ask("devices", "which_children") == []
        await tree.start_child("devices", worker(journal, "scale"))
        # Up on return: started() ran and the name is bound, without waiting.
        assert [e[1] for e in journal.events("start")] == ["a", "scale"]
        assert tree.registry.get("scale").actor_urn == await tree.ask("scale", "ping")
        assert await tree.ask("devices", "which_children") == [("scale", True)]
        assert tree.healthy() and tree.restarts == 0


class Manager(Actor):
    """The device manager: plugs and unplugs devices from its own thread, by asking "devices"."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def plug(self, name: str) -> str:
        self.registry.ask("devices", "start_child", worker(self.journal, name), timeout=5.0)
        return self.registry.get(name).actor_urn  # up, and bound, once start_child returned

    def unplug(self, name: str) -> bool:
        return self.registry.ask("devices", "terminate_child", name, timeout=5.0)


async def test_start_and_terminate_child_from_another_actor_thread() -> None:
    journal = Journal()
    spec = sup("root", [sup("devices", []), ChildSpec("manager", Manager, (journal,))])
    async with supervision_tree(spec) as tree:
        urn = await tree.ask("manager", "plug", "drawer")
        assert await tree.ask("drawer", "ping") == urn
        assert await tree.ask("manager", "unplug", "drawer") is True
        assert journal.events("stop") == [("stop", "drawer", urn)]
        assert await tree.ask("manager", "unplug", "drawer") is False
        # A plain thread (not trio, not an actor) can do the same through the registry.
        await trio.to_thread.run_sync(
            lambda: tree.registry.ask("devices", "start_child", worker(journal, "pinpad")))
        assert await tree.ask("devices", "which_children") == [("pinpad", True)]


async def test_dynamic_permanent_child_is_restarted_after_a_crash() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        await tree.start_child("devices", worker(journal, "d"))
        first = await tree.ask("d", "ping")
        with pytest.raises(Boom):
            await tree.ask("d", "crash")
        assert await tree.ask("d", "ping") not in (None, first)
        assert tree.restarts == 1


async def test_dynamic_transient_child_is_restarted_after_a_crash_and_gone_after_a_normal_stop() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        await tree.start_child("devices", worker(journal, "t", restart=Restart.TRANSIENT))
        first = await tree.ask("t", "ping")
        with pytest.raises(Boom):
            await tree.ask("t", "crash")
        assert await tree.ask("t", "ping") != first
        await tree.ask("t", "quit")
        await journal.wait_for(lambda: "t" not in tree.registry.names())
        assert await tree.ask("devices", "which_children") == []
        await tree.start_child("devices", worker(journal, "t"))  # the name is free again
        await tree.ask("t", "ping")


async def test_dynamic_temporary_child_is_forgotten_after_a_crash() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        await tree.start_child("devices", worker(journal, "tmp", restart=Restart.TEMPORARY))
        with pytest.raises(Boom):
            await tree.ask("tmp", "crash")
        await journal.wait_for(lambda: "tmp" not in tree.registry.names())
        with pytest.raises(LookupError):
            await tree.ask("tmp", "ping")
        assert await tree.ask("devices", "which_children") == []
        assert tree.restarts == 0
        await tree.start_child("devices", worker(journal, "tmp", restart=Restart.TEMPORARY))
        await tree.ask("tmp", "ping")


async def test_failed_first_start_is_a_crash_not_an_error_for_the_caller() -> None:
    journal = Journal()
    async with supervision_tree(store(journal, intensity=5)) as tree:
        # Fails once: the first restart is immediate, so it is up by the time start_child returns.
        await tree.start_child("devices", worker(journal, "flaky", fail_start=Countdown(1)))
        assert await tree.ask("devices", "which_children") == [("flaky", True)]
        assert tree.restarts == 1
        # A temporary child that fails to start is simply gone, and its name free.
        await tree.start_child("devices", worker(journal, "dud", restart=Restart.TEMPORARY,
                                                 fail_start=Countdown(-1)))
        assert "dud" not in tree.registry.names()
        assert await tree.ask("devices", "which_children") == [("flaky", True)]


async def test_terminate_child_stops_removes_and_frees_the_name() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        await tree.start_child("devices", worker(journal, "d", fail_stop=True))
        urn = await tree.ask("d", "ping")
        assert await tree.terminate_child("devices", "d") is True
        # stopping() ran before terminate_child returned; it crashed, and still no restart.
        assert journal.events("stop") == [("stop", "d", urn)]
        assert "d" not in tree.registry.names()
        with pytest.raises(LookupError):
            await tree.ask("d", "ping")
        await trio.sleep(0.05)
        assert len(journal.events("attempt")) == 2  # a and d, once each
        assert await tree.ask("devices", "which_children") == []
        assert tree.restarts == 0
        assert await tree.terminate_child("devices", "d") is False
        assert await tree.terminate_child("devices", "nobody") is False


async def test_terminate_child_removes_a_child_waiting_out_its_backoff() -> None:
    journal = Journal()
    backoff = Backoff(initial=1.0, maximum=2.0, jitter=0.0)
    async with supervision_tree(store(journal, intensity=10, backoff=backoff)) as tree:
        await tree.start_child("devices", worker(journal, "broken", fail_start=Countdown(-1)))
        # Two failed attempts (the first restart is immediate, from the supervisor's mailbox), then a 1 s backoff.
        await journal.wait_for(lambda: len(journal.events("attempt")) == 1 + 2)
        assert await tree.ask("devices", "which_children") == [("broken", False)]
        assert await tree.terminate_child("devices", "broken") is True
        await trio.sleep(1.2)
        assert len(journal.events("attempt")) == 1 + 2
        assert "broken" not in tree.registry.names()


async def test_names_in_use_are_refused_without_crashing_the_supervisor() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        await tree.start_child("devices", worker(journal, "d"))
        devices = tree.registry.get("devices")
        for name in ["a", "d", "devices", "root"]:
            with pytest.raises(ValueError, match=f"name '{name}' is already in use"):
                await tree.start_child("devices", worker(journal, name))
        with pytest.raises(ChildRefused, match="'d' is already in use"):  # a name inside a spec
            await tree.start_child("devices", sup("group", [worker(journal, "x"), worker(journal, "d")]))
        with pytest.raises(ChildRefused, match="duplicate name 'x'"):
            await tree.start_child("devices", sup("group", [worker(journal, "x"), worker(journal, "x")]))
        with pytest.raises(ChildRefused, match="not a child spec"):
            await tree.start_child("devices", "d")
        # Two supervisors cannot share a name either, and a refusal claims nothing.
        with pytest.raises(ChildRefused):
            await tree.start_child("root", worker(journal, "d"))
        assert "group" not in tree.registry.names() and "x" not in tree.registry.names()
        assert tree.registry.get("devices") is devices  # the supervisor carried on
        assert await tree.ask("devices", "which_children") == [("d", True)]
        assert tree.restarts == 0


async def test_static_names_are_never_reused_even_once_forgotten() -> None:
    journal = Journal()
    spec = sup("root", [worker(journal, "once", restart=Restart.TEMPORARY), sup("devices", [])])
    async with supervision_tree(spec) as tree:
        await tree.ask("once", "quit")
        await journal.wait_for(lambda: "once" not in tree.registry.names())
        with pytest.raises(ChildRefused):  # a restart of root would bring "once" back
            await tree.start_child("devices", worker(journal, "once"))


async def test_plug_unplug_the_same_name_20_times_leaks_nothing() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        baseline = threading.active_count()
        begun = time.monotonic()
        for _ in range(20):
            await tree.start_child("devices", worker(journal, "d"))
            await tree.ask("d", "ping")
            assert await tree.terminate_child("devices", "d") is True
        assert time.monotonic() - begun < 2.0
        with trio.fail_after(1.0):
            while threading.active_count() > baseline:
                await trio.sleep(0.005)
        assert "d" not in tree.registry.names()
        assert await tree.ask("devices", "which_children") == []
        assert len(journal.events("start")) == len(journal.events("stop")) + 1 == 21
        assert tree.restarts == 0


async def test_crashing_dynamic_child_under_one_for_one_never_restarts_its_siblings() -> None:
    journal = Journal()
    async with supervision_tree(store(journal, [worker(journal, "s")], intensity=10)) as tree:
        for name in ["d1", "d2", "d3"]:
            await tree.start_child("devices", worker(journal, name))
        before = await urns(tree, "a", "s", "d1", "d2", "d3")
        for _ in range(3):
            with pytest.raises(Boom):
                await tree.ask("d2", "crash")
            await tree.ask("d2", "ping")
        after = await urns(tree, "a", "s", "d1", "d2", "d3")
        assert [n for n in before if before[n] != after[n]] == ["d2"]
        assert [e[1] for e in journal.events("stop")] == ["d2"] * 3
        assert tree.restarts == 3


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ALL, ["s", "d1", "d2"]),
        (Strategy.REST_FOR_ONE, ["d1", "d2"]),
    ],
)
async def test_group_strategies_treat_dynamic_children_in_order_of_addition(
    strategy: Strategy, restarted: list[str]
) -> None:
    journal = Journal()
    async with supervision_tree(store(journal, [worker(journal, "s")], strategy=strategy)) as tree:
        await tree.start_child("devices", worker(journal, "d1"))
        await tree.start_child("devices", worker(journal, "d2"))
        before = await urns(tree, "s", "d1", "d2")
        starts = len(journal.events("start"))
        with pytest.raises(Boom):
            await tree.ask("d1", "crash")
        await journal.wait_for(lambda: len(journal.events("start")) == starts + len(restarted))
        after = await urns(tree, "s", "d1", "d2")
        assert [n for n in before if before[n] != after[n]] == restarted
        assert [e[1] for e in journal.events("start")[starts:]] == restarted
        stopped_by_supervisor = [e[1] for e in journal.events("stop") if e[1] != "d1"]
        assert stopped_by_supervisor == [n for n in reversed(restarted) if n != "d1"]
        assert tree.restarts == 1


async def test_ordered_start_child_waits_behind_a_sibling_in_backoff_without_spinning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resumes = 0
    resume = Supervisor._resume

    def counting(self: Supervisor, generation: int) -> None:
        nonlocal resumes
        resumes += 1
        resume(self, generation)

    monkeypatch.setattr(Supervisor, "_resume", counting)
    journal = Journal()
    backoff = Backoff(initial=1.0, maximum=2.0, jitter=0.0)
    spec = store(journal, [worker(journal, "s")], strategy=Strategy.ONE_FOR_ALL, intensity=10, backoff=backoff)
    async with supervision_tree(spec) as tree:
        await tree.start_child("devices", worker(journal, "d1"))
        for _ in range(2):  # the second crash in a row puts the whole group in a 1 s backoff
            with pytest.raises(Boom):
                await tree.ask("s", "crash")
        await tree.start_child("devices", worker(journal, "d2"))  # returns at once, d2 queued
        assert await tree.ask("devices", "which_children") == [("s", False), ("d1", False), ("d2", False)]
        starts = len(journal.events("start"))
        await tree.ask("d2", "ping", timeout=3.0)
        assert [e[1] for e in journal.events("start")[starts:]] == ["s", "d1", "d2"]
    assert resumes < 5


async def test_dynamic_restarts_count_towards_intensity_and_a_restarted_supervisor_has_only_static_children(
) -> None:
    journal = Journal()
    async with supervision_tree(store(journal, [worker(journal, "s")], intensity=1)) as tree:
        await tree.start_child("devices", worker(journal, "d"))
        devices = tree.registry.get("devices")
        with pytest.raises(Boom):
            await tree.ask("d", "crash")
        await tree.ask("d", "ping")
        with pytest.raises(Boom):
            await tree.ask("d", "crash")  # 2 > 1: devices escalates, root restarts it from its spec
        await journal.wait_for(lambda: len(journal.events("start", )) == 1 + 2 + 1 + 1)
        assert await tree.ask("devices", "which_children") == [("s", True)]  # waits for it to be bound
        assert tree.registry.get("devices", ) is not devices
        with pytest.raises(LookupError):
            await tree.ask("d", "ping")
        await tree.start_child("devices", worker(journal, "d"))  # plug again
        assert tree.healthy()


async def test_tree_exit_stops_dynamic_children_in_reverse_order_of_addition() -> None:
    journal = Journal()
    async with supervision_tree(store(journal, [worker(journal, "s")])) as tree:
        for name in ["d1", "d2", "d3"]:
            await tree.start_child("devices", worker(journal, name))
        await tree.start_child("root", worker(journal, "late"))  # the root takes children too
    assert [e[1] for e in journal.events("stop")] == ["late", "d3", "d2", "d1", "s", "a"]
    assert not {"d1", "d2", "d3", "late"} & set(tree.registry.names())


async def test_shutdown_waits_for_dynamic_children_not_just_the_static_spec(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "devices" has no static children: its spec's shutdown timeout is 0.5 s, but its dynamic
    # child may take 2 s to stop. Its parent and the tree must wait for it, not abandon it.
    journal = Journal()
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        async with supervision_tree(store(journal)) as tree:
            await tree.start_child("devices", worker(journal, "slow", stop_delay=0.6, shutdown_timeout=2.0))
        assert [e[1] for e in journal.events("stopped")] == ["slow"]
    assert not [r for r in caplog.records if "abandon" in r.getMessage()]


async def test_supervisors_are_reachable_by_name_but_not_their_hooks() -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        assert tree.registry.names()[:3] == ["root", "a", "devices"]
        assert await trio.to_thread.run_sync(lambda: tree.registry.ask("root", "which_children")) == [
            ("a", True), ("devices", True)]
        for hook in ["stopping", "started"]:
            with pytest.raises(ValueError, match="lifecycle hook"):
                await tree.ask("devices", hook)
        await tree.start_child("devices", sup("pumps", [worker(journal, "p1")]))
        assert await tree.ask("pumps", "which_children") == [("p1", True)]
        assert await tree.terminate_child("devices", "pumps") is True
        assert not {"pumps", "p1"} & set(tree.registry.names())
        assert [e[1] for e in journal.events("stop")] == ["p1"]


async def test_a_refused_tell_is_dropped_with_a_warning_and_the_supervisor_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    async with supervision_tree(store(journal)) as tree:
        devices = tree.registry.get("devices")
        with caplog.at_level(logging.WARNING, logger="edge_runtime"):
            tree.tell("devices", "start_child", worker(journal, "a"))  # "a" is taken
            tree.tell("devices", "start_child", worker(journal, "d"))
            # Asked after both tells: the same mailbox has handled them by the time it answers.
            assert await tree.ask("devices", "which_children") == [("d", True)]
        assert tree.registry.get("devices") is devices
        assert any("refused" in r.getMessage() for r in caplog.records)
        assert tree.restarts == 0
