"""What a supervised actor knows of its parent: the registry, and whom to tell it is up or down.

pykka's `Actor.start()` builds the instance and starts its thread in one call, leaving no
moment to hand the new actor anything. So the parent *binds* a link around that call and
`Actor.__init__` (run by `start()` on the parent's thread) picks it up from a context variable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import pykka

from edge_runtime._registry import Registry


@dataclass(frozen=True)
class Link:
    """The child's name, and callbacks into the parent run on the child's own thread.

    `up(ref)` once the child's `started()` returned, before it handles any message, so the parent
    can publish its name then: a tell that what `started()` set in motion sends back to the child
    by name is not dropped. `down(urn, reason)` once it has finished (reason None for a normal
    stop). A `down` with no `up` before it is a failed start.
    """

    name: str
    registry: Registry
    up: Callable[[pykka.ActorRef[Any]], None]
    down: Callable[[str, BaseException | None], None]


_binding: ContextVar[Link | None] = ContextVar("edge_runtime_link", default=None)


@contextlib.contextmanager
def binding(link: Link) -> Iterator[None]:
    """Make `link` the parent of every actor constructed inside the block (on this thread)."""
    token = _binding.set(link)
    try:
        yield
    finally:
        _binding.reset(token)


def current() -> Link | None:
    """The link bound by the parent constructing this actor, or None for an unsupervised one."""
    return _binding.get()
