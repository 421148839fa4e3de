"""The faust app factory: `build_app(config, services)`; no module-level app."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust

from schemas.runtime.retry import IsTransient, io_failure, until_done
from streams.worker.config import StreamsConfig
from streams.worker.failures import kafka_transient
from streams.worker.ingest_agent import IngestAgent
from streams.worker.keys_agent import KeysAgent
from streams.worker.ports import IngestStore, InsertBlock, KeyStore


def kill_after(blocks: int) -> Callable[[InsertBlock], None]:
    """Fault injection (tests): SIGKILL this process after `blocks` inserts, i.e. between
    an insert and the commit of its offsets."""
    seen = 0

    def listener(block: InsertBlock) -> None:
        nonlocal seen
        seen += 1
        if seen >= blocks:
            os.kill(os.getpid(), signal.SIGKILL)

    return listener


log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.001
"""How soon a thread waiting for the GIL gets it (Python's default is 5 ms). The ingest
agent's writer thread takes the GIL back briefly after each ClickHouse call while the
decode thread runs Python; a shorter interval keeps the writer from idling meanwhile."""


class FaustDeadLetters:
    """Dead-letter sink on a faust topic; returns once the broker acknowledged, retrying
    transient Kafka failures with backoff (at most `retry_max_s` apart)."""

    def __init__(self, topic: Any, retry_max_s: float = 10.0) -> None:
        self._topic = topic
        self._retry_max_s = retry_max_s

    async def _send_once(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        pending = await self._topic.send(key=key, value=value, headers=headers, force=True)
        await pending

    async def send(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        await until_done(
            lambda: self._send_once(key, value, headers),
            "dead-letter send",
            log,
            self._retry_max_s,
            transient=kafka_transient,
        )


@dataclass
class WorkerServices:
    """Adapters the agents use, built by the composition root; `store_transient` says
    which of the stores' failures are worth retrying."""

    ingest_store: IngestStore | None = None
    key_store: KeyStore | None = None
    store_transient: IsTransient = io_failure
    extra_agents: list[Any] = field(default_factory=list)


@dataclass
class KeypulseApp:
    app: faust.App
    ingest: IngestAgent | None
    keys: KeysAgent | None


def build_app(config: StreamsConfig, services: WorkerServices) -> KeypulseApp:
    """A faust app with the agents whose adapters `services` provides."""
    app = faust.App(
        config.app_id,
        broker=config.broker_url,
        value_serializer="raw",
        key_serializer="raw",
        datadir=str(config.data_dir / "faust"),
        web_enabled=config.web_enabled,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=max(16 << 20, config.max_message_bytes * 4),
        producer_max_request_size=max(16 << 20, config.max_message_bytes * 2),
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        stream_buffer_maxsize=config.batch_max_messages * 4,
    )
    names = config.topics
    dlq_topic = app.topic(names.dead_letters, key_type=bytes, value_type=bytes)
    dead_letters = FaustDeadLetters(dlq_topic)

    ingest: IngestAgent | None = None
    if services.ingest_store is not None:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        ingest = IngestAgent(
            topic=names.requests,
            bootstrap_servers=config.bootstrap_servers,
            store=services.ingest_store,
            dead_letters=dead_letters,
            limits=config.ingest_limits,
            store_transient=services.store_transient,
        )
        ingest.configure_take(config.batch_max_messages, config.batch_max_ms / 1000)
        if config.fault_kill_after_blocks:
            ingest.listeners.append(kill_after(config.fault_kill_after_blocks))
        requests_topic = app.topic(names.requests, key_type=bytes, value_type=bytes)
        app.agent(requests_topic, name="keypulse.ingest", concurrency=1)(ingest.run)
        agent_ref = ingest

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def _assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
            # faust sends the set of assigned topic-partitions (after the app as sender)
            assigned = args[0] if args else sender
            if not isinstance(assigned, (set, frozenset)):
                agent_ref.mark_stale()  # unknown shape: recover every partition
                return
            agent_ref.mark_stale([tp.partition for tp in assigned if tp.topic == names.requests])

    keys: KeysAgent | None = None
    if services.key_store is not None:
        keys = KeysAgent(
            names.key_events,
            services.key_store,
            dead_letters,
            store_transient=services.store_transient,
        )
        key_topic = app.topic(names.key_events, key_type=bytes, value_type=bytes)
        app.agent(key_topic, name="keypulse.keys", concurrency=1)(keys.run)
        keys_ref = keys

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def _keys_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
            keys_ref.forget()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def _keys_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
            keys_ref.forget()

    for register in services.extra_agents:
        register(app)
    return KeypulseApp(app=app, ingest=ingest, keys=keys)
