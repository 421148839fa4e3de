"""The key format: generated secrets are well formed, and every kind of near miss is
refused with its own reason before any lookup."""

from __future__ import annotations

import string
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.ids import KEY_ID_PATTERN
from schemas.key_format import (
    SECRET_LENGTH,
    Malformed,
    ParsedSecret,
    check_secret,
    generate_secret,
    hash_secret,
    hint,
    new_key_id,
)

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _crc_base62(text: str) -> str:
    """The checksum computed independently: repeated division, most significant first."""
    value = zlib.crc32(text.encode())
    out = ""
    for _ in range(6):
        out = ALPHABET[value % 62] + out
        value //= 62
    assert value == 0
    return out


@pytest.mark.parametrize("key_type", ["live", "test"])
def test_generated_secrets_have_the_documented_layout(key_type: str) -> None:
    seen = set()
    for _ in range(200):
        secret = generate_secret(key_type)
        assert len(secret) == SECRET_LENGTH == 44
        assert secret.startswith(f"pk_{key_type}_")
        body = secret[8:]
        assert all(c in ALPHABET for c in body)
        assert body[30:] == _crc_base62(body[:30])
        assert check_secret(secret) == ParsedSecret(key_type, secret)
        seen.add(secret)
    assert len(seen) == 200


def test_hash_and_hint_keep_nothing_secret() -> None:
    secret = generate_secret("live")
    digest = hash_secret(secret)
    assert digest.startswith("sha256:") and len(digest) == 71
    assert secret not in digest
    assert hint(secret) == secret[:12]
    assert len(hint(secret)) == len("pk_live_") + 4


def test_key_ids_are_random_and_valid() -> None:
    import re

    ids = {new_key_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(KEY_ID_PATTERN, i) for i in ids)


SECRET = generate_secret("live")


@pytest.mark.parametrize(
    ("presented", "reason"),
    [
        ("", Malformed.EMPTY),
        (f" {SECRET}", Malformed.WHITESPACE),
        (f"{SECRET}\n", Malformed.NEWLINE),
        (f"{SECRET[:20]}\n{SECRET[20:]}", Malformed.NEWLINE),
        (f'"{SECRET}"', Malformed.QUOTED),
        (f"'{SECRET}'", Malformed.QUOTED),
        ("sk_live_" + SECRET[8:], Malformed.WRONG_PREFIX),
        ("pk_prod_" + SECRET[8:], Malformed.WRONG_PREFIX),
        (SECRET[:-1], Malformed.TRUNCATED),
        (SECRET + "A", Malformed.TOO_LONG),
        (SECRET[:20] + "-" + SECRET[21:], Malformed.ALPHABET),
        (SECRET[:20] + "é" + SECRET[21:], Malformed.ALPHABET),
    ],
    ids=lambda value: value.value if isinstance(value, Malformed) else "near_miss",  # no secret
)
def test_near_misses_are_refused_with_their_reason(presented: str, reason: Malformed) -> None:
    assert check_secret(presented) is reason
    assert reason.advice


@given(st.integers(min_value=8, max_value=SECRET_LENGTH - 1), st.sampled_from(ALPHABET))
def test_any_single_character_change_fails_the_checksum(position: int, char: str) -> None:
    if SECRET[position] == char:
        return
    changed = SECRET[:position] + char + SECRET[position + 1 :]
    assert check_secret(changed) is Malformed.CHECKSUM


def test_checksum_advice_mentions_encoding() -> None:
    assert "encoding" in Malformed.CHECKSUM.advice


def test_random_characters_are_uniform() -> None:
    """Chi-squared over 62 characters: a biased mapping (e.g. every byte mod 62) fails."""
    from collections import Counter

    from schemas.key_format import random_base62

    counts = Counter(random_base62(62_000))
    assert set(counts) == set(ALPHABET)
    chi2 = sum((n - 1000) ** 2 / 1000 for n in counts.values())
    assert chi2 < 110  # 61 degrees of freedom: p < 1e-4 of failing by chance
