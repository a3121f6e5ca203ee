"""Declarative description of a supervision tree: what to start, in which order, and what to do when it dies.

Specs are frozen data, separate from the running supervisors, so that a restart always
rebuilds a child from the same recipe (as in OTP, where the child spec outlives the pid).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_runtime._actor import Actor


class Restart(enum.Enum):
    """When a child that exited is started again."""

    PERMANENT = "permanent"  #: always
    TRANSIENT = "transient"  #: only after a crash, not after a normal stop
    TEMPORARY = "temporary"  #: never; the child is forgotten

    def wanted(self, reason: BaseException | None) -> bool:
        """Whether a child of this type that exited with `reason` (None = normally) is restarted."""
        if self is Restart.PERMANENT:
            return True
        if self is Restart.TRANSIENT:
            return reason is not None
        return False


class Strategy(enum.Enum):
    """Which siblings are restarted with a child that exited (as in Erlang/OTP)."""

    ONE_FOR_ONE = "one_for_one"  #: only that child
    ONE_FOR_ALL = "one_for_all"  #: every child: they depend on each other
    REST_FOR_ONE = "rest_for_one"  #: that child and those started after it: later ones depend on earlier ones


@dataclass(frozen=True)
class Backoff:
    """Delay between consecutive restarts of one child: exponential, jittered, capped.

    The first restart after a quiet period is immediate (as in OTP); the n-th consecutive one
    waits `initial * multiplier**(n-2)`, capped at `maximum`, spread by +/- `jitter` (a fraction)
    so that siblings hammering the same broken resource do not retry in lockstep.
    """

    initial: float = 0.01
    maximum: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay(self, consecutive: int) -> float:
        """Seconds to wait before the `consecutive`-th restart in a row (1 = first)."""
        if consecutive <= 1:
            return 0.0
        try:
            base = min(self.maximum, self.initial * self.multiplier ** (consecutive - 2))
        except OverflowError:  # a long crash loop under a very high intensity
            base = self.maximum
        return base * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)


@dataclass(frozen=True)
class ChildSpec:
    """One actor: how to build it, when to restart it, how long it may take to start and to stop.

    A start that has not finished (`started()` returned or raised) within `start_timeout` is a
    failed start like any other: the supervisor stops waiting, abandons that instance (it is
    stopped if it ever comes up) and applies restart type, backoff and intensity.
    """

    name: str
    actor_class: type[Actor]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = 5.0
    start_timeout: float = 5.0


@dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor and its children, started in order and stopped in reverse.

    More than `intensity` restarts within `period` seconds make it stop all its children and
    exit abnormally: its parent sees a crashed child (escalation), the root fails the tree.
    """

    name: str
    children: Sequence[ChildSpec | SupervisorSpec]
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 3
    period: float = 5.0
    backoff: Backoff = Backoff()
    restart: Restart = Restart.PERMANENT

    @property
    def shutdown_timeout(self) -> float:
        """How long its parent waits for it to stop: every child, one after another, using its
        whole timeout, plus a little for the supervisor's own mailbox."""
        return sum(child.shutdown_timeout for child in self.children) + 0.5

    @property
    def start_timeout(self) -> float:
        """How long its parent waits for it to come up: every child's start may fail and be
        retried up to `intensity` times, each retry after at most `backoff.maximum`."""
        tries = self.intensity + 1
        return sum(child.start_timeout for child in self.children) * tries + self.backoff.maximum * self.intensity + 0.5

    def walk(self) -> Iterator[ChildSpec | SupervisorSpec]:
        """This spec and every spec below it, depth first."""
        yield self
        for child in self.children:
            if isinstance(child, SupervisorSpec):
                yield from child.walk()
            else:
                yield child

    def validate(self) -> None:
        """Raise ValueError unless names are unique in the whole tree (the registry is one namespace)."""
        seen: set[str] = set()
        for spec in self.walk():
            if spec.name in seen:
                raise ValueError(f"duplicate name {spec.name!r} in supervision tree {self.name!r}")
            seen.add(spec.name)
