"""How the local Kafka nodes are configured, without starting them: a lone broker stays a cluster of one,
and the nodes of a three-node cluster know every voter and replicate Kafka's own topics."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.kafka_cluster import KafkaCluster, PortTakenError


def properties(server: KafkaServer) -> dict[str, str]:
    lines = (line for line in server.server_properties().splitlines() if line and not line.startswith("#"))
    return dict(line.split("=", 1) for line in lines)


def test_a_lone_broker_is_its_own_single_voter_with_unreplicated_internal_topics(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path)
    found = properties(server)
    assert found["node.id"] == "1"
    assert found["controller.quorum.voters"] == f"1@127.0.0.1:{server.controller_port}"
    assert found["offsets.topic.replication.factor"] == "1"
    assert found["transaction.state.log.min.isr"] == "1"


def test_every_node_of_a_cluster_lists_all_three_voters_and_replicates_offsets_three_times(
    tmp_path: Path,
) -> None:
    cluster = KafkaCluster(tmp_path)
    found = [properties(node) for node in cluster.nodes]
    voters = {f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in cluster.nodes}
    assert [p["node.id"] for p in found] == ["1", "2", "3"]
    assert all(set(p["controller.quorum.voters"].split(",")) == voters for p in found)
    assert all(p["offsets.topic.replication.factor"] == "3" for p in found)
    assert all(p["transaction.state.log.min.isr"] == "2" for p in found)
    assert len({p["log.dirs"] for p in found}) == 3, "each node keeps its own data"
    ports = [port for n in cluster.nodes for port in (n.port, n.sasl_port, n.controller_port)]
    assert len(set(ports)) == len(ports)
    assert cluster.bootstrap_servers == ",".join(n.bootstrap_servers for n in cluster.nodes)


def test_a_proxied_listener_is_still_listened_on_and_advertised_at_the_proxy(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path, proxied=(20001, 20002))
    found = properties(server)
    assert found["listeners"].endswith(",PROXIED://127.0.0.1:20001")
    assert found["advertised.listeners"].endswith(",PROXIED://127.0.0.1:20002")


@pytest.mark.kafka
def test_a_cluster_whose_port_was_taken_before_its_node_bound_it_stops_and_says_so(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path)
    taken = cluster.nodes[2]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", taken.sasl_port))
        squatter.listen()
        with pytest.raises(PortTakenError, match="a port chosen for a node was taken"):
            cluster.start(timeout=90)
    # Every node stopped: the fixture starts a new cluster on other ports.
    assert all(node.process is None or not node.process.alive() for node in cluster.nodes)
