"""What POS actors answer when a request is refused for a business reason.

A refused request is an answer, not a crash: actors return Rejected instead of raising, because an
exception in an actor handler means "this actor is broken, restart it" to the supervisor.

"busy" is not the request's fault: the store's disk could not take it now (another program holds
the database locked) and nothing was done; the same request may be sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reason = Literal["not_found", "conflict", "invalid", "busy"]


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    message: str
