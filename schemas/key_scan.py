"""Finding keypulse keys in text: by format (`pk_live_`/`pk_test_` and 36 base62
characters) and checksum (`schemas.key_format.check_secret`), so a hit is a real keypulse
key, never noise (a random 36-character string passes the 6-character CRC32 once in
about 5.7e10).

`find_keys` is pure: the one finder behind `keypulse keys scan`, the secret-scanning
endpoint's check of reported tokens (`is_key`) and the tests' `tests/secret_scan.py`.
A key is matched where it appears, inside other text too (`KEY=pk_live_…;`), but never
across a line break: a key split over two lines is not one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from schemas.key_format import ParsedSecret, check_secret, hash_secret, hint

CANDIDATE = re.compile(rb"pk_(?:live|test)_[0-9A-Za-z]{36}")


@dataclass(frozen=True)
class FoundKey:
    """One key found in some bytes: the secret (callers never print it; `hint` is the
    display form), where it is (1-based line and column) and its stored hash."""

    secret: str = field(repr=False)
    key_type: str
    line: int
    column: int

    @property
    def hint(self) -> str:
        return hint(self.secret)

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def is_key(token: str) -> bool:
    """`token` is exactly one well-formed keypulse key (format and checksum)."""
    return isinstance(check_secret(token), ParsedSecret)


def find_keys(data: bytes) -> list[FoundKey]:
    """Every well-formed key in `data`, in order of appearance (the same secret at two
    places is found twice). Bytes that are not UTF-8 are fine: a key is ASCII."""
    found: list[FoundKey] = []
    line, line_start, counted_to = 1, 0, 0
    for match in CANDIDATE.finditer(data):
        parsed = check_secret(match.group().decode("ascii"))
        if not isinstance(parsed, ParsedSecret):
            continue
        start = match.start()
        newlines = data.count(b"\n", counted_to, start)
        if newlines:
            line += newlines
            line_start = data.rindex(b"\n", counted_to, start) + 1
        counted_to = start
        found.append(FoundKey(parsed.secret, parsed.key_type, line, start - line_start + 1))
    return found
