"""Ingest's spans (novapos.tracing): a batch seen from the hub, and each event seen from its sale's trace.

A batch is one PostgreSQL transaction for events of many traces. So it is two views of the same work:

- `ingest batch` (a new trace, linked to every event's): the hub's own view, with its `postgresql apply`
  child around the transaction (pool acquire, inbox, appliers, commit; the one-by-one retry included);
- per event, `ingest` under the publish span its message's `traceparent` header names (the store's trace
  of that sale), linked to the batch, from the fetch to the ack, with a `postgresql apply` child carrying
  the transaction's times: following one sale, the trace reaches the database that took it.

Nothing here runs while traces are off. A malformed or missing header starts the event's own trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, StatusCode

from hub.ingest.inbox import Delivery, Sorted
from novapos import tracing

DATABASE = {"db.system.name": "postgresql", "db.operation.name": "apply"}


class IngestSpans:
    """The spans of one batch, from the moment it was taken (see the module docstring)."""

    def __init__(self, messages: Sequence[Msg]) -> None:
        self._on = tracing.enabled()
        self._messages = messages
        self._taken = time.time_ns()
        self._batch: trace.SpanContext | None = None
        self._applied: tuple[int, int] | None = None

    @contextmanager
    def applying(self) -> Iterator[None]:
        """The batch span and its transaction span around applying the batch."""
        if not self._on:
            yield
            return
        tracer = tracing.tracer()
        contexts = (trace.get_current_span(tracing.parent_from(m.headers)).get_span_context() for m in self._messages)
        links = [Link(context) for context in contexts if context.is_valid]
        with tracer.start_as_current_span("ingest batch", kind=SpanKind.CONSUMER, links=links,
                                          attributes={"messaging.system": "nats",
                                                      "messaging.batch.message_count": len(self._messages)}) as batch:
            self._batch = batch.get_span_context()
            started = time.time_ns()  # kept, with the end, for the events' own copies of this span
            database = tracer.start_span("postgresql apply", kind=SpanKind.CLIENT, attributes=DATABASE,
                                         start_time=started)
            try:
                with trace.use_span(database, record_exception=False, set_status_on_exception=False):
                    yield
            except BaseException as exc:
                database.record_exception(exc)
                database.set_status(StatusCode.ERROR, type(exc).__name__)
                raise
            finally:
                ended = time.time_ns()
                database.end(end_time=ended)
            self._applied = started, ended

    def settled(self, deliveries: Sequence[Delivery], batch: Sorted) -> None:
        """Each event's span, once its message is acked (or nak'ed to come back later: held)."""
        if not self._on or self._applied is None or self._batch is None:
            return
        tracer = tracing.tracer()
        envelopes = {id(delivery): envelope for envelope, delivery in batch.events}
        held = {id(hold.delivery) for hold in batch.held}
        rejected = {id(rejection.delivery) for rejection in batch.rejections}
        for message, delivery in zip(self._messages, deliveries, strict=True):
            attributes: dict[str, str | int] = {"messaging.system": "nats", "messaging.operation.type": "process",
                                                "messaging.destination.name": message.subject}
            if (envelope := envelopes.get(id(delivery))) is not None:
                attributes.update({"novapos.event.id": str(envelope.id), "novapos.event.type": envelope.type,
                                   "novapos.tenant": envelope.tenant, "novapos.store": envelope.store,
                                   "novapos.event.seq": envelope.seq})
            if id(delivery) in held:
                attributes["novapos.ingest.outcome"] = "held"
            elif id(delivery) in rejected:
                attributes["novapos.ingest.outcome"] = "dead_lettered"
            event = tracer.start_span("ingest", context=tracing.parent_from(message.headers), kind=SpanKind.CONSUMER,
                                      attributes=attributes, links=[Link(self._batch)], start_time=self._taken)
            database = tracer.start_span("postgresql apply", context=trace.set_span_in_context(event),
                                         kind=SpanKind.CLIENT, attributes=DATABASE, start_time=self._applied[0])
            database.end(end_time=self._applied[1])
            event.end()
