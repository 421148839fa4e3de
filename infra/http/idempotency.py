"""`Idempotency-Key` for `POST /api-keys` (pure).

The request hash recorded with a create (`streams.keyservice.commands.request_hash`) is
the sha256 of the canonical body: the
validated request with its defaults filled in, as JSON with sorted keys and no spaces.
So `{"type": "live", "name": "Web"}` and `{"name": "Web", "type": "live", "access":
"full"}` are the same request, and a retry is recognised however its client formats it.

A retry with the same key and the same body within 24 hours creates nothing: it is
answered `200 OK` (not `201 Created`: nothing was created by it) with the key's id and
current state, `secret: null`, `replayed: true`, a `note` saying the secret cannot be
shown again, and the header `Idempotent-Replayed: true`. The same key with a different
body is refused (`422 idempotency_key_reused`). Neither the secret nor the body is
stored with the key: the key-events topic holds only the idempotency key and this hash.
"""

from __future__ import annotations

from schemas.keys import IDEMPOTENCY_KEY_PATTERN
from streams.keyservice.commands import request_hash

__all__ = ["IDEMPOTENCY_KEY_PATTERN", "REPLAYED_HEADER", "REPLAY_NOTE", "request_hash"]

REPLAYED_HEADER = "Idempotent-Replayed"
REPLAY_NOTE = (
    "this request repeats an earlier create with the same Idempotency-Key, which created "
    "this key; its secret was shown once, in that answer, and cannot be shown again. If it "
    "was lost, revoke the key and create a new one"
)
