"""Kernel benchmark: restart latency and the cost of crossing the asyncio seam, each beside its floor.

    python -m bench.kernel

Figures, in microseconds, on this machine in this run:

- restart_latency_us: a supervised actor is told to crash; time until a new instance answers an
  ask through the registry (from a plain thread). Backoff is zero, which is also what the first
  restart after a quiet period costs with the default backoff.
- pykka_ask_floor_us: a bare pykka ask round trip (thread -> actor thread -> thread), the floor
  any restart must pay at least once.
- seam_crossing_us: `await seam.run(fn)` from trio, fn an async function returning a value.
- call_soon_threadsafe_floor_us: trio -> `loop.call_soon_threadsafe` -> back through the trio
  token: the two wake-ups any crossing must pay.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import time
from collections.abc import Callable

import pykka
import trio
from pykka.messages import ProxyCall

from bench.figures import progress, ratio, summary
from edge_runtime import Actor, AsyncioSeam, Backoff, ChildSpec, SupervisorSpec, supervision_tree

RESTARTS = 2000
ASKS = 10000
CROSSINGS = 10000
WARMUP = 100


class Subject(Actor):
    def ping(self) -> str:
        return self.actor_urn

    def crash(self) -> None:
        raise RuntimeError("benchmark crash")


class Bare(pykka.ThreadingActor):
    def ping(self) -> int:
        return 1






def timed(n: int, once: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(n):
        begun = time.perf_counter()
        once()
        samples.append(time.perf_counter() - begun)
    return samples


async def restart_latency() -> list[float]:
    spec = SupervisorSpec(
        "bench",
        [ChildSpec("subject", Subject)],
        intensity=10**9,
        period=1.0,
        backoff=Backoff(initial=0.0, maximum=0.0, jitter=0.0),
    )
    async with supervision_tree(spec) as tree:
        registry = tree.registry

        def crash_and_answer() -> None:
            old = registry.get("subject").actor_urn
            registry.tell("subject", "crash")
            new = registry.ask("subject", "ping", timeout=5.0)  # queued behind the crash
            assert new != old

        def run() -> list[float]:
            timed(WARMUP, crash_and_answer)
            return timed(RESTARTS, crash_and_answer)

        samples = await trio.to_thread.run_sync(run)
        assert tree.restarts == WARMUP + RESTARTS
        return samples


def pykka_ask_floor() -> list[float]:
    ref = Bare.start()
    call = ProxyCall(attr_path=("ping",), args=(), kwargs={})
    try:
        timed(WARMUP, lambda: ref.ask(call))
        return timed(ASKS, lambda: ref.ask(call))
    finally:
        ref.stop()


async def answer(value: int) -> int:
    return value


async def seam_crossing(seam: AsyncioSeam) -> list[float]:
    samples = []
    for i in range(WARMUP + CROSSINGS):
        begun = time.perf_counter()
        assert await seam.run(answer, i) == i
        samples.append(time.perf_counter() - begun)
    return samples[WARMUP:]


async def call_soon_threadsafe_floor(loop: asyncio.AbstractEventLoop) -> list[float]:
    token = trio.lowlevel.current_trio_token()
    samples = []
    for _ in range(WARMUP + CROSSINGS):
        done = trio.Event()
        begun = time.perf_counter()
        loop.call_soon_threadsafe(token.run_sync_soon, done.set)
        await done.wait()
        samples.append(time.perf_counter() - begun)
    return samples[WARMUP:]


async def main() -> dict[str, object]:
    # A production edge logs each crash; here that would measure the terminal, not the kernel.
    logging.getLogger("edge_runtime").setLevel(logging.ERROR)
    progress(f"restart latency: {RESTARTS} crashes ...")
    restarts = summary(await restart_latency(), scale=1e6, digits=1)
    progress(f"  median {restarts['median']} us, p99 {restarts['p99']} us")
    progress(f"pykka ask floor: {ASKS} asks ...")
    asks = summary(pykka_ask_floor(), scale=1e6, digits=1)
    progress(f"  median {asks['median']} us, p99 {asks['p99']} us")
    with AsyncioSeam() as seam:
        progress(f"seam crossing: {CROSSINGS} crossings ...")
        crossing = summary(await seam_crossing(seam), scale=1e6, digits=1)
        progress(f"  median {crossing['median']} us")
        progress(f"call_soon_threadsafe floor: {CROSSINGS} round trips ...")
        floor = summary(await call_soon_threadsafe_floor(seam.loop), scale=1e6, digits=1)
        progress(f"  median {floor['median']} us")
    return {
        "restart_latency_us": restarts,
        "pykka_ask_floor_us": asks,
        "seam_crossing_us": crossing,
        "call_soon_threadsafe_floor_us": floor,
        "restart_to_ask_floor_ratio": ratio(restarts["median"], asks["median"]),
        "seam_crossing_to_floor_ratio": ratio(crossing["median"], floor["median"]),
        "python": platform.python_version(),
        "iterations": {"restarts": RESTARTS, "asks": ASKS, "crossings": CROSSINGS, "warmup": WARMUP},
    }


if __name__ == "__main__":
    print(json.dumps(trio.run(main)))
