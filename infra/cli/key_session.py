"""The key commands' connection to Kafka: a key service (writes) or a key follower
(reads), both reading the key-events topic from its beginning before they answer.

`waiting_for` runs a blocking step in a thread and shows a spinner on stderr once it has
taken longer than a second (reading a long key-events topic, a slow broker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

from rich.console import Console

from infra.cli.console import err
from infra.kafka.admin import ensure_registry_topics
from infra.settings import Settings
from schemas.topics import TopicNames
from streams.client.key_follower import FollowerConfig, KeyFollower
from streams.keyservice.commands import Command
from streams.keyservice.service import KeyService, Outcome, start_key_service

T = TypeVar("T")

ACTOR = "cli"
CLIENT_ID = "keypulse-cli"
READY_TIMEOUT_S = 60.0
PROGRESS_AFTER_S = 1.0


def waiting_for(
    what: str,
    step: Callable[[], T],
    console: Console = err,
    after_s: float = PROGRESS_AFTER_S,
) -> T:
    """`step()`'s result (or exception); a spinner saying `what` while it takes > `after_s`."""
    outcome: list[tuple[bool, object]] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, step()))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="keypulse-cli-step", daemon=True).start()
    if not done.wait(after_s):
        began = time.monotonic() - after_s
        with console.status(f"{what}…") as status:
            while not done.wait(0.2):
                status.update(f"{what}… {time.monotonic() - began:.0f} s")
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return cast(T, value)


def _key_events_topic(settings: Settings) -> str:
    """The key-events topic (the registry's topics are created if missing, as the worker
    does; `KafkaUnreachable` when no broker answers)."""
    ensure_registry_topics(settings.kafka)
    return TopicNames.with_prefix(settings.kafka.topic_prefix).key_events


@contextmanager
def key_service(settings: Settings) -> Iterator[KeyService]:
    """A key service straight against Kafka, caught up with the key-events topic."""
    topic = _key_events_topic(settings)
    service = waiting_for(
        f"reading {topic} from Kafka",
        lambda: start_key_service(
            settings.kafka.bootstrap_servers,
            topic,
            ready_timeout_s=READY_TIMEOUT_S,
            client_id=CLIENT_ID,
            state_topic=TopicNames.with_prefix(settings.kafka.topic_prefix).key_state,
        ),
    )
    try:
        yield service
    finally:
        service.close()


def execute(service: KeyService, command: Command) -> Outcome:
    """Run one command as the CLI (`CommandRefused` or `Unavailable` when it fails)."""
    return waiting_for(
        "waiting for Kafka to confirm", lambda: service.execute(command, actor=ACTOR)
    )


@contextmanager
def key_follower(settings: Settings) -> Iterator[KeyFollower]:
    """A key follower (reads only), caught up with the key-events topic."""
    topic = _key_events_topic(settings)
    follower = KeyFollower(FollowerConfig(settings.kafka.bootstrap_servers, topic, CLIENT_ID))
    follower.start()
    try:
        waiting_for(f"reading {topic} from Kafka", lambda: follower.wait_ready(READY_TIMEOUT_S))
        yield follower
    finally:
        follower.close()
