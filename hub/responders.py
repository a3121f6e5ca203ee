"""The hub's request/reply subjects: every domain's responders (see hub.domains) served on NATS.

All hub processes subscribe in one queue group, so each request is answered once, by one of them. A
responder is given the subject the request came on (its subscription may be a wildcard: the subject says
which store asks). A refusal is answered with an error reply (the NATS services headers Nats-Service-Error
and Nats-Service-Error-Code, empty body): 400 with the validator's sentence for a bad request, 500 for a
responder that failed (logged): the requester learns at once, and the hub stays up. Each answer's log
lines carry the asking tenant and store (from the subject) and an id of their own.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Sequence
from typing import Any

import asyncpg
import trio
from nats.aio.client import Client
from nats.aio.msg import Msg

from edge_runtime import AsyncioSeam, Backoff
from hub.domains import Domain, LinkResponder, Responder
from novapos import logs
from novapos.adapters.nats import NatsLink
from novapos.validators import Invalid
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER
from novapos.wire.subjects import parse_request_subject

log = logging.getLogger(__name__)

QUEUE_GROUP = "novapos-hub"
_RUNNING: set[asyncio.Task[None]] = set()
"""The answers being worked on (asyncio keeps only weak references to tasks)."""
RETRY = Backoff(initial=0.5, maximum=15.0)


IN_FLIGHT = 64
"""Requests one hub process answers at once, across its subscriptions: nats-py calls a subscription's callback one
message at a time, so each message is answered in its own task (a slow request holds nobody behind it) and the
callback waits only when this many are in flight (backpressure on NATS, bounded pool demand)."""


def _where(exc: BaseException) -> str:
    """Where an exception was raised (file:line), to find a bug without logging its message (which may hold a
    customer's data that a request carried)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _asker(subject: str) -> dict[str, str]:
    """The tenant and store a request subject names (novapos.<tenant>.<store>.req.<kind>), for its log lines."""
    try:
        tenant, store = parse_request_subject(subject, subject.rsplit(".", 1)[-1])
    except Invalid:
        return {}
    return {"tenant": tenant, "store": store}


def _handler(client: Client, pool: asyncpg.Pool, subject: str, responder: Responder,
             slots: asyncio.Semaphore, running: set[asyncio.Task[None]]) -> Any:
    async def handle(message: Msg) -> None:
        if not message.reply:  # published without a reply subject: nobody to answer
            return
        try:
            answer = await responder(pool, message.subject, message.data)
        except Invalid as exc:  # the sentence goes to the asker; the log names the field, never the value
            log.info("refused a request on %s: its %s is not valid", message.subject, exc.where)
            await client.publish(message.reply, b"", headers={ERROR_HEADER: logs.escape(str(exc)), ERROR_CODE_HEADER: "400"})
            return
        except Exception as exc:
            log.warning("answering %s failed (%s at %s); the requester got an error reply. This is the hub's bug "
                        "or PostgreSQL's trouble: check the hub's log and PostgreSQL", message.subject,
                        type(exc).__name__, _where(exc))
            await client.publish(message.reply, b"", headers={
                ERROR_HEADER: f"the hub could not answer {subject} ({type(exc).__name__})", ERROR_CODE_HEADER: "500"})
            return
        await message.respond(answer)

    async def guarded(message: Msg) -> None:  # a reply lost with the connection is the requester's timeout
        with logs.detached(**_asker(message.subject), request=logs.request_id()):
            try:
                await handle(message)
            except Exception as exc:
                log.warning("could not reply on %s (%s: %s); the requester will time out", subject, type(exc).__name__,
                            exc)
            finally:
                slots.release()

    async def dispatch(message: Msg) -> None:
        await slots.acquire()  # waits (holding this subscription's queue) only when IN_FLIGHT are being answered
        task = asyncio.create_task(guarded(message))
        running.add(task)  # a strong reference until it ends
        task.add_done_callback(running.discard)
    return dispatch


def _with_link(link: NatsLink, responder: LinkResponder) -> Responder:
    async def respond(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
        return await responder(pool, link, subject, data)
    return respond


async def _subscribe(link: NatsLink, pool: asyncpg.Pool, of: Sequence[Domain]) -> list[Any]:
    """(asyncio side) One queue subscription per responder; nats-py renews them after a reconnect. A subscribe
    that fails (the connection closed meanwhile) takes back those already made and raises, to be tried again."""
    client = link.client
    subscriptions: list[Any] = []
    slots, running = asyncio.Semaphore(IN_FLIGHT), _RUNNING
    try:
        for domain in of:
            responders = {**domain.responders, **{subject: _with_link(link, responder)
                                                  for subject, responder in domain.link_responders.items()}}
            for subject, responder in responders.items():
                subscriptions.append(await client.subscribe(subject, queue=QUEUE_GROUP,
                                                            cb=_handler(client, pool, subject, responder, slots,
                                                                        running)))
    except BaseException:
        await _unsubscribe(subscriptions)
        raise
    try:
        await client.flush()  # the server has them: from here on, a request finds a responder
    except Exception as exc:  # NATS went away meanwhile: the client holds them and sends them again at reconnect
        log.warning("NATS did not confirm the responders' subscriptions (%s: %s); they are sent again when it is "
                    "back, and requests wait until then", type(exc).__name__, exc)
    return subscriptions


async def _unsubscribe(subscriptions: Sequence[Any]) -> None:
    for subscription in subscriptions:
        try:
            await subscription.unsubscribe()
        except Exception as exc:  # a lost connection: nothing left to unsubscribe from
            log.debug("unsubscribing a responder: %s", exc)


async def run_responders(seam: AsyncioSeam, link: NatsLink, pool: asyncpg.Pool, of: Sequence[Domain]) -> None:
    """(trio side) Serve every responder of `of` until cancelled; the hub must be connected to NATS."""
    failures = 0
    while True:
        try:
            subscriptions = await seam.run(_subscribe, link, pool, of)
            break
        except Exception as exc:  # the hub stays up: requests go unanswered until NATS is back
            failures += 1
            delay = RETRY.delay(failures + 1)
            log.warning("cannot subscribe the responders (%s: %s): stores' requests go unanswered until NATS is "
                        "back; retrying in %.1f s", type(exc).__name__, exc, delay)
            await trio.sleep(delay)
    if subscriptions:
        log.info("answering %d request subject(s) in queue group %s", len(subscriptions), QUEUE_GROUP)
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await seam.run(_unsubscribe, subscriptions)
