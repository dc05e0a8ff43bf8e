"""Topics created directly through the Kafka admin API (`topicBackend: direct`).

Partitions grow to the requested count and never shrink (Kafka cannot remove partitions). Unset
replicas are settled from the brokers the cluster lists (`for_brokers`); an existing topic keeps
the replication and config it has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from marketpulse.contract.topics import MIN_INSYNC, SAFE_REPLICAS, TopicPlan, for_brokers
from marketpulse.operator.metrics import BACKEND_WRITES

log = logging.getLogger(__name__)


@dataclass
class TopicsOutcome:
    created: list[str] = field(default_factory=list)
    grown: dict[str, int] = field(default_factory=dict)
    # Topics with more partitions than requested: kept, reported.
    larger: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    # Brokers the cluster listed, and per topic its replication factor (as created, or as found).
    brokers: int = 0
    replicas: dict[str, int] = field(default_factory=dict)
    # min.insync.replicas of the topics created now (an existing topic's is not read back).
    min_insync: dict[str, str] = field(default_factory=dict)

    def durability(self) -> str:
        """What the topics guarantee (as created now, or as found), for status and logs."""
        factors = sorted(set(self.replicas.values()))
        text = f"{self.brokers} broker{'s' if self.brokers != 1 else ''}, replication factor " + "/".join(
            map(str, factors)
        )
        if self.min_insync:
            text += f", min.insync.replicas {'/'.join(sorted(set(self.min_insync.values())))}"
        if factors and factors[0] < SAFE_REPLICAS:
            text += f" (below {SAFE_REPLICAS}: a broker's loss may lose acknowledged ticks)"
        return text


def admin_client(bootstrap_servers: str, login: Mapping[str, str] | None = None) -> AdminClient:
    """An admin client of `bootstrap_servers`; `login`: security.protocol and sasl.* settings."""
    return AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 5000, **(login or {})})


def _wait(futures: Mapping[str, Future[Any]], timeout: float, *, tolerate: str) -> None:
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() != tolerate:
                raise RuntimeError(f"topic {name}: {error.str()}") from None


def ensure_topics(admin: AdminClient, plans: Sequence[TopicPlan], timeout: float) -> TopicsOutcome:
    outcome = TopicsOutcome()
    metadata = admin.list_topics(timeout=timeout)
    existing = {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}
    outcome.brokers = len(metadata.brokers)
    for name in existing.keys() & {p.name for p in plans}:
        first = min(metadata.topics[name].partitions.values(), key=lambda part: part.id)
        outcome.replicas[name] = len(first.replicas)
    missing = [for_brokers(p, outcome.brokers) for p in plans if p.name not in existing]
    if missing:
        new = [
            NewTopic(
                p.name, num_partitions=p.partitions, replication_factor=p.replicas or -1, config=p.config
            )
            for p in missing
        ]
        # Another operator replica (or a restart mid-reconcile) may have created it meanwhile.
        _wait(admin.create_topics(new, request_timeout=timeout), timeout, tolerate="TOPIC_ALREADY_EXISTS")
        BACKEND_WRITES.labels("kafka", "create_topic").inc(len(missing))
        outcome.created = [p.name for p in missing]
        for p in missing:
            outcome.replicas[p.name] = p.replicas or -1
            if MIN_INSYNC in p.config:
                outcome.min_insync[p.name] = p.config[MIN_INSYNC]
        if any(p.replicas is not None and p.replicas < SAFE_REPLICAS for p in missing):
            log.warning("topics created with little replication: %s", outcome.durability())
    grow = [p for p in plans if p.name in existing and existing[p.name] < p.partitions]
    if grow:
        _wait(
            admin.create_partitions(
                [NewPartitions(p.name, p.partitions) for p in grow], request_timeout=timeout
            ),
            timeout,
            tolerate="INVALID_PARTITIONS",
        )
        BACKEND_WRITES.labels("kafka", "create_partitions").inc(len(grow))
        outcome.grown = {p.name: p.partitions for p in grow}
    for plan in plans:
        have = existing.get(plan.name, plan.partitions)
        outcome.partitions[plan.name] = max(have, plan.partitions)
        if have > plan.partitions:
            outcome.larger[plan.name] = have
    return outcome


def delete_topics(admin: AdminClient, names: Sequence[str], timeout: float) -> list[str]:
    metadata = admin.list_topics(timeout=timeout)
    present = [n for n in names if n in metadata.topics]
    if present:
        _wait(
            admin.delete_topics(present, request_timeout=timeout), timeout, tolerate="UNKNOWN_TOPIC_OR_PART"
        )
        BACKEND_WRITES.labels("kafka", "delete_topic").inc(len(present))
    return present
