"""Three KRaft nodes, each broker and controller, with a three-voter quorum: the smallest cluster in
which a topic of replication factor 3 and `min.insync.replicas` 2 survives the loss of any one node.

Each node is a `KafkaServer` with its own ports and data under `workdir/node-<id>`; all are formatted
with one cluster id and share the admin's SCRAM password, so any node serves any client.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.process import free_port, wait_for


@dataclass(frozen=True)
class PartitionState:
    leader: int  # -1 while no replica leads
    isr: frozenset[int]
    replicas: frozenset[int]


# What a node's log says when another process took one of its ports between choice and bind.
BIND_FAILED = "Address already in use"


class PortTakenError(ComponentError):
    """A cluster that could not start because a chosen port was taken: start a new one on other ports."""


@dataclass
class KafkaCluster:
    workdir: Path
    size: int = 3
    # Three JVMs on a CI runner of two cores: small heaps, as the brokers hold little data.
    heap: str = "384m"
    nodes: list[KafkaServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.nodes:
            return
        controller_ports = [free_port() for _ in range(self.size)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(controller_ports))
        self.nodes = [
            KafkaServer(
                self.workdir / f"node-{i + 1}",
                controller_port=port,
                heap=self.heap,
                node_id=i + 1,
                quorum_voters=voters,
                internal_replicas=min(3, self.size),
            )
            for i, port in enumerate(controller_ports)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> KafkaServer:
        (found,) = (n for n in self.nodes if n.node_id == node_id)
        return found

    def start(self, timeout: float = 120) -> KafkaCluster:
        first = self.nodes[0]
        cluster_id = first.cluster_id or first.random_cluster_id()
        password = first.admin_password
        for node in self.nodes:
            node.cluster_id = cluster_id
            node.workdir.mkdir(parents=True, exist_ok=True)
            if node is not first and not (node.workdir / "admin-password").exists():
                shutil.copy(first.workdir / "admin-password", node.workdir / "admin-password")
            assert node.admin_password == password
        # All at once: no node answers until a majority of voters has elected a controller.
        for node in self.nodes:
            node.launch()
        try:
            wait_for(
                lambda: self.registered() == {n.node_id for n in self.nodes},
                timeout=timeout,
                step="start a Kafka cluster",
                what=f"all {self.size} brokers to register",
                log_path=first.log_path,
                alive=lambda: all(n.process is not None and n.process.alive() for n in self.nodes),
                interval=0.5,
            )
        except ComponentError as exc:
            self.stop()
            if any(
                BIND_FAILED in node.log_path.read_text(errors="replace")
                for node in self.nodes
                if node.log_path.exists()
            ):
                raise PortTakenError(
                    exc.step, "a port chosen for a node was taken before it bound it", self.log_tail()
                ) from exc
            raise
        return self

    def restart(self, node: KafkaServer, timeout: float = 90) -> None:
        """Start `node` again on its data; back once the cluster lists it among its brokers."""
        node.launch()
        wait_for(
            lambda: node.node_id in self.registered(node),
            timeout=timeout,
            step=f"restart Kafka node {node.node_id}",
            what="the node to rejoin the cluster",
            log_path=node.log_path,
            alive=lambda: node.process is not None and node.process.alive(),
            interval=0.5,
        )

    def registered(self, via: KafkaServer | None = None) -> set[int]:
        """Ids of the brokers the cluster's metadata lists (asked of `via`, else of any node)."""
        from confluent_kafka.admin import AdminClient

        bootstrap = via.bootstrap_servers if via is not None else self.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
        return set(admin.list_topics(timeout=3).brokers)

    def partitions(self, topic: str) -> dict[int, PartitionState]:
        """Leader and in-sync replicas of each partition of `topic`, as the cluster's metadata says."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000, "log_level": 0}
        )
        found = admin.list_topics(topic, timeout=5).topics[topic]
        return {
            p.id: PartitionState(p.leader, frozenset(p.isrs), frozenset(p.replicas))
            for p in found.partitions.values()
        }

    def stop(self) -> None:
        # All at once: one by one, the last nodes wait out a controlled shutdown without a quorum.
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(KafkaServer.stop, self.nodes))

    def log_tail(self) -> str:
        """The last lines of every node's log, for a failed test's report."""
        return "\n".join(f"--- node {n.node_id}\n{n.log_tail()}" for n in self.nodes)
