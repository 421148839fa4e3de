"""A three-node local cluster for fault tests: which node is the active controller, and
waits on partition leadership and in-sync replicas (read back with the admin client)."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path

from infra.kafka.admin import PartitionReplicas, describe_replicas
from infra.kafka.broker import LocalKafkaCluster
from infra.settings import KafkaSettings
from tests.eventually import eventually_sync

_LEADER_LINE = re.compile(
    r"\[RaftManager id=(\d+)\] Completed transition to Leader\(.*?epoch=(\d+)"
)


def free_base_port(count: int) -> int:
    """A port p with p .. p + count - 1 all free now (the cluster takes p, p+1, ... p+5)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def three_node_cluster(root: Path, heap: str = "384m") -> LocalKafkaCluster:
    """Three combined nodes on free ports: brokers p, p+2, p+4, controllers p+1, p+3, p+5."""
    base = free_base_port(6)
    settings = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{base}",
        controller_port=base + 1,
        broker_heap=heap,
        start_timeout_s=90,
    )
    return LocalKafkaCluster(settings, root, 3)


def active_controller(cluster: LocalKafkaCluster) -> int:
    """The node id of the quorum leader: the newest epoch any node's log says it leads."""
    best = (-1, -1)
    for member in cluster.members:
        text = member.log_file.read_text(errors="replace")
        for node, epoch in _LEADER_LINE.findall(text):
            best = max(best, (int(epoch), int(node)))
    assert best[1] > 0, "no node logged a quorum leadership"
    return best[1]


def lose_topic_data(cluster: LocalKafkaCluster, node_id: int, prefix: str) -> int:
    """Delete a stopped node's partitions of the topics named `prefix`* (its disk lost
    them: whatever only it held is gone); the number of partition directories removed."""
    member = cluster.member(node_id)
    assert member.status().pid is None, "stop or kill the node first"
    dirs = [d for d in member.data_dir.iterdir() if d.is_dir() and d.name.startswith(prefix)]
    for d in dirs:
        shutil.rmtree(d)
    return len(dirs)


def replicas(bootstrap: str, topics: Iterable[str]) -> list[PartitionReplicas]:
    return describe_replicas(bootstrap, list(topics))


def wait_isr(bootstrap: str, topics: list[str], size: int, timeout_s: float) -> None:
    """Wait until every partition of `topics` has exactly `size` in-sync replicas and a
    leader."""

    def settled() -> bool:
        parts = replicas(bootstrap, topics)
        off = [(p.topic, p.partition, p.isr) for p in parts if len(p.isr) != size or p.leader < 0]
        assert parts and not off, f"partitions not at ISR {size}: {off[:5]}"
        return True

    eventually_sync(settled, timeout_s, f"every partition at ISR size {size}", interval_s=0.5)
