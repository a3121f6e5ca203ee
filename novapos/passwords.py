"""Slow salted verifiers for console passwords and till PINs (scrypt, from the standard library).

The hub makes them; the console checks passwords against them and the till (from the staff list the hub
sends each store) checks PINs. A verifier is self-describing text, `scrypt$<log2 N>$<r>$<p>$<salt>$<hash>`
(base64 without padding), so its cost can be raised later and old verifiers still check. A check takes
about 0.15 s of one core on a small machine: run it off the event loop (trio.to_thread) and bounded.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

LOG2_N = 14
R = 8
P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_MAXMEM = 256 * 1024 * 1024


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(secret: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8", "surrogatepass"), salt=salt, n=1 << log2_n, r=r, p=p,
                          maxmem=_MAXMEM, dklen=HASH_BYTES)


def make_verifier(secret: str) -> str:
    salt = os.urandom(SALT_BYTES)
    return f"scrypt${LOG2_N}${R}${P}${_b64(salt)}${_b64(_derive(secret, salt, LOG2_N, R, P))}"


def check(secret: str, verifier: str) -> bool:
    """Whether `secret` matches; False (never an exception) for a verifier that is malformed."""
    try:
        kind, log2_n, r, p, salt, expected = verifier.split("$")
        if kind != "scrypt" or not (10 <= int(log2_n) <= 20 and 1 <= int(r) <= 32 and 1 <= int(p) <= 16):
            return False
        derived = _derive(secret, _unb64(salt), int(log2_n), int(r), int(p))
        return hmac.compare_digest(derived, _unb64(expected))
    except ValueError:
        return False


@functools.cache
def dummy_verifier() -> str:
    """Checked against when the login is unknown, so a wrong login takes as long as a wrong password."""
    return make_verifier("no such user")
