"""`keypulse topics ensure`: create the registry's topics idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from infra.kafka.probe import broker_ready, quiet_kafka_logs
from schemas.topics import ALL_TOPICS, TopicSpec


class KafkaUnreachable(Exception):
    """No broker answered at the configured bootstrap servers."""


@dataclass(frozen=True)
class EnsureResult:
    created: list[str]
    existing: list[str]


def _topic_configs(spec: TopicSpec) -> dict[str, str]:
    configs = {"retention.ms": str(spec.retention_ms), "max.message.bytes": str(16 * 1024 * 1024)}
    if spec.retention_ms == -1:
        configs["retention.bytes"] = "-1"
    if spec.compacted:
        configs["cleanup.policy"] = "compact" if spec.retention_ms == -1 else "compact,delete"
    return configs


def ensure_topics(
    bootstrap_servers: str,
    prefix: str = "",
    specs: tuple[TopicSpec, ...] = ALL_TOPICS,
    timeout_ms: int = 10_000,
) -> EnsureResult:
    """Create every missing topic of `specs` (with `prefix`); existing ones are left alone."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    if not broker_ready(bootstrap_servers):
        raise KafkaUnreachable(f"no Kafka broker reachable at {bootstrap_servers}")
    with quiet_kafka_logs():
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                request_timeout_ms=timeout_ms,
                client_id="keypulse-admin",
            )
        except (KafkaError, OSError) as exc:
            raise KafkaUnreachable(f"no Kafka broker reachable at {bootstrap_servers}") from exc
    try:
        existing = set(admin.list_topics())
        wanted = {spec.name(prefix): spec for spec in specs}
        missing = [
            NewTopic(name, spec.partitions, 1, topic_configs=_topic_configs(spec))
            for name, spec in wanted.items()
            if name not in existing
        ]
        created: list[str] = []
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=timeout_ms)
                created = [t.name for t in missing]
            except TopicAlreadyExistsError:
                created = []
            except KafkaError as exc:
                raise KafkaUnreachable(f"creating topics failed: {exc}") from exc
        return EnsureResult(
            created=sorted(created), existing=sorted(n for n in wanted if n in existing)
        )
    finally:
        admin.close()
