"""Supervision semantics on real pykka threads: strategies, restart types, intensity, backoff."""

from __future__ import annotations

import logging
import re
import threading
import time

import pykka
import pytest
import trio

from edge_runtime import Backoff, Restart, Strategy, SupervisorSpec, TreeFailed, supervision_tree
from tests.conftest_kernel import Boom, Countdown, Journal, worker

FAST = Backoff(initial=0.001, maximum=0.01, jitter=0.0)


def sup(name: str, children: list, **kwargs) -> SupervisorSpec:
    kwargs.setdefault("backoff", FAST)
    return SupervisorSpec(name, children, **kwargs)


async def urns(tree, *names: str) -> dict[str, str]:
    return {name: await tree.ask(name, "ping") for name in names}


async def test_children_start_in_order_and_stop_in_reverse() -> None:
    journal = Journal()
    spec = sup("root", [
        worker(journal, "a"), worker(journal, "b", needs="a"), worker(journal, "c", needs="b"),
    ])
    async with supervision_tree(spec) as tree:
        assert [e[1] for e in journal.events("start")] == ["a", "b", "c"]
        assert tree.registry.names() == ["root", "a", "b", "c"]  # supervisors are registered too
        assert tree.healthy()
    assert [e[1] for e in journal.events("stop")] == ["c", "b", "a"]
    assert not tree.healthy()


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, ["b"]),
        (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
        (Strategy.REST_FOR_ONE, ["b", "c"]),
    ],
)
async def test_strategy_restarts_the_right_children_in_order(
    strategy: Strategy, restarted: list[str]
) -> None:
    journal = Journal()
    spec = sup("root", [worker(journal, n) for n in "abc"], strategy=strategy)
    async with supervision_tree(spec) as tree:
        before = await urns(tree, "a", "b", "c")
        with pytest.raises(Boom):
            await tree.ask("b", "crash")
        await journal.wait_for(lambda: len(journal.events("start")) == 3 + len(restarted))
        after = await urns(tree, "a", "b", "c")
        assert sorted(n for n in "abc" if after[n] != before[n]) == restarted
        # Siblings are stopped in reverse order, then everything restarts in start order.
        stopped_by_supervisor = [e[1] for e in journal.events("stop") if e[1] != "b"]
        assert stopped_by_supervisor == [n for n in reversed(restarted) if n != "b"]
        assert [e[1] for e in journal.events("start")[3:]] == restarted
        assert tree.restarts == 1


async def test_failing_ask_reaches_caller_and_supervisor() -> None:
    journal = Journal()
    async with supervision_tree(sup("root", [worker(journal, "a")])) as tree:
        first = await tree.ask("a", "ping")
        with pytest.raises(Boom, match="told to crash") as raised:
            await tree.ask("a", "crash")
        assert any("crashed actor" in note for note in raised.value.__notes__)
        assert await tree.ask("a", "ping") != first
        assert tree.restarts == 1
        # The crashed instance released its resources and left pykka's global registry.
        assert journal.events("stop") == [("stop", "a", first)]
        assert first not in {ref.actor_urn for ref in pykka.ActorRegistry.get_all()}


async def test_failing_tell_reaches_supervisor() -> None:
    journal = Journal()
    async with supervision_tree(sup("root", [worker(journal, "a")])) as tree:
        first = await tree.ask("a", "ping")
        tree.tell("a", "crash")
        await journal.wait_for(lambda: len(journal.events("start")) == 2)
        assert await tree.ask("a", "ping") != first


async def test_failing_started_is_restarted_until_it_comes_up() -> None:
    journal = Journal()
    spec = sup("root", [worker(journal, "a", fail_start=Countdown(2)), worker(journal, "b")], intensity=5)
    async with supervision_tree(spec) as tree:
        assert [e[1] for e in journal.events("attempt")] == ["a", "a", "a", "b"]  # b waited for a
        assert tree.restarts == 2
        assert journal.events("stop") == []  # a failed start owes no stopping()


async def test_failing_started_exhausts_intensity_so_the_tree_fails_to_start() -> None:
    journal = Journal()
    spec = sup("root", [worker(journal, "a"), worker(journal, "b", fail_start=Countdown(-1))], intensity=2)
    with pytest.raises(TreeFailed):
        async with supervision_tree(spec):
            pytest.fail("the body must not run")
    assert len(journal.events("attempt")) == 1 + 3
    assert [e[1] for e in journal.events("stop")] == ["a"]  # what had started is stopped


async def test_permanent_child_is_restarted_after_a_normal_stop() -> None:
    journal = Journal()
    async with supervision_tree(sup("root", [worker(journal, "a")])) as tree:
        first = await tree.ask("a", "ping")
        await tree.ask("a", "quit")
        await journal.wait_for(lambda: len(journal.events("start")) == 2)
        assert await tree.ask("a", "ping") != first


async def test_transient_child_is_restarted_after_a_crash_only() -> None:
    journal = Journal()
    async with supervision_tree(sup("root", [worker(journal, "t", restart=Restart.TRANSIENT)])) as tree:
        first = await tree.ask("t", "ping")
        with pytest.raises(Boom):
            await tree.ask("t", "crash")
        assert await tree.ask("t", "ping") != first
        await tree.ask("t", "quit")
        await journal.wait_for(lambda: "t" not in tree.registry.names())
        with pytest.raises(LookupError):
            await tree.ask("t", "ping")
        assert tree.restarts == 1


async def test_temporary_child_is_never_restarted() -> None:
    journal = Journal()
    spec = sup("root", [worker(journal, "tmp", restart=Restart.TEMPORARY), worker(journal, "p")],
               strategy=Strategy.ONE_FOR_ALL)
    async with supervision_tree(spec) as tree:
        with pytest.raises(Boom):
            await tree.ask("tmp", "crash")
        await journal.wait_for(lambda: "tmp" not in tree.registry.names())
        assert tree.restarts == 0
        assert len(journal.events("start")) == 2  # its death did not touch its sibling either


async def test_child_supervisor_escalates_to_its_parent() -> None:
    journal = Journal()
    inner = sup("inner", [worker(journal, "w1"), worker(journal, "w2")], intensity=1)
    spec = sup("root", [worker(journal, "x"), inner])
    async with supervision_tree(spec) as tree:
        x, w2 = await tree.ask("x", "ping"), await tree.ask("w2", "ping")
        with pytest.raises(Boom):
            await tree.ask("w1", "crash")  # inner restarts w1: 1 restart, within its intensity
        assert await tree.ask("w2", "ping") == w2
        with pytest.raises(Boom):
            await tree.ask("w1", "crash")  # 2 > 1: inner stops w2 and escalates; root restarts inner
        await journal.wait_for(lambda: len(journal.events("start")) == 3 + 1 + 2)
        assert await tree.ask("w2", "ping") != w2  # w2 came back with a fresh inner
        assert await tree.ask("x", "ping") == x  # one_for_one at the root: x untouched
        assert tree.restarts == 2
        assert tree.healthy()


async def test_root_escalation_cancels_the_body_and_raises_tree_failed() -> None:
    journal = Journal()
    spec = sup("root", [worker(journal, "a"), worker(journal, "b")], intensity=0)
    reached_end = False
    with pytest.raises(TreeFailed) as failed:
        async with supervision_tree(spec) as tree:
            with pytest.raises(Boom):
                await tree.ask("b", "crash")
            await tree.wait_failed()
            assert not tree.healthy()
            await trio.sleep(5)
            reached_end = True
    assert not reached_end
    assert "gave up" in str(failed.value)
    assert [e[1] for e in journal.events("stop")] == ["b", "a"]


async def test_shutdown_stops_in_reverse_and_abandons_a_hung_child_after_its_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    release = threading.Event()
    spec = sup("root", [
        worker(journal, "a"),
        worker(journal, "hung", hang_on_stop=release, shutdown_timeout=0.2),
        worker(journal, "c"),
    ])
    try:
        with caplog.at_level(logging.WARNING, logger="edge_runtime._supervisor"):
            async with supervision_tree(spec):
                pass
            begun = time.monotonic()
        assert [e[1] for e in journal.events("stop")] == ["c", "hung", "a"]
        assert time.monotonic() - begun < 1.0
        assert any("child=hung" in r.getMessage() and "abandon" in r.getMessage() for r in caplog.records)
    finally:
        release.set()


async def test_shutdown_is_timed_from_stop_not_start() -> None:
    # Guard for the test above: the clock there starts after the block, so measure the stop itself.
    journal = Journal()
    release = threading.Event()
    spec = sup("root", [worker(journal, "hung", hang_on_stop=release, shutdown_timeout=0.3)])
    try:
        async with supervision_tree(spec):
            begun = time.monotonic()
        assert 0.25 < time.monotonic() - begun < 1.0
    finally:
        release.set()


async def test_backoff_grows_between_consecutive_restarts(caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal()
    backoff = Backoff(initial=0.02, maximum=1.0, multiplier=2.0, jitter=0.0)
    spec = sup("root", [worker(journal, "f", fail_start=Countdown(5))], intensity=10, backoff=backoff)
    with caplog.at_level(logging.WARNING, logger="edge_runtime._supervisor"):
        async with supervision_tree(spec) as tree:
            attempts = journal.times("attempt", "f")
            assert tree.restarts == 5
    # The decided delays: the first restart is immediate, then 0.02, 0.04, 0.08, 0.16 seconds.
    delays = [float(m.group(1)) for r in caplog.records if (m := re.search(r"delay=([0-9.]+)s", r.getMessage()))]
    assert delays == [0.0, 0.02, 0.04, 0.08, 0.16]
    # And they were kept: no attempt came early (a busy machine can only make them late).
    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
    assert len(gaps) == 5
    for gap, expected in zip(gaps[1:], delays[1:], strict=False):
        assert gap >= expected * 0.9


async def test_one_for_one_siblings_do_not_wait_for_each_others_backoff() -> None:
    journal = Journal()
    backoff = Backoff(initial=0.5, maximum=1.0, jitter=0.0)
    spec = sup("root", [worker(journal, "x"), worker(journal, "y")], intensity=10, backoff=backoff)
    async with supervision_tree(spec) as tree:
        for _ in range(2):  # the second crash in a row puts x in a 0.5 s backoff
            with pytest.raises(Boom):
                await tree.ask("x", "crash")
        with pytest.raises(Boom):
            await tree.ask("y", "crash")
        await tree.ask("y", "ping")
        await tree.ask("x", "ping", timeout=2.0)
    x_crashed = journal.times("crash", "x")[-1]
    x_back, y_back = journal.times("start", "x")[-1], journal.times("start", "y")[-1]
    assert y_back < x_back  # y's immediate restart was not held behind x's backoff
    assert x_back - x_crashed >= 0.45  # x waited out its own


def test_backoff_jitter_stays_within_its_band() -> None:
    backoff = Backoff(initial=0.1, maximum=0.3, multiplier=2.0, jitter=0.2)
    assert backoff.delay(1) == 0.0
    delays = [backoff.delay(3) for _ in range(200)]
    assert all(0.16 <= d <= 0.24 for d in delays) and len(set(delays)) > 1
    assert all(0.24 <= backoff.delay(10) <= 0.36 for _ in range(50))  # capped at maximum
    assert 0.24 <= backoff.delay(5000) <= 0.36  # no overflow in a long crash loop


def test_duplicate_names_are_rejected() -> None:
    journal = Journal()
    spec = sup("root", [worker(journal, "a"), sup("inner", [worker(journal, "a")])])
    with pytest.raises(ValueError, match="duplicate name 'a'"):
        spec.validate()
