"""The trio side of the kernel: run a supervision tree for the duration of an `async with`.

trio is the application's concurrency model; actors live on their own threads. The tree
is the bridge: it starts the root supervisor, lets trio tasks ask actors by name without
ever blocking the trio thread, and turns the root giving up into `TreeFailed` raised out
of the `async with`, so that the process exits and its own supervisor (systemd) takes over.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pykka
import trio

from edge_runtime._bridge import call_soon, wait_future
from edge_runtime._errors import TreeFailed, is_crash
from edge_runtime._future import CallbackFuture
from edge_runtime._link import Link, binding
from edge_runtime._registry import Registry, in_context, proxy_call
from edge_runtime._spec import ChildSpec, SupervisorSpec
from edge_runtime._supervisor import Handle, Supervisor

logger = logging.getLogger(__name__)


class Tree:
    """A running supervision tree, as seen from trio. Made by `supervision_tree`."""

    registry: Registry

    def __init__(self, spec: SupervisorSpec) -> None:
        spec.validate()
        self.spec = spec
        self.registry = Registry()
        self._restarts = 0
        self._restarts_lock = threading.Lock()
        self._root: pykka.ActorRef[Any] | None = None
        self._handle = Handle()
        self._live = False
        self._settled = trio.Event()  # the root is up, or failed to come up
        self._down = trio.Event()  # the root has exited
        self._failed = trio.Event()  # ... on its own: escalation reached the top
        self._failure: BaseException | None = None
        self._stopping = False
        self._body: trio.CancelScope | None = None

    @property
    def restarts(self) -> int:
        """Restarts performed by every supervisor in the tree so far."""
        return self._restarts

    def healthy(self) -> bool:
        """True while the root supervisor runs. Restarts below it do not count: they are the
        tree doing its job. Only the root giving up (or the tree stopping) makes this False."""
        return self._live

    async def wait_failed(self) -> None:
        """Return once the root supervisor has exceeded its intensity and stopped everything."""
        await self._failed.wait()

    async def ask(self, name: str, method: str, *args: Any, timeout: float = 5.0, **kwargs: Any) -> Any:
        """`Registry.ask` for trio tasks: same semantics, but only this task waits, never the loop.

        The reply wakes trio from the actor thread (`bridge.wait_future`). Only while the actor
        is mid-restart does a worker thread wait on the registry for its successor.
        """
        call = in_context(proxy_call(method, args, kwargs))
        stale: pykka.ActorRef[Any] | None = None
        with trio.move_on_after(timeout):
            while True:
                try:
                    ref = self.registry.wait_for(name, replacing=stale, timeout=0)
                except pykka.Timeout:
                    wait = functools.partial(self.registry.wait_for, name, replacing=stale, timeout=timeout)
                    ref = await trio.to_thread.run_sync(wait, abandon_on_cancel=True)
                future = ref.ask(call, block=False)
                await wait_future(cast(CallbackFuture[Any], future))  # our actors answer with these
                try:
                    return future.get(timeout=0)
                except pykka.ActorDeadError as exc:
                    if is_crash(exc):
                        raise
                    stale = ref  # never reached a handler: deliver to the successor
        raise pykka.Timeout(f"ask {name}.{method} got no reply within {timeout}s")

    def tell(self, name: str, method: str, *args: Any, **kwargs: Any) -> bool:
        """`Registry.tell`: never blocks; False if the actor is down and the message was dropped."""
        return self.registry.tell(name, method, *args, **kwargs)

    async def start_child(
        self, supervisor: str, spec: ChildSpec | SupervisorSpec, *, timeout: float = 10.0
    ) -> None:
        """`Supervisor.start_child` on the supervisor named `supervisor`; only this task waits.

        pykka.Timeout if the start takes longer than `timeout`: the child may still come up.
        """
        await self.ask(supervisor, "start_child", spec, timeout=timeout)

    async def terminate_child(self, supervisor: str, name: str, *, timeout: float = 10.0) -> bool:
        """`Supervisor.terminate_child` on the supervisor named `supervisor`; only this task waits.

        Give a `timeout` above the child's shutdown timeout.
        """
        return bool(await self.ask(supervisor, "terminate_child", name, timeout=timeout))

    # -- lifecycle, driven by supervision_tree ---------------------------------------------

    def _count_restart(self) -> None:
        with self._restarts_lock:
            self._restarts += 1

    async def _start(self) -> None:
        token = trio.lowlevel.current_trio_token()
        name = self.spec.name

        def up(ref: pykka.ActorRef[Any]) -> None:  # on the root's thread, maybe before start() returned
            self.registry.bind(name, ref)
            call_soon(token, self._on_up)

        def down(urn: str, reason: BaseException | None) -> None:
            self.registry.unbind(name)
            call_soon(token, self._on_down, reason)

        # The supervisors are in the registry too (each under its spec name), like actors.
        self.registry.reserve(spec.name for spec in self.spec.walk())
        self.registry.declare(name)
        with binding(Link(name, self.registry, up, down)):
            self._root = Supervisor.start(self.spec, self._count_restart, self._handle)
        await self._settled.wait()
        if not self._live:
            raise TreeFailed(f"supervision tree {self.spec.name!r} failed to start") from self._failure

    def _on_up(self) -> None:
        self._live = True
        self._settled.set()

    def _on_down(self, reason: BaseException | None) -> None:
        self._live = False
        self._settled.set()
        self._down.set()
        if self._stopping and reason is None:
            return
        self._failure = reason or RuntimeError("the root supervisor stopped on its own")
        logger.error("supervision tree failed tree=%s reason=%r next=cancel-body", self.spec.name, reason)
        self._failed.set()
        if self._body is not None:
            self._body.cancel()

    async def _stop(self) -> None:
        if self._root is None or self._down.is_set():
            return
        self._stopping = True
        self._root.stop(block=False)  # the root stops its children in reverse, then reports down
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self._handle.shutdown_timeout(self.spec)
            await self._down.wait()
        if scope.cancelled_caught:
            logger.warning("supervision tree did not stop in time tree=%s next=abandon", self.spec.name)


@asynccontextmanager
async def supervision_tree(spec: SupervisorSpec) -> AsyncIterator[Tree]:
    """Start the tree described by `spec`; stop it, in reverse order, when the block exits.

    Children start in order, each up (its `started()` returned) before the next. If the root
    supervisor escalates, the block is cancelled and `TreeFailed` is raised out of it.
    """
    tree = Tree(spec)
    try:
        await tree._start()
        with trio.CancelScope() as body:
            tree._body = body
            if tree._failed.is_set():
                body.cancel()
            yield tree
    finally:
        await tree._stop()
    if tree._failed.is_set():
        raise TreeFailed(f"supervision tree {spec.name!r} gave up") from tree._failure
