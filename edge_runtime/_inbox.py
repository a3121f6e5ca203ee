"""An actor's mailbox that refuses mail once the actor has emptied it for the last time.

pykka's `ask` and `tell` check that the actor is alive and then enqueue. A message enqueued between
those two steps, after the dying actor drained its inbox, would never be answered: its asker would
wait out its whole timeout. The inbox closes under the queue's own lock before that last drain, and
what arrives later is answered as pykka answers mail for a dead actor: an ask's future gets
`ActorDeadError` (which the registry treats as "never delivered", and delivers to the successor),
a stop request counts as done, and a tell raises `ActorDeadError`.
"""

from __future__ import annotations

import queue
from typing import Any

import pykka
from pykka.messages import _ActorStop


class Inbox(queue.Queue[Any]):
    def __init__(self) -> None:
        super().__init__()
        self._closed = False

    def close(self) -> None:
        """Refuse all later mail. What is queued stays, for the actor's last drain."""
        with self.mutex:
            self._closed = True

    def _put(self, envelope: Any) -> None:  # runs under self.mutex, as close() does
        if not self._closed:
            super()._put(envelope)
            return
        dead = pykka.ActorDeadError("the actor stopped before the message reached it")
        if envelope.reply_to is None:
            raise dead
        if isinstance(envelope.message, _ActorStop):
            envelope.reply_to.set(None)
        else:
            envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, dead, None))
