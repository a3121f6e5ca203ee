"""A child whose start blocks: its start times out, counts as a failed start, and stalls no sibling."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import trio

from edge_runtime import Backoff, ChildSpec, StartTimedOut, SupervisorSpec, TreeFailed, supervision_tree
from tests.conftest_kernel import Boom, Countdown, Journal, Worker, worker

FAST = Backoff(initial=0.001, maximum=0.01, jitter=0.0)


class Hangs(Worker):
    """Every start blocks in `started()` until `release` is set."""

    def __init__(self, journal: Journal, name: str, release: threading.Event) -> None:
        super().__init__(journal, name)
        self.release = release

    def started(self) -> None:
        self.journal.add("attempt", self.name)
        self.release.wait()


class StuckOnRestart(Worker):
    """Starts normally the first time; every later start blocks in `started()` until `release` is set."""

    def __init__(self, journal: Journal, name: str, release: threading.Event, first: threading.Event) -> None:
        super().__init__(journal, name)
        self.release = release
        self.first = first

    def started(self) -> None:
        if self.first.is_set():
            self.journal.add("blocked", self.name, self.actor_urn)
            self.release.wait()
        self.first.set()
        super().started()


def stuck_on_restart(journal: Journal, name: str, release: threading.Event, start_timeout: float) -> ChildSpec:
    return ChildSpec(name, StuckOnRestart, args=(journal, name, release, threading.Event()),
                     start_timeout=start_timeout, shutdown_timeout=0.2)


@pytest.mark.parametrize(("intensity", "period"), [
    (50, 5.0),
    # b's timed-out starts are further apart than the period: each retry of b is immediate, and must
    # still leave the supervisor free to read a's exit between two of them.
    (3, 0.1),
])
async def test_a_sibling_crash_is_restarted_while_another_childs_start_is_blocked(
    caplog: pytest.LogCaptureFixture, intensity: int, period: float,
) -> None:
    journal = Journal()
    release = threading.Event()
    spec = SupervisorSpec("root", [worker(journal, "a"), stuck_on_restart(journal, "b", release, 0.3)],
                          intensity=intensity, period=period, backoff=FAST)
    try:
        with caplog.at_level(logging.WARNING, logger="edge_runtime"):
            async with supervision_tree(spec) as tree:
                a_before = await tree.ask("a", "ping")
                with pytest.raises(Boom):
                    await tree.ask("b", "crash")  # b's restart now blocks in started()
                await journal.wait_for(lambda: journal.events("blocked") != [])
                with pytest.raises(Boom):
                    await tree.ask("a", "crash")
                crashed = time.monotonic()
                assert await tree.ask("a", "ping", timeout=2.0) != a_before
                assert time.monotonic() - crashed < 1.5, "a's restart waited behind b's blocked start"
                # b's blocked starts timed out and count as failed starts: it is tried again.
                await journal.wait_for(lambda: len(journal.events("blocked")) >= 2)
                assert any("StartTimedOut" in r.getMessage() and "child=b" in r.getMessage() for r in caplog.records)
                abandoned = journal.events("blocked")[0][2]
                release.set()
                # The abandoned instance comes up late: it is stopped (its stopping() runs) and never
                # answers for b; the name goes to an instance the supervisor is waiting for.
                await journal.wait_for(lambda: ("stop", "b", abandoned) in journal.events("stop"))
                assert await tree.ask("b", "ping") != abandoned
    finally:
        release.set()


async def test_a_child_that_never_finishes_starting_fails_the_tree_instead_of_hanging_it() -> None:
    journal = Journal()
    release = threading.Event()
    hangs = ChildSpec("hangs", Hangs, args=(journal, "hangs", release), start_timeout=0.2, shutdown_timeout=0.2)
    spec = SupervisorSpec("root", [worker(journal, "a"), hangs], intensity=2, backoff=FAST)
    begun = time.monotonic()
    try:
        with pytest.raises(TreeFailed) as failed:
            async with supervision_tree(spec):
                pytest.fail("the body must not run")
        assert time.monotonic() - begun < 5.0
        assert "did not finish starting within 0.2s" in repr(failed.value.__cause__)
        assert len(journal.events("attempt")) == 1 + 3  # a once, then hangs: its first start and 2 restarts
        assert [e[1] for e in journal.events("stop")] == ["a"]
    finally:
        release.set()


def test_start_timeout_defaults_and_its_supervisor_bound() -> None:
    journal = Journal()
    child = worker(journal, "a")
    assert child.start_timeout == 5.0
    inner = SupervisorSpec("inner", [worker(journal, "x", start_timeout=1.0), worker(journal, "y", start_timeout=2.0)],
                           intensity=2, backoff=Backoff(maximum=0.5))
    # Every child's start may fail and be retried up to the intensity, each retry after a backoff.
    assert inner.start_timeout == pytest.approx((1.0 + 2.0) * 3 + 0.5 * 2 + 0.5)
    assert issubclass(StartTimedOut, TimeoutError)


async def test_a_child_supervisor_that_never_comes_up_is_stopped_not_left_retrying() -> None:
    journal = Journal()
    # x fails every start after 0.05 s; restarts further apart than inner's period never add up to
    # its intensity, so inner retries forever and never comes up: its parent's start timeout ends it.
    inner = SupervisorSpec("inner", [worker(journal, "x", start_delay=0.05, fail_start=Countdown(-1), start_timeout=0.2)],
                           intensity=1, period=0.01, backoff=Backoff(initial=0.01, maximum=0.1, jitter=0.0))
    assert inner.start_timeout == pytest.approx(0.2 * 2 + 0.1 + 0.5)
    spec = SupervisorSpec("root", [inner], intensity=1, backoff=FAST)
    with pytest.raises(TreeFailed):
        async with supervision_tree(spec):
            pytest.fail("the body must not run")
    # Every inner instance the root gave up on was stopped: nothing goes on retrying x.
    await journal.wait_for(lambda: _quiet(journal), timeout=3.0)
    attempts = len(journal.events("attempt"))
    await trio.sleep(0.5)
    assert len(journal.events("attempt")) == attempts


def _quiet(journal: Journal) -> bool:
    """No start attempt in the last 0.2 s."""
    times = journal.times("attempt", "x")
    return not times or time.monotonic() - times[-1] > 0.2
