"""Coupon codes as people type them, read the same way at the till and at the hub.

A code is stored at the hub (hub.coupons) and matched at the till against a promotion's public codes
(actors.till.promoting) in one canonical form: upper case, spaces dropped, so "wel come10" finds WELCOME10. Both
sides normalise through this module, so a code the till accepts offline is the code the hub counts when the sale
arrives, and a code the hub would refuse as malformed is refused at the till before it is asked.
"""

from __future__ import annotations

import re
from typing import Any

from novapos import validators

CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{2,31}")
"""What a code may be once normalised (a named multi-use code like SUMMER10 too); the hub's database checks the
same."""
MAX_TYPED_LENGTH = 64
"""What a cashier may type or scan (spaces included) before it is normalised."""


def canonical(code: str) -> str:
    """A code as typed (any case, spaces) in the form codes are compared in; no format check (a promotion's public
    code is compared in this form too)."""
    return code.replace(" ", "").upper()


def normalise(where: str, value: Any) -> str:
    """A code as typed, as stored; validators.Invalid when it cannot be one."""
    code = canonical(validators.text(where, value, max_length=MAX_TYPED_LENGTH))
    if not CODE.fullmatch(code):
        raise validators.Invalid(where, "must be 3 to 32 letters, digits or '-', starting with a letter or digit")
    return code
