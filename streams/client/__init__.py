"""The producer library an API embeds: request usage and key lifecycle events to Kafka.

- `UsageRecorder(RecorderConfig(...)).record(...)`: per-request events, validated and
  buffered on the calling thread (never blocking), packed into columnar `RequestBatch`
  records and sent by a background thread; spilled to disk or dropped-and-counted when
  Kafka is unreachable. `stats()`, `flush()`, `close()`.
- `KeyEventPublisher(PublisherConfig(...)).publish(event, wait=True)`: one record per
  lifecycle event, keyed by account_id, confirmed synchronously on request.
- `KeyFollower(FollowerConfig(...)).start()`: the key-events topic folded into memory
  (every account's keys and plan), for the key service and the verifier.
- `KeyVerifier.connect(bootstrap, key_events_topic, render_counts_topic)`: the per-request
  key check from memory, `verify(secret, client_ip=..., render=...)` -> `Verification`
  (verdict, message, key id, account, watermark, the render quota per UTC day);
  `ratelimit_headers(result.quota)` gives the RateLimit headers of a test-key render.
  With `key_state_topic` it starts from the key-state snapshot (`KeyStateWriter`).
- `OutcomeRecorder(RecorderConfig(...))`: the verifier's outcome sink (`outcomes=`):
  non-valid verdicts one event each, valid ones counted per key and minute, on the
  requests topic through the usage recorder's batching.

The usage and outcome recorders use kafka-python producers; the key path (publisher,
follower, snapshot writer, render counts) uses librdkafka (`confluent-kafka`), whose I/O
threads do not hold the GIL; all are idempotent with acks=all (render counts: acks=1)
and nothing is created at import time. This package imports only `schemas` and the base
install's dependencies (pydantic, orjson, kafka-python, crc32c, lz4, confluent-kafka):
`pip install keypulse` is all an API needs.
"""

from __future__ import annotations

from streams.client.key_events import (
    KeyEventPublisher,
    PublisherConfig,
    PublishError,
    PublishResult,
)
from streams.client.key_follower import FollowerConfig, KeyFollower, NotReady
from streams.client.key_state_writer import KeyStateWriter, WriterConfig
from streams.client.outcome_recorder import OutcomeRecorder
from streams.client.quota import QuotaState
from streams.client.ratelimit_headers import ratelimit_headers
from streams.client.recorder_config import RecorderConfig, RecorderStats
from streams.client.spill import SpillError
from streams.client.usage_recorder import UsageRecorder
from streams.client.verdicts import Environment, Verdict, Verification
from streams.client.verifier import KeyVerifier, OutcomeSink

__all__ = [
    "Environment",
    "FollowerConfig",
    "KeyEventPublisher",
    "KeyFollower",
    "KeyStateWriter",
    "KeyVerifier",
    "NotReady",
    "OutcomeRecorder",
    "OutcomeSink",
    "PublishError",
    "PublishResult",
    "PublisherConfig",
    "QuotaState",
    "RecorderConfig",
    "RecorderStats",
    "SpillError",
    "UsageRecorder",
    "Verdict",
    "Verification",
    "WriterConfig",
    "ratelimit_headers",
]
