"""How a handler asks an actor: an actor that is slow, restarting or failing is a 503 that says what to do; an
actor's refusal is the 4xx of its reason, with its sentence; a till the store does not have is a 404.

The actor tree already logs an actor's crash with its traceback; here the request only learns that
the answer is not coming now, and that sending it again is safe (every till request is idempotent
or refused when repeated, and completing the same cart twice never sells it twice).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import pykka
from starlette.requests import Request

from actors.protocol import Rejected
from edge_runtime import Tree
from novapos import logs
from novapos.adapters.http import ApiError
from novapos.validators import describe

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 35.0
"""Longer than the till's own wait for a durable commit, so a slow disk is the till's answer, not ours."""
REFUSED = {"not_found": 404, "conflict": 409, "invalid": 422, "busy": 503}
"""An actor's refusal (actors.protocol.Rejected), by its reason, as the HTTP status it is answered with."""


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


def known_till(request: Request, tills: Collection[str]) -> str:
    """The till the path names; one this store does not have is a 404 that lists its tills, before anyone is asked
    who is logged in there."""
    till: str = request.path_params["till"]
    if till not in tills:
        raise ApiError(404, f"this store has no till {describe(till)} (tills: {', '.join(tills)})")
    logs.bind(till=till)
    return till


def unless_refused(answer: Any) -> Any:
    """An actor's answer; its refusal becomes the client's error, with the actor's sentence."""
    if isinstance(answer, Rejected):
        raise ApiError(REFUSED[answer.reason], answer.message)
    return answer
