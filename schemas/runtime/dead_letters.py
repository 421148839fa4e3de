"""Dead-letter records: the original bytes plus headers saying why and where from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from schemas.errors import InvalidMessage

T = TypeVar("T")


class DeadLetterSink(Protocol):
    async def send(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None: ...


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


async def decode_or_dead_letter(
    message: Any, decode: Callable[[bytes], T], topic: str, sink: DeadLetterSink
) -> T | None:
    """`decode` of a consumed message's value; when it raises `InvalidMessage`, the original
    bytes go to `sink` with why and where from, and the result is None."""
    value: bytes = message.value or b""
    try:
        return decode(value)
    except InvalidMessage as exc:
        headers = dead_letter_headers(exc, topic, message.partition, message.offset)
        await sink.send(message.key, value, headers)
        return None
