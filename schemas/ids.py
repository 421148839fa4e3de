"""Identifier formats shared by every event.

Each pattern is plain ECMA-262 (what JSON Schema's `pattern` means), anchored with
`^...$` and made of ASCII classes; Python code matches it with `re.fullmatch`.
"""

from __future__ import annotations

from typing import Annotated

from schemas.wire_types import CanonicalUuid, Matching

KEY_ID_PATTERN = r"^key_[A-Za-z0-9]{6,64}$"
ACCOUNT_ID_PATTERN = r"^acc_[A-Za-z0-9]{3,64}$"
EVENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
"""An event id on the wire (single events, batch envelopes and batch columns alike): a
UUID in canonical lowercase, hyphenated text form."""

KEY_ID = Matching(KEY_ID_PATTERN)
ACCOUNT_ID = Matching(ACCOUNT_ID_PATTERN)
EVENT_ID = CanonicalUuid(EVENT_ID_PATTERN)
EVENT_ID_TEXT = CanonicalUuid(EVENT_ID_PATTERN, as_text=True)

KeyId = Annotated[str, KEY_ID]
AccountId = Annotated[str, ACCOUNT_ID]
