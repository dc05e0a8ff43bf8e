"""Topics created directly through the Kafka admin API (`topicBackend: direct`).

Partitions grow to the requested count and never shrink (Kafka cannot remove partitions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from marketpulse.contract.topics import TopicPlan
from marketpulse.operator.metrics import BACKEND_WRITES


@dataclass
class TopicsOutcome:
    created: list[str] = field(default_factory=list)
    grown: dict[str, int] = field(default_factory=dict)
    # Topics with more partitions than requested: kept, reported.
    larger: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)


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
    missing = [p for p in plans if p.name not in existing]
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
