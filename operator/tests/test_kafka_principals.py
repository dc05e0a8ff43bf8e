"""A direct-backend pipeline's SCRAM user gets exactly its own topics and groups, on a real broker with
SASL/SCRAM and the StandardAuthorizer; its ACL set and the operator's admin login are pure data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from pydantic import ValidationError

from marketpulse.contract.topics import TopicPlan
from marketpulse.contract.workloads import PipelineNames
from marketpulse.operator.backends import kafka_principals, topics
from marketpulse.operator.settings import OperatorSettings
from marketpulse_dev.localenv.kafka import KafkaServer

TIMEOUT = 10.0


def test_the_acls_allow_the_pipelines_topic_prefix_and_group_prefix_and_nothing_else() -> None:
    bindings = kafka_principals.acl_bindings(PipelineNames("team-a", "demo"))

    found = {(b.restype, b.name, b.operation) for b in bindings}
    assert found == {
        (ResourceType.TOPIC, "team-a.demo.", AclOperation.READ),
        (ResourceType.TOPIC, "team-a.demo.", AclOperation.WRITE),
        (ResourceType.TOPIC, "team-a.demo.", AclOperation.DESCRIBE),
        (ResourceType.GROUP, "team-a.demo.", AclOperation.READ),
    }
    assert {b.principal for b in bindings} == {"User:team-a.demo"}
    assert {b.resource_pattern_type for b in bindings} == {ResourcePatternType.PREFIXED}
    assert {b.permission_type for b in bindings} == {AclPermissionType.ALLOW}
    assert {b.host for b in bindings} == {"*"}


def test_the_prefix_ends_with_a_dot_so_pipeline_a_never_matches_pipeline_ab() -> None:
    a = kafka_principals.acl_bindings(PipelineNames("ns", "a"))
    assert all(b.name == "ns.a." for b in a)
    assert not PipelineNames("ns", "ab").ticks_topic.startswith(a[0].name)


def test_two_namespaces_pipelines_of_one_name_are_two_principals() -> None:
    a, b = PipelineNames("team-a", "demo"), PipelineNames("team-b", "demo")
    assert a.kafka_scram_user != b.kafka_scram_user


def test_the_admin_login_is_plaintext_by_default_and_sasl_when_configured() -> None:
    assert OperatorSettings().kafka_admin_config() == {"security.protocol": "PLAINTEXT"}
    sasl = OperatorSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="admin",
        kafka_sasl_password="s3cret",
    )
    assert sasl.kafka_admin_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(sasl)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "kafka_sasl_mechanism"),
        ({"kafka_sasl_mechanism": "SCRAM-SHA-512"}, "kafka_sasl_mechanism"),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "SCRAM-SHA-512",
                "kafka_sasl_password": "s3cret",
            },
            "kafka_sasl_username",
        ),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "SCRAM-SHA-512",
                "kafka_sasl_username": "admin",
            },
            "kafka_sasl_password",
        ),
    ],
)
def test_an_incomplete_admin_login_is_refused_naming_the_field_and_never_showing_the_password(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        OperatorSettings(**values)  # type: ignore[arg-type]
    assert [e["loc"] for e in caught.value.errors()] == [(named,)]
    assert "s3cret" not in str(caught.value)


# --- on the broker -------------------------------------------------------------------------------


@pytest.fixture
def admin(kafka_server: KafkaServer) -> AdminClient:
    return topics.admin_client(kafka_server.sasl_bootstrap_servers, _login(kafka_server))


def _login(kafka_server: KafkaServer) -> dict[str, str]:
    config = kafka_server.sasl_config()
    return {k: v for k, v in config.items() if k != "bootstrap.servers"}


@pytest.fixture
def names(admin: AdminClient) -> Iterator[PipelineNames]:
    found = PipelineNames(f"ns-{uuid.uuid4().hex[:8]}", "demo")
    yield found
    kafka_principals.remove_principal(admin, found, TIMEOUT)


def _acls(admin: AdminClient, names: PipelineNames) -> set[object]:
    future = admin.describe_acls(kafka_principals._of(names.kafka_scram_user), request_timeout=TIMEOUT)
    return set(future.result(timeout=TIMEOUT))


@pytest.mark.kafka
def test_ensuring_twice_writes_once_and_removing_leaves_no_credential_and_no_acl(
    admin: AdminClient, names: PipelineNames
) -> None:
    first = kafka_principals.ensure_principal(admin, names, "pw-1", new_password=True, timeout=TIMEOUT)
    second = kafka_principals.ensure_principal(admin, names, "pw-1", new_password=False, timeout=TIMEOUT)
    acls = _acls(admin, names)
    removed = kafka_principals.remove_principal(admin, names, TIMEOUT)

    assert (first.credential_set, first.acls_created) == (True, 4)
    assert (second.credential_set, second.acls_created, second.acls_removed) == (False, 0, 0)
    assert acls == set(kafka_principals.acl_bindings(names))
    user = names.kafka_scram_user
    assert removed == [f"4 ACLs of Kafka user {user}", f"Kafka user {user}"]
    assert not kafka_principals.has_credential(admin, names.kafka_scram_user, TIMEOUT)
    assert not _acls(admin, names)
    assert kafka_principals.remove_principal(admin, names, TIMEOUT) == []


@pytest.mark.kafka
def test_a_grant_beyond_the_pipelines_own_is_removed_by_the_next_ensure(
    admin: AdminClient, names: PipelineNames
) -> None:
    kafka_principals.ensure_principal(admin, names, "pw", new_password=True, timeout=TIMEOUT)
    extra = kafka_principals.acl_bindings(PipelineNames("other", "victim"))[0]
    extra.principal = kafka_principals.principal(names.kafka_scram_user)
    admin.create_acls([extra], request_timeout=TIMEOUT)[extra].result(timeout=TIMEOUT)

    outcome = kafka_principals.ensure_principal(admin, names, "pw", new_password=False, timeout=TIMEOUT)

    assert outcome.acls_removed == 1
    assert _acls(admin, names) == set(kafka_principals.acl_bindings(names))


@pytest.mark.kafka
def test_the_user_round_trips_its_own_topic_and_is_refused_another_pipelines(
    kafka_server: KafkaServer, admin: AdminClient, names: PipelineNames
) -> None:
    other = PipelineNames(names.namespace, "other")
    plans = [
        TopicPlan(names.ticks_topic, 1, None, {}),
        TopicPlan(other.ticks_topic, 1, None, {}),
    ]
    topics.ensure_topics(admin, plans, TIMEOUT)
    kafka_principals.ensure_principal(admin, names, "pw", new_password=True, timeout=TIMEOUT)
    login = kafka_server.sasl_config(names.kafka_scram_user, "pw")

    def produce(topic: str, count: int) -> list[KafkaError | None]:
        errors: list[KafkaError | None] = []
        producer = Producer({**login, "enable.idempotence": True, "message.timeout.ms": 10000})
        for i in range(count):
            producer.produce(topic, str(i).encode(), on_delivery=lambda err, _msg: errors.append(err))
        producer.flush(15)
        return errors

    own = produce(names.ticks_topic, 50)
    foreign = produce(other.ticks_topic, 1)
    consumer = Consumer(
        {**login, "group.id": f"{names.topic_prefix}.archive", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([names.ticks_topic])
        values = []
        while len(values) < 50:
            message = consumer.poll(10)
            assert message is not None, f"only {len(values)} of 50 came back"
            assert message.error() is None, message.error()
            values.append(int(message.value() or b""))
    finally:
        consumer.close()

    assert own == [None] * 50
    assert sorted(values) == list(range(50))
    assert [e.code() for e in foreign if e is not None] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # A group outside the prefix is refused even for the pipeline's own topic.
    assert _first_error(login, names.ticks_topic, "someone-else") == KafkaError.GROUP_AUTHORIZATION_FAILED


def _first_error(login: dict[str, str], topic: str, group: str) -> int | None:
    consumer = Consumer({**login, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        for _ in range(20):
            message = consumer.poll(1)
            if message is not None and message.error() is not None:
                return int(message.error().code())
    finally:
        consumer.close()
    return None
