"""Barcodes as the catalog accepts them: a GS1 number (EAN-13, UPC-A, EAN-8) must carry a right check digit,
since a mistyped one would never match a scan; anything else (a store's own codes, GS1-128) is a name token."""

from __future__ import annotations

from novapos import validators
from novapos.validators import Invalid

GS1_LENGTHS = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13"}


def gs1_check_digit(digits: str) -> int:
    """The check digit of a GS1 number without it: weights 3, 1, 3... from the right."""
    total = 3 * sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2]))
    return (10 - total % 10) % 10


def barcode(where: str, value: object) -> str:
    """A barcode, with its check digit verified when it is all digits of an EAN-8, UPC-A or EAN-13 length."""
    code = validators.token(where, value, max_length=validators.MAX_BARCODE_LENGTH)
    kind = GS1_LENGTHS.get(len(code))
    if kind and code.isdigit() and int(code[-1]) != (expected := gs1_check_digit(code[:-1])):
        raise Invalid(where, f"{code} is not a valid {kind}: its check digit should be {expected}, not {code[-1]}")
    return code
