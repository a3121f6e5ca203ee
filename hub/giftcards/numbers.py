"""Gift card numbers: made unguessable, never stored, found again by a slow salted hash.

A number is 19 digits: 18 from `secrets` and a Luhn check digit (a mistyped digit is caught at the till before the
hub is asked). 10^18 possible numbers against the few thousands a tenant issues make a guess hopeless over the
network. The hub keeps only `number_hash` (PBKDF2-HMAC-SHA256 of the digits, salted with the tenant, ITERATIONS
rounds) and the last four digits: someone who reads the database cannot spend a card, and recovering a number
from its hash means ~10^18 guesses x ITERATIONS hashes each. The number is shown once, when the card is issued
(or printed on the physical card); logs and events carry the masked form only.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

from novapos import validators

DIGITS = 19
ITERATIONS = 10_000
"""10-25 ms of one core per lookup (measured on the CI box, off the event loop): little beside a checkout, and
10^22 SHA-256 rounds for whoever stole the table and wants every number back."""


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
    return hashlib.pbkdf2_hmac("sha256", number.encode(), f"novapos-gift-card:{tenant}".encode(), ITERATIONS)


async def hashed(tenant: str, number: str) -> bytes:
    """number_hash off the event loop (it takes milliseconds on purpose)."""
    return await asyncio.to_thread(number_hash, tenant, number)


def masked(last4: str) -> str:
    return f"**** {last4}"


def grouped(number: str) -> str:
    """The number as printed on the card: groups of four."""
    return " ".join(number[index:index + 4] for index in range(0, len(number), 4))
