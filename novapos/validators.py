"""The one set of validators every door uses: the HTTP API, the config loader and the wire schemas.

A value that passes here fits everywhere it can travel: a PostgreSQL text column (no NUL), msgpack and
JSON (no lone surrogates), a log line, a screen and a printer (no control characters, no invisible
characters that reorder or hide text such as bidi overrides), a NATS subject (name tokens), a bigint
column (bounded integers). Each function returns the value it checked, or raises
Invalid with a sentence for a person that names the field and says what is allowed.

The bounds live here too, one per quantity, so the till, the API, the schemas and the hub agree.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any
from urllib.parse import urlsplit

MAX_BIGINT = 2**63 - 1
"""What a PostgreSQL bigint holds: sequence numbers, catalog versions."""
MAX_MINOR = 10**12
"""Largest amount of money in minor units: ten billion euros in cents, far above any sale, far below bigint."""
MAX_LINE_QUANTITY = 9999
"""Most items of one product on one line."""
MAX_TOKEN_LENGTH = 64
"""Ids and names that travel in subjects, URLs and keys: tenants, stores, tills, devices, SKUs."""
MAX_TEXT_LENGTH = 200
"""Free text a person typed: product names, cashier names, reasons."""
MAX_BARCODE_LENGTH = 128
"""A barcode as scanned, typed or configured (GS1 codes run past 64 characters); drivers/barcode_scanner.py
holds the same bound for what scanners hand on."""

TOKEN_PATTERN = r"[A-Za-z0-9_-]+"
"""What a name token may hold (for documents that describe the bounds, such as the OpenAPI document)."""
_TOKEN = re.compile(TOKEN_PATTERN)
TOKEN = _TOKEN
"""TOKEN_PATTERN compiled, for hot paths that inline token()'s checks (novapos.wire.catalog's items)."""
MAX_CATEGORY_LENGTH = 200
"""A product category path ("food/dairy/cheese"), at most MAX_CATEGORY_DEPTH names deep."""
MAX_CATEGORY_DEPTH = 8
CATEGORY_PATTERN = rf"{TOKEN_PATTERN}(/{TOKEN_PATTERN}){{0,{MAX_CATEGORY_DEPTH - 1}}}"
_CATEGORY = re.compile(CATEGORY_PATTERN)
CATEGORY = _CATEGORY
"""CATEGORY_PATTERN compiled, for hot paths that inline category()'s checks."""
CURRENCY_PATTERN = r"[A-Z]{3}"
"""ISO 4217 codes; the hub stores them as char(3)."""
_CURRENCY = re.compile(CURRENCY_PATTERN)
_FORMAT_CHARACTERS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
UNSAFE_CHARACTERS = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff{_FORMAT_CHARACTERS}]")
"""What must not travel in text (logs escape the same set): control characters, line separators, lone
surrogates, and the invisible format characters (Unicode category Cf: bidi overrides and isolates,
zero-width spaces, BOMs, tags) that reorder or hide text on a screen, a receipt or a log viewer. ZWNJ
and ZWJ (U+200C, U+200D) are not among them: Persian and Indic names and emoji sequences need them.
Tags are refused although the England, Scotland and Wales flag emoji use them: they also hide text."""


class Invalid(ValueError):
    """A value refused at the door; the message says which field and what is allowed."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where} {message}")
        self.where = where


def _unsafe_character(value: str, multiline: bool) -> str | None:
    """Describe the first character that must not travel, or None."""
    for match in UNSAFE_CHARACTERS.finditer(value):
        char = match.group()
        if multiline and char in "\n\t":
            continue
        category = unicodedata.category(char)
        if category == "Cs":
            return f"a lone surrogate (U+{ord(char):04X})"
        if category == "Cc":
            return "NUL" if char == "\x00" else f"a control character (U+{ord(char):04X})"
        if char in "\u2028\u2029":
            return f"a line separator (U+{ord(char):04X})"
        return (f"an invisible format character that can reorder or hide text "
                f"(U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})")
    return None


def text(where: str, value: Any, *, max_length: int = MAX_TEXT_LENGTH, multiline: bool = False,
         strip: bool = True) -> str:
    """Printable text of 1..max_length characters (after trimming spaces at either end, when strip)."""
    if not isinstance(value, str):
        raise Invalid(where, f"must be text, got {describe(value)}")
    checked: str = value.strip() if strip else value
    if not checked:
        raise Invalid(where, "must not be empty")
    if len(checked) > max_length:
        raise Invalid(where, f"must be at most {max_length} characters, got {len(checked)}")
    if (bad := _unsafe_character(checked, multiline)) is not None:
        raise Invalid(where, f"must not contain {bad}")
    return checked


def token(where: str, value: Any, *, max_length: int = MAX_TOKEN_LENGTH) -> str:
    """A name that is safe in a NATS subject, a URL path and a file name: letters, digits, '-' and '_'."""
    if not isinstance(value, str) or not value:
        raise Invalid(where, f"must be a non-empty name, got {describe(value)}")
    if len(value) > max_length:
        raise Invalid(where, f"must be at most {max_length} characters, got {len(value)}")
    if not _TOKEN.fullmatch(value):
        raise Invalid(where, f"may use only letters, digits, '-' and '_', got {value!r}")
    return value


def category(where: str, value: Any) -> str:
    """A category path: names (letters, digits, '-' and '_') joined by '/', "food/dairy/cheese"; a
    promotion's category matches itself and every category below it, so the path is the hierarchy."""
    if not isinstance(value, str) or len(value) > MAX_CATEGORY_LENGTH or not _CATEGORY.fullmatch(value):
        raise Invalid(where, f"must be a category path such as 'food/dairy/cheese' (names of letters, digits, "
                             f"'-' and '_' joined by '/', at most {MAX_CATEGORY_DEPTH} deep and "
                             f"{MAX_CATEGORY_LENGTH} characters), got {describe(value)}")
    return value


def integer(where: str, value: Any, minimum: int, maximum: int) -> int:
    """A whole number (not a bool, not a float) from minimum to maximum."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(where, f"must be a whole number, got {describe(value)}")
    if not minimum <= value <= maximum:
        raise Invalid(where, f"must be from {minimum} to {maximum}, got {_short_number(value)}")
    return value


MAX_NATS_SERVERS = 16
"""Most servers one [nats] url lists: the seeds of a cluster (clients learn the other members from them)."""


def nats_servers(where: str, value: Any) -> list[str]:
    """The servers of a NATS url: one, or several separated by commas (the members of a cluster), each
    nats://host[:port] or tls://host[:port], all with the same scheme (a cluster is TLS or not), none twice.
    A refused entry is shown without the user and password it may carry."""
    servers = [one.strip() for one in text(where, value, max_length=2000).split(",")]
    if len(servers) > MAX_NATS_SERVERS:
        raise Invalid(where, f"must list at most {MAX_NATS_SERVERS} servers, got {len(servers)}")
    seen: set[tuple[str, int]] = set()
    for server in servers:
        if not server:
            raise Invalid(where, "has an empty entry: separate servers with one comma, as in "
                                 "tls://10.0.0.1:4222,tls://10.0.0.2:4222")
        parts = urlsplit(server)
        scheme, _, rest = server.rpartition("://")
        shown = f"{scheme}://{rest.rpartition('@')[2]}" if scheme else server.rpartition("@")[2]
        try:
            port = 4222 if parts.port is None else parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise Invalid(where, f"has a server whose port is not a number from 1 to 65535: {shown}")
        if parts.scheme.lower() not in ("nats", "tls") or not parts.hostname or parts.path not in ("", "/"):
            raise Invalid(where, f"must list servers as nats://host:port or tls://host:port, got {shown}")
        if parts.scheme.lower() != urlsplit(servers[0]).scheme.lower():
            raise Invalid(where, "mixes tls:// and nats:// servers: the members of one cluster are all TLS or none")
        if (parts.hostname, port) in seen:
            raise Invalid(where, f"lists {parts.hostname}:{port} twice")
        seen.add((parts.hostname, port))
    return servers


def boolean(where: str, value: Any) -> bool:
    """true or false, nothing else (not 0 or 1, not "yes")."""
    if not isinstance(value, bool):
        raise Invalid(where, f"must be true or false, got {describe(value)}")
    return value


def minor_units(where: str, value: Any, *, minimum: int = 0, maximum: int = MAX_MINOR) -> int:
    """An amount of money in minor units (cents): a bounded whole number, never a float."""
    return integer(where, value, minimum, maximum)


def currency(where: str, value: Any) -> str:
    """A three-letter ISO 4217 code such as EUR."""
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise Invalid(where, f"must be a three-letter ISO currency code such as 'EUR', got {describe(value)}")
    return value


def uuid_text(where: str, value: Any) -> str:
    """A UUID in its canonical text form."""
    if isinstance(value, str) and len(value) == 36:
        try:
            if str(uuid.UUID(value)) == value.lower():
                return value.lower()
        except ValueError:
            pass
    raise Invalid(where, f"must be an id like 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b, got {describe(value)}")


def is_text(value: Any, max_length: int = MAX_TEXT_LENGTH) -> bool:
    """Whether text() accepts `value` exactly as it is (already trimmed, single line): text()'s rules without
    building a sentence, for hot paths that call text() only to say why a value failed."""
    return (isinstance(value, str) and 0 < len(value) <= max_length and value.strip() == value
            and ((value.isascii() and value.isprintable()) or UNSAFE_CHARACTERS.search(value) is None))


def _short_number(value: int) -> str:
    """The number, or its size: str() of a number past 4300 digits would itself raise."""
    return str(value) if abs(value) < 10**24 else "a number of more than 24 digits"


def describe(value: Any) -> str:
    """What a refused value was, short enough for a message and never echoing hostile bytes.

    Public so that every refusal that names what a client sent (a path, a header) shows it this way."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return _short_number(value)
    if isinstance(value, str):
        shown = value if len(value) <= 40 and _unsafe_character(value, False) is None else None
        return repr(shown) if shown is not None else f"text of {len(value)} characters"
    return {float: "a decimal number", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
