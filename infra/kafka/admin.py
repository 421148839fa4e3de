"""`keypulse topics ensure`: create the registry's topics idempotently; read back where
their replicas are (leader, replicas, in-sync replicas) per partition."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from infra.kafka.probe import broker_ready, quiet_kafka_logs
from infra.settings import KafkaSettings
from schemas.topics import ALL_TOPICS, TopicSpec


class KafkaUnreachable(Exception):
    """No broker answered at the configured bootstrap servers."""


@dataclass(frozen=True)
class EnsureResult:
    created: list[str]
    existing: list[str]


@dataclass(frozen=True)
class PartitionReplicas:
    topic: str
    partition: int
    leader: int  # -1: no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def _topic_configs(spec: TopicSpec, min_insync_replicas: int) -> dict[str, str]:
    configs = {
        "retention.ms": str(spec.retention_ms),
        "max.message.bytes": str(16 * 1024 * 1024),
        "min.insync.replicas": str(min_insync_replicas),
    }
    if spec.retention_ms == -1:
        configs["retention.bytes"] = "-1"
    if spec.compacted:
        configs["cleanup.policy"] = "compact" if spec.retention_ms == -1 else "compact,delete"
    return configs


def _admin(bootstrap_servers: str, timeout_ms: int) -> Any:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    if not broker_ready(bootstrap_servers):
        raise KafkaUnreachable(f"no Kafka broker reachable at {bootstrap_servers}")
    with quiet_kafka_logs():
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                request_timeout_ms=timeout_ms,
                client_id="keypulse-admin",
            )
        except (KafkaError, OSError) as exc:
            raise KafkaUnreachable(f"no Kafka broker reachable at {bootstrap_servers}") from exc


def ensure_topics(
    bootstrap_servers: str,
    prefix: str = "",
    specs: tuple[TopicSpec, ...] = ALL_TOPICS,
    timeout_ms: int = 10_000,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> EnsureResult:
    """Create every missing topic of `specs` (with `prefix`), each with
    `replication_factor` replicas and `min.insync.replicas`; existing ones are left alone."""
    from kafka.errors import InvalidReplicationFactorError, KafkaError, TopicAlreadyExistsError

    if min_insync_replicas > replication_factor:
        raise ValueError(
            f"min.insync.replicas {min_insync_replicas} exceeds the replication factor "
            f"{replication_factor}: no write could succeed; lower "
            "KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS or raise KEYPULSE_KAFKA_REPLICATION_FACTOR"
        )
    admin = _admin(bootstrap_servers, timeout_ms)
    try:
        existing = set(admin.list_topics())
        wanted = {spec.name(prefix): spec for spec in specs}
        missing = {
            name: {
                "num_partitions": spec.partitions,
                "replication_factor": replication_factor,
                "configs": _topic_configs(spec, min_insync_replicas),
            }
            for name, spec in wanted.items()
            if name not in existing
        }
        created: list[str] = []
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=timeout_ms)
                created = list(missing)
            except TopicAlreadyExistsError:
                created = []
            except InvalidReplicationFactorError as exc:
                brokers = len(admin.describe_cluster().get("brokers", []))
                raise KafkaUnreachable(
                    f"replication factor {replication_factor} needs {replication_factor} "
                    f"brokers; {bootstrap_servers} has {brokers}: start more brokers "
                    "(`keypulse kafka start --brokers 3`) or lower "
                    "KEYPULSE_KAFKA_REPLICATION_FACTOR"
                ) from exc
            except KafkaError as exc:
                raise KafkaUnreachable(f"creating topics failed: {exc}") from exc
        return EnsureResult(
            created=sorted(created), existing=sorted(n for n in wanted if n in existing)
        )
    finally:
        admin.close()


def ensure_registry_topics(kafka: KafkaSettings) -> EnsureResult:
    """`ensure_topics` for a deployment: its prefix, replication factor and min ISR."""
    return ensure_topics(
        kafka.bootstrap_servers,
        kafka.topic_prefix,
        replication_factor=kafka.replication_factor,
        min_insync_replicas=kafka.min_insync_replicas,
    )


def describe_replicas(
    bootstrap_servers: str, topics: Iterable[str], timeout_ms: int = 10_000
) -> list[PartitionReplicas]:
    """Leader, replicas and in-sync replicas of every partition of `topics`."""
    admin = _admin(bootstrap_servers, timeout_ms)
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    return sorted(
        (
            PartitionReplicas(
                topic=t["name"],
                partition=int(p["partition_index"]),
                leader=int(p["leader_id"]),
                replicas=tuple(int(r) for r in p["replica_nodes"]),
                isr=tuple(int(r) for r in p["isr_nodes"]),
            )
            for t in described
            for p in t["partitions"]
        ),
        key=lambda r: (r.topic, r.partition),
    )
