"""Text a device prints or shows, made safe for its code page in one place.

Receipt printers and customer displays take commands inline with text: ESC p pulses the drawer,
GS V cuts the paper, US $ moves a display's cursor. Any text that reaches a device (a product's
name, a cashier's name, the store's name) goes through `encode`, which yields only bytes the device
prints as characters in its code page, whatever the text holds:

- tab, newline, carriage return and the other line breaks (NEL, U+2028 line and U+2029 paragraph
  separators) and all Unicode spaces become a plain space, so a line stays one line;
- every other control character (C0 such as ESC, GS, DLE and NUL; DEL; C1), lone surrogates,
  private-use and unassigned code points become a visible '?': a tampered name is seen, not obeyed;
- invisible format characters (soft hyphen, zero-width space, bidi overrides, BOM) are dropped;
- a character the code page has is kept; one it lacks gets a stand-in: '€' becomes "EUR" (on a
  code page without it), typographic quotes and dashes become ASCII ones, accented letters lose
  their accent ('ō' -> 'o'), compatibility forms are unfolded ('ﬁ' -> "fi"), anything else is '?'.

Text is composed first (NFC), so a decomposed 'é' is one character. The codecs this is meant for
(single-byte DOS and Windows code pages: cp437, cp858, cp1252...) map only control characters to
bytes below 0x20 and to 0x7F, so the bytes `encode` returns never hold a command.
"""

from __future__ import annotations

import unicodedata

# Line breaks that are control or separator characters: each prints as one space.
_LINE_BREAKS = frozenset("\t\n\v\f\r\x85\u2028\u2029")

# Characters a code page may lack that have a better stand-in than their NFKD decomposition or '?'.
_SUBSTITUTES = {
    "€": "EUR", "‘": "'", "’": "'", "‚": ",", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"',
    "‹": "<", "›": ">", "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-", "…": "...", "•": "*",
    "×": "x", "™": "TM", "©": "(C)", "®": "(R)", "Œ": "OE", "œ": "oe", "Ø": "O",
    "ø": "o", "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ẞ": "SS",
}


def transliterate(text: str, codec: str) -> str:
    """`text` in characters the code page `codec` (a Python codec name) can print, see the module docstring."""
    if text.isascii() and text.isprintable():
        return text  # the common case, kept as is: printable ASCII (0x20-0x7E) is the same in every code page here
    return "".join(_transliterate_char(char, codec) for char in unicodedata.normalize("NFC", text))


def encode(text: str, codec: str) -> bytes:
    """`text` as bytes a device in code page `codec` prints as characters, never obeys as a command."""
    return transliterate(text, codec).encode(codec)


def _transliterate_char(char: str, codec: str) -> str:
    category = unicodedata.category(char)
    if char in _LINE_BREAKS or category.startswith("Z"):
        return " "
    if category == "Cf":
        return ""
    if category.startswith("C"):
        return "?"  # Cc (controls), Cs (lone surrogates), Co (private use), Cn (unassigned)
    if _printable(char, codec):
        return char
    if char in _SUBSTITUTES:
        return _SUBSTITUTES[char]
    stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return stripped if stripped and all(_printable(c, codec) for c in stripped) else "?"


def _printable(char: str, codec: str) -> bool:
    if unicodedata.category(char)[0] in "CZ" and char != " ":
        return False
    try:
        char.encode(codec)
    except UnicodeEncodeError:
        return False
    return True
