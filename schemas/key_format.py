"""The API key format: `pk_live_` / `pk_test_`, 30 random base62 characters, a 6-character
base62 CRC32 of those 30 (GitHub's token layout, so scanners can tell a key from noise).

`generate_secret` makes one, `check_secret` says why a string is not one (before any
lookup), `hash_secret` is the only form that is ever stored, `hint` the display form.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass
from enum import StrEnum

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIXES = {"live": "pk_live_", "test": "pk_test_"}
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6
SECRET_LENGTH = len("pk_live_") + RANDOM_LENGTH + CHECKSUM_LENGTH  # 44
HINT_CHARS = 4
SECRET_PATTERN = r"^pk_(live|test)_[0-9A-Za-z]{36}$"
"""The shape of a secret (the checksum is checked in code; see `check_secret`)."""
KEY_ID_RANDOM_LENGTH = 16

_BODY = re.compile(r"[0-9A-Za-z]+")


def base62(number: int, width: int) -> str:
    """`number` in base62, left-padded with '0' to `width` characters."""
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(random_part: str) -> str:
    """The 6-character base62 CRC32 of the 30 random characters."""
    return base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def random_base62(length: int) -> str:
    """`length` uniformly random base62 characters from `secrets` (one system call, not
    one per character): bytes below 248 = 4 x 62 map to a character, the rest are
    dropped so that no character is likelier than another."""
    out: list[str] = []
    while len(out) < length:
        out += [BASE62[b % 62] for b in secrets.token_bytes(length + 8) if b < 248]
    return "".join(out[:length])


def generate_secret(key_type: str) -> str:
    """A new secret of `key_type` ("live" or "test") from the `secrets` module."""
    random_part = random_base62(RANDOM_LENGTH)
    return PREFIXES[key_type] + random_part + checksum(random_part)


def new_key_id() -> str:
    """`key_` and 16 random base62 characters (95 bits)."""
    return "key_" + random_base62(KEY_ID_RANDOM_LENGTH)


def hash_secret(secret: str) -> str:
    """What is stored instead of the secret: `sha256:` and 64 hex digits."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def hint(secret: str) -> str:
    """The display form: the prefix and the first 4 random characters, e.g. `pk_live_Ab3x`
    (shown with a trailing `…`)."""
    return secret[: len("pk_live_") + HINT_CHARS]


class Malformed(StrEnum):
    """Why a presented string is not a keypulse key; `advice` says what to do."""

    EMPTY = "empty"
    WHITESPACE = "whitespace"
    QUOTED = "quoted"
    NEWLINE = "newline"
    WRONG_PREFIX = "wrong_prefix"
    TRUNCATED = "truncated"
    TOO_LONG = "too_long"
    ALPHABET = "alphabet"
    CHECKSUM = "checksum"

    @property
    def advice(self) -> str:
        return _ADVICE[self]


_ADVICE = {
    Malformed.EMPTY: "no key was given; send Authorization: Bearer pk_live_… or pk_test_…",
    Malformed.WHITESPACE: "the key has surrounding whitespace; strip it before sending",
    Malformed.QUOTED: "the key is wrapped in quotes; send it without them",
    Malformed.NEWLINE: "the key contains a line break; it was probably wrapped when copied",
    Malformed.WRONG_PREFIX: "keypulse keys start with pk_live_ or pk_test_",
    Malformed.TRUNCATED: f"the key is shorter than {SECRET_LENGTH} characters; "
    "it was probably cut off when copied",
    Malformed.TOO_LONG: f"the key is longer than {SECRET_LENGTH} characters; "
    "check that nothing was appended to it",
    Malformed.ALPHABET: "the key contains characters other than letters and digits after "
    "its prefix; check for encoding issues if copying from another source",
    Malformed.CHECKSUM: "the key's checksum does not match; a character was changed, check "
    "for encoding issues if copying from another source",
}


@dataclass(frozen=True)
class ParsedSecret:
    key_type: str  # "live" | "test"
    secret: str


def check_secret(presented: str) -> ParsedSecret | Malformed:
    """The key type of a well-formed secret, or why `presented` is malformed."""
    if not presented:
        return Malformed.EMPTY
    if "\n" in presented or "\r" in presented:
        return Malformed.NEWLINE
    if presented != presented.strip():
        return Malformed.WHITESPACE
    if presented[0] in "\"'`" or presented[-1] in "\"'`":
        return Malformed.QUOTED
    key_type = next((t for t, p in PREFIXES.items() if presented.startswith(p)), None)
    if key_type is None:
        return Malformed.WRONG_PREFIX
    body = presented[len("pk_live_") :]
    if not _BODY.fullmatch(body):
        return Malformed.ALPHABET
    if len(presented) < SECRET_LENGTH:
        return Malformed.TRUNCATED
    if len(presented) > SECRET_LENGTH:
        return Malformed.TOO_LONG
    if checksum(body[:RANDOM_LENGTH]) != body[RANDOM_LENGTH:]:
        return Malformed.CHECKSUM
    return ParsedSecret(key_type, presented)
