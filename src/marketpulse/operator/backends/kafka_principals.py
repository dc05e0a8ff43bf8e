"""A pipeline's own Kafka principal with the direct backend: a SCRAM-SHA-512 user and the ACLs that
allow it exactly the pipeline's topics and consumer groups, made through the admin API.

The operator's admin login must be a super user of a broker whose authorizer denies what no ACL
allows (Kafka's default, `allow.everyone.if.no.acl.found=false`). ACLs are PREFIXED on
`<namespace>.<pipeline>.`: the trailing dot keeps pipeline `a` off the topics of pipeline `ab`.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# Re-exported by confluent_kafka.admin without __all__, so typed imports name the defining modules.
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from marketpulse.contract.workloads import PipelineNames
from marketpulse.operator.metrics import BACKEND_WRITES

# Above Kafka's minimum (4096): each login costs the broker this many HMACs, each guess an attacker as much.
SCRAM_ITERATIONS = 8192
ANY_HOST = "*"
# What the workloads do: ingest and alerts produce (idempotently: WRITE on a topic is enough since
# KIP-679), archive and alerts consume in groups `<namespace>.<pipeline>.<component>`. Topics are
# the operator's to create, so no CREATE.
TOPIC_OPERATIONS = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)
GROUP_OPERATIONS = (AclOperation.READ,)


def principal(user: str) -> str:
    return f"User:{user}"


def acl_bindings(names: PipelineNames) -> list[AclBinding]:
    """Every ACL of the pipeline's SCRAM user: its topics and its consumer groups, by prefix."""
    who = principal(names.kafka_scram_user)

    def allow(restype: ResourceType, prefix: str, operation: AclOperation) -> AclBinding:
        return AclBinding(
            restype, prefix, ResourcePatternType.PREFIXED, who, ANY_HOST, operation, AclPermissionType.ALLOW
        )

    topics = [allow(ResourceType.TOPIC, f"{names.topic_prefix}.", op) for op in TOPIC_OPERATIONS]
    groups = [allow(ResourceType.GROUP, names.consumer_group_prefix, op) for op in GROUP_OPERATIONS]
    return sorted(topics + groups)


def _of(user: str) -> AclBindingFilter:
    """Every ACL that names `user`, on any resource."""
    # None matches any name and host; the stubs type them as str, the filter takes None (its docs).
    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        principal(user),
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _exactly(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        binding.restype,
        binding.name,
        binding.resource_pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission_type,
    )


def _result(future: Future[Any], timeout: float, what: str) -> Any:
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        raise PrincipalError(f"{what}: {error.name()}", error.code()) from None


def _results(futures: Mapping[Any, Future[Any]], timeout: float, what: str) -> None:
    for future in futures.values():
        _result(future, timeout, what)


class PrincipalError(Exception):
    """The broker refused or failed a call about the pipeline's principal (the message has its code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class PrincipalOutcome:
    user: str
    credential_set: bool = False
    acls_created: int = 0
    acls_removed: int = 0
    acls: list[AclBinding] = field(default_factory=list)


def has_credential(admin: AdminClient, user: str, timeout: float) -> bool:
    futures = admin.describe_user_scram_credentials([user], request_timeout=timeout)
    assert isinstance(futures, dict)  # one future per user when users are named
    try:
        description = futures[user].result(timeout=timeout)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() == KafkaError.RESOURCE_NOT_FOUND:
            return False
        raise PrincipalError(f"describing SCRAM user {user}: {error.name()}", error.code()) from None
    return any(i.mechanism == ScramMechanism.SCRAM_SHA_512 for i in description.scram_credential_infos)


def ensure_principal(
    admin: AdminClient, names: PipelineNames, password: str, *, new_password: bool, timeout: float
) -> PrincipalOutcome:
    """The pipeline's SCRAM user with `password` and exactly its ACLs; writes only what differs.

    The password is set when it is `new_password` (its Secret was just made) or the broker has no
    credential for the user; otherwise the broker's stands (a salted hash: it cannot be compared)."""
    user = names.kafka_scram_user
    outcome = PrincipalOutcome(user, acls=acl_bindings(names))
    if new_password or not has_credential(admin, user, timeout):
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upsert = UserScramCredentialUpsertion(user, info, password.encode())
        _results(
            admin.alter_user_scram_credentials([upsert], request_timeout=timeout),
            timeout,
            f"setting the SCRAM credential of {user}",
        )
        BACKEND_WRITES.labels("kafka", "set_scram_credential").inc()
        outcome.credential_set = True
    found = set(_result(admin.describe_acls(_of(user), request_timeout=timeout), timeout, f"ACLs of {user}"))
    wanted = set(outcome.acls)
    missing = sorted(wanted - found)
    extra = sorted(found - wanted)
    if missing:
        _results(admin.create_acls(missing, request_timeout=timeout), timeout, f"creating ACLs of {user}")
        BACKEND_WRITES.labels("kafka", "create_acls").inc()
    if extra:
        # Grants beyond the pipeline's own (added by hand, or left by an older operator) go.
        _results(
            admin.delete_acls([_exactly(b) for b in extra], request_timeout=timeout),
            timeout,
            f"removing extra ACLs of {user}",
        )
        BACKEND_WRITES.labels("kafka", "delete_acls").inc()
    outcome.acls_created, outcome.acls_removed = len(missing), len(extra)
    return outcome


def remove_principal(admin: AdminClient, names: PipelineNames, timeout: float) -> list[str]:
    """Delete the pipeline's ACLs and SCRAM credential; what was removed (nothing when neither existed)."""
    user = names.kafka_scram_user
    removed: list[str] = []
    try:
        deleted = admin.delete_acls([_of(user)], request_timeout=timeout)
        gone = sum(len(_result(f, timeout, f"removing ACLs of {user}")) for f in deleted.values())
    except PrincipalError as exc:
        # A broker without an authorizer holds no ACLs: the pipeline never had any there.
        if exc.code != KafkaError.SECURITY_DISABLED:
            raise
        gone = 0
    if gone:
        BACKEND_WRITES.labels("kafka", "delete_acls").inc()
        removed.append(f"{gone} ACLs of Kafka user {user}")
    if has_credential(admin, user, timeout):
        deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
        _results(
            admin.alter_user_scram_credentials([deletion], request_timeout=timeout),
            timeout,
            f"deleting the SCRAM credential of {user}",
        )
        BACKEND_WRITES.labels("kafka", "delete_scram_credential").inc()
        removed.append(f"Kafka user {user}")
    return removed
