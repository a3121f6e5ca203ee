"""Coupon codes as people type them: made unguessable, read back without confusion.

A batch's single-use codes are drawn from `secrets` over ALPHABET (digits and capitals without 0, O, 1 and I,
which people misread on a printed voucher), in groups of four joined by '-': 12 characters of a 32-letter
alphabet are 60 bits, so guessing one of a million issued codes takes ~10^12 tries against a hub that answers
each over the network. A code typed at a till is normalised before it is looked up (novapos.coupon_codes, which the till
uses too), so "wel come10" finds WELCOME10.
"""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""32 symbols: no 0/O, no 1/I."""
GROUPS = 3
GROUP = 4
MAX_BATCH = 10_000


def generate() -> str:
    """One fresh single-use code, e.g. 7QX2-MH4K-PZ9D."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP)) for _ in range(GROUPS))


def mask(code: str) -> str:
    """A code as logs show it: its last four characters (a code is a bearer secret until used)."""
    return "…" + code[-4:]
