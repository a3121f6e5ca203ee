"""The pykka internals the kernel extends are still there, with the shapes it relies on.

pykka documents these as "internal methods for implementors of new actor types", so a minor release
may change them; pyproject.toml pins pykka to the major version checked here. If one of these tests
fails after a pykka upgrade, the sentence names the internal and the kernel file that depends on it.
"""

from __future__ import annotations

import inspect
import queue
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pykka
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYKKA_MAJOR = 4

# (owner, attribute, expected parameters, what the kernel does with it)
INTERNALS: list[tuple[Any, str, list[str] | None, str]] = [
    (pykka.Actor, "_create_actor_inbox", [], "edge_runtime/_actor.py gives actors its closing Inbox through it"),
    (pykka.Actor, "_create_future", [], "edge_runtime/_actor.py gives asks its CallbackFuture through it"),
    (pykka.Actor, "_start_actor_loop", ["self"], "edge_runtime/_actor.py runs the loop on its own thread to report exits"),
    (pykka.Actor, "_actor_loop", ["self"], "edge_runtime/_actor.py runs it on the actor's thread"),
    (pykka.Actor, "_actor_loop_setup", ["self"], "pykka's _actor_loop calls on_start through it"),
    (pykka.Actor, "_actor_loop_running", ["self"], "pykka's _actor_loop handles mail in it until actor_stopped"),
    (pykka.Actor, "_actor_loop_teardown", ["self"], "edge_runtime/_actor.py closes the inbox in it before the last drain"),
    (pykka.Actor, "_handle_receive", ["self", "message"], "edge_runtime/_actor.py turns an escaping exception into a crash in it"),
    (pykka.Actor, "_handle_failure", ["self", "exception_type", "exception_value", "traceback"],
     "edge_runtime/_actor.py keeps a refused tell from stopping the actor in it"),
    (pykka.ThreadingFuture, "set", ["self", "value"], "edge_runtime/_future.py wakes trio when it is called"),
    (pykka.ThreadingFuture, "set_exception", ["self", "exc_info"], "edge_runtime/_future.py wakes trio when it is called"),
    (pykka.messages, "ProxyCall", ["attr_path", "args", "kwargs"], "the registry and supervisor build asks from it"),
    (pykka.messages, "_ActorStop", [], "edge_runtime/_inbox.py answers a late stop request by its type"),
]


def _parameters(target: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(target).parameters)


def test_pykka_is_the_major_version_the_kernel_extends() -> None:
    installed = version("pykka")
    assert int(installed.split(".")[0]) == PYKKA_MAJOR, (
        f"pykka {installed} is installed, but the kernel extends pykka {PYKKA_MAJOR}.x internals: "
        "check every internal in this file against the new release before changing the pin in pyproject.toml")


def test_pyproject_pins_pykka_to_that_major_version() -> None:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    [pin] = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "pykka"]
    allowed = [Version(f"{PYKKA_MAJOR}.{minor}") for minor in (0, 99)]
    refused = [Version(f"{PYKKA_MAJOR - 1}.99"), Version(f"{PYKKA_MAJOR + 1}.0"), Version(f"{PYKKA_MAJOR + 1}.0a1")]
    assert all(v in pin.specifier for v in allowed) and not any(pin.specifier.contains(v, prereleases=True)
                                                               for v in refused), (
        f"pyproject.toml requires {pin}: pin pykka to {PYKKA_MAJOR}.x (>={PYKKA_MAJOR}.0,<{PYKKA_MAJOR + 1}), "
        "the major version whose internals the kernel extends")


@pytest.mark.parametrize(("owner", "name", "parameters", "why"), INTERNALS,
                         ids=[f"{getattr(o, '__name__', o)}.{n}" for o, n, _, _ in INTERNALS])
def test_each_internal_the_kernel_relies_on_is_there(owner: Any, name: str, parameters: list[str], why: str) -> None:
    where = f"pykka internal {getattr(owner, '__name__', owner)}.{name}"
    target = getattr(owner, name, None)
    assert target is not None, f"{where} is gone, and {why}"
    got = _parameters(target)
    assert got == parameters, f"{where} now takes {got}, not {parameters}, and {why}"


def test_actors_get_their_mailbox_and_stop_flag_where_the_kernel_looks() -> None:
    """Actor.__init__ fills actor_inbox from _create_actor_inbox and sets up actor_stopped; the
    threading actor's mailbox is a queue.Queue, whose put() our Inbox intercepts in _put()."""
    actor = pykka.ThreadingActor()
    assert isinstance(actor.actor_inbox, queue.Queue), (
        "pykka's ThreadingActor mailbox is no longer a queue.Queue: edge_runtime/_inbox.py subclasses it")
    assert hasattr(actor.actor_stopped, "set") and not actor.actor_stopped.is_set(), (
        "pykka's actor_stopped event changed: edge_runtime/_actor.py sets it to stop taking mail")


def test_mail_reaches_the_inbox_as_envelopes_with_message_and_reply_to() -> None:
    """edge_runtime/_inbox.py answers late mail from the envelope's message and reply_to."""
    seen: list[Any] = []

    class Recording(queue.Queue[Any]):
        def _put(self, item: Any) -> None:
            seen.append(item)
            super()._put(item)

    class Probe(pykka.ThreadingActor):
        @staticmethod
        def _create_actor_inbox() -> Any:
            return Recording()

        def ping(self) -> str:
            return "pong"

    ref = Probe.start()
    try:
        assert ref.proxy().ping().get(timeout=5) == "pong"
    finally:
        ref.stop()
    envelope = seen[0]
    assert isinstance(envelope.message, pykka.messages.ProxyCall), "pykka's envelope no longer carries .message"
    assert envelope.reply_to is not None, "pykka's envelope no longer carries .reply_to for an ask"
    assert any(isinstance(e.message, pykka.messages._ActorStop) for e in seen), "pykka no longer stops with _ActorStop"
