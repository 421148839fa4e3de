"""The local cluster's layout and properties, and the topic configs, as pure values."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.kafka.admin import _topic_configs
from infra.kafka.broker import (
    BrokerError,
    LocalKafkaCluster,
    cluster_env,
    cluster_nodes,
    node_properties,
)
from infra.settings import KafkaSettings
from schemas.topics import KEY_EVENTS, KEY_STATE


def test_three_nodes_take_every_other_port_from_bootstrap_and_controller() -> None:
    nodes = cluster_nodes(KafkaSettings(), 3)
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 9092, 9093),
        (2, 9094, 9095),
        (3, 9096, 9097),
    ]


def test_overlapping_ports_are_refused_with_the_setting_to_change() -> None:
    with pytest.raises(BrokerError, match="KEYPULSE_KAFKA_CONTROLLER_PORT"):
        cluster_nodes(KafkaSettings(bootstrap_servers="127.0.0.1:9092", controller_port=9094), 3)


def test_cluster_nodes_form_one_static_quorum_with_replicated_internal_topics(
    tmp_path: Path,
) -> None:
    nodes = cluster_nodes(KafkaSettings(), 3)
    props = node_properties(nodes[1], nodes, tmp_path)
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    )
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    for name in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
        assert props[f"{name}.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["min.insync.replicas"] == "2"
    assert props["unclean.leader.election.enable"] == "false"


def test_a_single_node_keeps_its_standalone_quorum(tmp_path: Path) -> None:
    (node,) = cluster_nodes(KafkaSettings(), 1)
    props = node_properties(node, (node,), tmp_path)
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert "broker.session.timeout.ms" not in props


def test_a_cluster_lives_in_node_directories_and_names_its_settings(tmp_path: Path) -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:29792", controller_port=29793)
    cluster = LocalKafkaCluster(settings, tmp_path, 3)
    assert [m.properties.parent.name for m in cluster.members] == ["node-1", "node-2", "node-3"]
    assert cluster_env(cluster) == {
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:29792,127.0.0.1:29794,127.0.0.1:29796",
        "KEYPULSE_KAFKA_REPLICATION_FACTOR": "3",
        "KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    assert LocalKafkaCluster.recorded(settings, tmp_path) is None
    (tmp_path / "cluster.properties").write_text("brokers=3\ncluster.id=abc\n")
    recorded = LocalKafkaCluster.recorded(settings, tmp_path)
    assert recorded is not None and recorded.brokers == 3


def test_topics_carry_their_min_insync_replicas() -> None:
    assert _topic_configs(KEY_EVENTS, 2) == {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "max.message.bytes": str(16 * 1024 * 1024),
        "min.insync.replicas": "2",
    }
    assert _topic_configs(KEY_STATE, 1)["cleanup.policy"] == "compact"
