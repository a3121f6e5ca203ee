"""Gift card numbers: made unguessable, never stored, found again by a keyed hash.

A number is 19 digits: 18 from `secrets` and a Luhn check digit (a mistyped digit is caught at the till before the
hub is asked). 10^18 possible numbers against the few thousands a tenant issues make a guess hopeless over the
network. The hub keeps only `number_hash` (HMAC-SHA256 of the tenant and the digits, keyed with the hub's secret,
`[gift_cards] key_file`) and the last four digits: someone who reads the database, without the key file, can
neither find nor spend a card (there is nothing to search the 10^18 numbers against). The hash takes microseconds,
so a lookup holds nobody up. The number is shown once, when the card is issued (or printed on the physical card);
logs and events carry the masked form only. A hub without a key answers every gift card request and route 503.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from hub.refusals import Refused
from novapos import validators

DIGITS = 19
NO_KEY = ("gift cards are not set up on this hub: configure [gift_cards] key_file in hub.toml (a file holding one "
          "hex key of 32 bytes) and restart the hub")

_key: bytes | None = None
"""The HMAC key, set once at start (use_key); None: gift cards are refused 503 with NO_KEY."""


def read_key(path: Path) -> bytes:
    """The key in `path`: one hex string of at least 32 bytes (validators.Invalid otherwise)."""
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise validators.Invalid(f"[gift_cards] key_file {path}", "must hold one hex key") from None
    if len(key) < 32:
        raise validators.Invalid(f"[gift_cards] key_file {path}", "must hold a key of at least 32 bytes (64 hex "
                                                                  "digits)")
    return key


def use_key(key: bytes | None) -> None:
    """Set the hub's HMAC key (at start, from [gift_cards] key_file; tests set their own)."""
    global _key
    _key = key


def configured() -> None:
    """Refused (503, what to configure) when the hub has no key."""
    if _key is None:
        raise Refused(503, NO_KEY)


def luhn_digit(body: str) -> str:
    """The check digit that makes body + digit pass the Luhn test."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def generate() -> str:
    body = str(1 + secrets.randbelow(9)) + "".join(str(secrets.randbelow(10)) for _ in range(DIGITS - 2))
    return body + luhn_digit(body)


def normalise(where: str, value: Any) -> str:
    """The digits of a number as typed or scanned (spaces and dashes dropped); Invalid unless 16 to 19 digits that
    pass the Luhn check."""
    raw = validators.text(where, value, max_length=32)
    digits = raw.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit() and 16 <= len(digits) <= DIGITS):
        raise validators.Invalid(where, "must be the gift card's 16 to 19 digits")
    if luhn_digit(digits[:-1]) != digits[-1]:
        raise validators.Invalid(where, "is not a gift card number (a digit is wrong: check it and type it again)")
    return digits


def number_hash(tenant: str, number: str) -> bytes:
    """HMAC-SHA256 of the tenant and the number with the hub's key; Refused (503) without one."""
    configured()
    assert _key is not None
    return hmac.new(_key, f"novapos-gift-card:{tenant}:{number}".encode(), hashlib.sha256).digest()


async def hashed(tenant: str, number: str) -> bytes:
    """number_hash, for the async callers (microseconds: no thread needed)."""
    return number_hash(tenant, number)


def masked(last4: str) -> str:
    return f"**** {last4}"


def as_sent(card: str) -> str:
    """A gift card as a store's event names it, masked whatever the till sent: more than four digits (a till bug
    that sent the whole number) become "**** 1234", so no spendable credential stays in the hub's tables, exports
    or console; a masked card stays as sent."""
    digits = "".join(char for char in card if char.isdigit())
    return card if len(digits) <= 4 else masked(digits[-4:])  # masked already: as the till showed it


def grouped(number: str) -> str:
    """The number as printed on the card: groups of four."""
    return " ".join(number[index:index + 4] for index in range(0, len(number), 4))
