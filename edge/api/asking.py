"""How a handler asks an actor: an actor that is slow, restarting or failing is a 503 that says what to do.

The actor tree already logs an actor's crash with its traceback; here the request only learns that
the answer is not coming now, and that sending it again is safe (every till request is idempotent
or refused when repeated, and completing the same cart twice never sells it twice).
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from edge_runtime import Tree
from novapos.adapters.http import ApiError

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 35.0
"""Longer than the till's own wait for a durable commit, so a slow disk is the till's answer, not ours."""


async def ask(tree: Tree, actor: str, method: str, *args: Any, timeout: float = ASK_TIMEOUT_S) -> Any:
    """`tree.ask`, with a timeout or an actor's failure turned into a 503 for the client."""
    try:
        return await tree.ask(actor, method, *args, timeout=timeout)
    except pykka.Timeout:
        raise ApiError(503, f"{actor} did not answer within {timeout:.0f} s; it may be busy or restarting. "
                            "Send the same request again in a moment") from None
    except Exception as exc:
        log.warning("%s failed on %s (%s); the client was asked to send it again", actor, method, type(exc).__name__)
        raise ApiError(503, f"{actor} failed on this request and is being restarted. "
                            "Send the same request again in a moment") from None
