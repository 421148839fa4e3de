"""Dead-letter records: the original bytes plus headers saying why and where from."""

from __future__ import annotations

from schemas.errors import InvalidMessage


def dead_letter_headers(
    error: InvalidMessage, topic: str, partition: int, offset: int
) -> dict[str, bytes]:
    return {
        "keypulse-reason": error.reason.value.encode(),
        "keypulse-error": error.message.encode()[:1000],
        "keypulse-source-topic": topic.encode(),
        "keypulse-source-partition": str(partition).encode(),
        "keypulse-source-offset": str(offset).encode(),
    }
