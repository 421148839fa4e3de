"""The one key finder: true positives wherever they sit in text, checksum-failing
lookalikes and keys split across lines rejected, lines and columns right."""

from __future__ import annotations

import zlib

from schemas.key_format import BASE62, PREFIXES, generate_secret
from schemas.key_scan import find_keys, is_key
from tests.secret_scan import find_secrets


def lookalike(secret: str) -> str:
    """`secret` with its last checksum character changed: the right shape, a wrong CRC."""
    last = secret[-1]
    return secret[:-1] + BASE62[(BASE62.index(last) + 1) % 62]


def test_keys_inside_other_text_are_found_with_line_and_column() -> None:
    live, test = generate_secret("live"), generate_secret("test")
    text = f'first line\nAPI_KEY={live};\n\n  "Bearer {test}",x{live}\n'
    found = find_keys(text.encode())
    assert [(k.secret, k.key_type, k.line, k.column) for k in found] == [
        (live, "live", 2, 9),
        (test, "test", 4, 11),
        (live, "live", 4, 11 + 44 + 3),
    ]
    assert text.splitlines()[3][10:54] == test  # the column is 1-based, independently


def test_checksum_failing_lookalikes_and_wrong_prefixes_are_rejected() -> None:
    secret = generate_secret("live")
    body = secret[len(PREFIXES["live"]) :]
    wrong = [lookalike(secret), "pk_prod_" + body, "sk_live_" + body, secret[:-1]]
    assert find_keys("\n".join(wrong).encode()) == []
    assert not any(is_key(w) for w in wrong)
    assert is_key(secret) and not is_key(f" {secret}")


def test_a_key_split_across_lines_is_not_matched() -> None:
    secret = generate_secret("test")
    for cut in (10, 30, 43):
        assert find_keys(f"{secret[:cut]}\n{secret[cut:]}".encode()) == []
        assert find_keys(f"{secret[:cut]}\r\n{secret[cut:]}".encode()) == []


def test_binary_noise_around_a_key_is_fine() -> None:
    secret = generate_secret("live")
    data = bytes(range(256)) + secret.encode() + b"\xff\xfe\n"
    [key] = find_keys(data)
    assert key.secret == secret and key.line == 1 + bytes(range(256)).count(b"\n")


def test_the_checksum_is_what_decides() -> None:
    """A hand-made key (CRC32 computed here, not by the module) is found."""
    random_part = "A" * 30
    n, digits = zlib.crc32(random_part.encode()), ""
    while n:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
    secret = "pk_live_" + random_part + digits.rjust(6, "0")
    assert [k.secret for k in find_keys(secret.encode())] == [secret]


def test_the_secret_never_shows_in_a_repr_and_the_hint_is_short() -> None:
    secret = generate_secret("live")
    [key] = find_keys(secret.encode())
    assert secret not in repr(key)
    assert key.hint == secret[:12]


def test_secret_scan_uses_the_finder_and_keeps_known_secrets() -> None:
    secret, other = generate_secret("live"), "not-a-key-but-known"
    data = f"{secret} {lookalike(secret)} {other}".encode()
    assert find_secrets(data) == {secret}
    assert find_secrets(data, known=[other]) == {secret, other}
