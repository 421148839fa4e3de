"""Envelope encryption of secrets at rest: AES-256-GCM, a data key per secret, wrapped by a
master key named by a key id (kid), so master keys can be rotated.

Sealed form (`schemas.alerts.SEALED_RE`), one ASCII string:

    kpsealed:v1:<kid>:<hint>:<wrapped>:<body>

- `kid`: the master key that wrapped the data key;
- `hint`: base64url of a masked display form chosen by the caller (e.g. ``whsec_…abcd``),
  so reads can show it without any key; it is authenticated (part of the body's AD);
- `wrapped`: base64url(nonce ‖ AES-GCM(master key, data key, AD = wrap AD));
- `body`: base64url(nonce ‖ AES-GCM(data key, plaintext, AD = body AD)).

The caller's `context` (e.g. ``acc_x/rule_y/webhook.secret``) is in both ADs: a sealed
value opens only for the context it was sealed for (it cannot be moved to another rule or
field). `rewrap` replaces `kid` and `wrapped` only; `body` stays, so it identifies the
secret across rotations (`stable_part`).

A `Keyring` holds master keys by kid; the first is current (new seals, rewraps), the
others still open. Its text form is one `kid:<base64 of 32 bytes>` per line (blank lines
and `#` comments ignored; commas separate entries too, for an environment variable).

Pure apart from the randomness (`random`, `os.urandom` by default); no I/O.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.alerts import SEALED_PREFIX, SEALED_RE

KEY_BYTES = 32
NONCE_BYTES = 12
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

Random = Callable[[int], bytes]


class SealingError(ValueError):
    """A sealed value that cannot be opened, or a keyring that cannot be used."""


class UnknownKeyId(SealingError):
    """The sealed value names a master key the keyring does not hold."""

    def __init__(self, kid: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"sealed with master key {kid!r}, which is not in the keyring "
            f"(it holds {', '.join(known) or 'no key'}); add the line for {kid!r} back to "
            "the file KEYPULSE_SECRETS_MASTER_KEY_FILE names (or to KEYPULSE_SECRETS_MASTER_KEY)"
        )
        self.kid = kid


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Keyring:
    """Master keys by kid, the current one first (see the module docstring)."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise SealingError("a keyring needs at least one master key")
        kids = [kid for kid, _ in self.keys]
        if len(set(kids)) != len(kids):
            raise SealingError(f"a key id occurs twice in the keyring: {kids}")
        for kid, key in self.keys:
            if not _KID_RE.match(kid):
                raise SealingError(f"key id {kid!r}: use 1-32 of A-Z a-z 0-9 _ -")
            if len(key) != KEY_BYTES:
                raise SealingError(f"master key {kid!r} must be {KEY_BYTES} bytes, not {len(key)}")

    @property
    def current_kid(self) -> str:
        return self.keys[0][0]

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(kid for kid, _ in self.keys)

    def key(self, kid: str) -> bytes:
        for known, key in self.keys:
            if known == kid:
                return key
        raise UnknownKeyId(kid, self.kids)

    def with_current(self, kid: str, key: bytes) -> Keyring:
        """This keyring with (`kid`, `key`) first; an existing entry for `kid` moves."""
        return Keyring(((kid, key), *((k, v) for k, v in self.keys if k != kid)))

    def without(self, kid: str) -> Keyring:
        return Keyring(tuple((k, v) for k, v in self.keys if k != kid))

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(kids={self.kids})"


def new_master_key(random: Random = os.urandom) -> tuple[str, bytes]:
    """A fresh (kid, key): kid `mk_` + 8 hex characters."""
    return "mk_" + random(4).hex(), random(KEY_BYTES)


def parse_keyring(text: str, source: str) -> Keyring:
    """The keyring in `text` (`source` names it in errors, e.g. the file's path)."""
    entries: list[tuple[str, bytes]] = []
    for raw in re.split(r"[\n,]", text):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kid, sep, b64 = line.partition(":")
        if not sep:
            raise SealingError(
                f"{source}: expected 'kid:<base64 of 32 bytes>' per line, got {len(line)} "
                "characters without a ':' (create one with `keypulse secrets init`)"
            )
        try:
            key = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SealingError(f"{source}: the key of {kid.strip()!r} is not base64") from None
        entries.append((kid.strip(), key))
    if not entries:
        raise SealingError(f"{source}: holds no master key (create one: `keypulse secrets init`)")
    try:
        return Keyring(tuple(entries))
    except SealingError as exc:
        raise SealingError(f"{source}: {exc}") from None


def format_keyring(keyring: Keyring) -> str:
    """The text form: a comment, then one `kid:base64` line per key, current first."""
    lines = ["# keypulse master keys: the first is current; older ones still open"]
    lines += [f"{kid}:{base64.b64encode(key).decode('ascii')}" for kid, key in keyring.keys]
    return "\n".join(lines) + "\n"


def _wrap_ad(kid: str, context: str) -> bytes:
    return f"{SEALED_PREFIX}wrap:{kid}:{context}".encode()


def _body_ad(context: str, hint: str) -> bytes:
    return f"{SEALED_PREFIX}body:{context}:{hint}".encode()


@dataclass(frozen=True, slots=True)
class SealedParts:
    kid: str
    hint: str
    wrapped: bytes
    body: bytes
    body_text: str


def parse_sealed(sealed: str) -> SealedParts:
    match = SEALED_RE.match(sealed)
    if match is None:
        raise SealingError("not a sealed value (expected kpsealed:v1:<kid>:…)")
    try:
        hint = _b64d(match["hint"]).decode("utf-8")
        return SealedParts(
            match["kid"], hint, _b64d(match["wrapped"]), _b64d(match["body"]), match["body"]
        )
    except (binascii.Error, ValueError):
        raise SealingError("a sealed value's parts are not base64url") from None


def sealed_kid(sealed: str) -> str:
    return parse_sealed(sealed).kid


def sealed_hint(sealed: str) -> str:
    """The masked display form stored with the sealed value (no key needed)."""
    return parse_sealed(sealed).hint


def stable_part(sealed: str) -> str:
    """What identifies the sealed secret across rewraps (the ciphertext of the secret)."""
    return parse_sealed(sealed).body_text


def _wrap(keyring: Keyring, data_key: bytes, context: str, random: Random) -> tuple[str, str]:
    kid = keyring.current_kid
    nonce = random(NONCE_BYTES)
    wrapped = nonce + AESGCM(keyring.key(kid)).encrypt(nonce, data_key, _wrap_ad(kid, context))
    return kid, _b64e(wrapped)


def _assemble(kid: str, hint: str, wrapped: str, body: str) -> str:
    return f"{SEALED_PREFIX}{kid}:{_b64e(hint.encode())}:{wrapped}:{body}"


def seal(
    keyring: Keyring, plaintext: str, context: str, hint: str = "", random: Random = os.urandom
) -> str:
    """`plaintext` sealed for `context` under a new data key wrapped by the current key."""
    data_key = random(KEY_BYTES)
    nonce = random(NONCE_BYTES)
    body = nonce + AESGCM(data_key).encrypt(nonce, plaintext.encode(), _body_ad(context, hint))
    kid, wrapped = _wrap(keyring, data_key, context, random)
    return _assemble(kid, hint, wrapped, _b64e(body))


def _data_key(keyring: Keyring, parts: SealedParts, context: str) -> bytes:
    key = keyring.key(parts.kid)
    nonce, ciphertext = parts.wrapped[:NONCE_BYTES], parts.wrapped[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, _wrap_ad(parts.kid, context))
    except InvalidTag:
        raise SealingError(
            f"a sealed value does not open with master key {parts.kid!r} for {context}: "
            "it was altered, or sealed for another rule or field"
        ) from None


def open_sealed(keyring: Keyring, sealed: str, context: str) -> str:
    """The plaintext of `sealed`; raises `UnknownKeyId` or `SealingError` (altered, or
    sealed for another context)."""
    parts = parse_sealed(sealed)
    data_key = _data_key(keyring, parts, context)
    nonce, ciphertext = parts.body[:NONCE_BYTES], parts.body[NONCE_BYTES:]
    try:
        plain = AESGCM(data_key).decrypt(nonce, ciphertext, _body_ad(context, parts.hint))
    except InvalidTag:
        raise SealingError(f"a sealed value does not open for {context}: it was altered") from None
    return plain.decode("utf-8")


def rewrap(keyring: Keyring, sealed: str, context: str, random: Random = os.urandom) -> str:
    """`sealed` with its data key wrapped by the current master key (the body unchanged;
    the body is checked to open first, so a broken value is never carried forward)."""
    open_sealed(keyring, sealed, context)
    parts = parse_sealed(sealed)
    if parts.kid == keyring.current_kid:
        return sealed
    kid, wrapped = _wrap(keyring, _data_key(keyring, parts, context), context, random)
    return _assemble(kid, parts.hint, wrapped, parts.body_text)
