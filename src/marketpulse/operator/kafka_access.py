"""Who a direct-backend pipeline is on Kafka: its SCRAM user (password in its Secret) and ACLs.

With `kafka.authentication: scram-sha-512` the reconcile makes the Secret `<name>-kafka` once (a
random password; never rotated by a reconcile), sets the user's credential on the brokers and keeps
its ACLs exactly the pipeline's. The finalizer removes both, whatever the deletionPolicy: topics may
be kept as data, a login to them is not.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.workloads import KAFKA_PASSWORD_KEY, PipelineNames, bootstrap_servers
from marketpulse.operator.backends import kafka_principals
from marketpulse.operator.builders import BuildContext, Manifest, build_pipeline_kafka_secret
from marketpulse.operator.deletion_budget import CleanupFailedError
from marketpulse.operator.kube import KubeError, Ref
from marketpulse.operator.policy import endpoint_refusals
from marketpulse.operator.reasons import short_reason
from marketpulse.operator.runtime import Runtime
from marketpulse.operator.status import Check

Adopt = Callable[[list[Manifest]], None]
PASSWORD_BYTES = 32
# Broker answers that no retry changes: the operator's own login lacks the right.
_DENIED = frozenset(
    {
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    }
)


class SecretNotOwnedError(Exception):
    """A Secret of the pipeline's Kafka password's name exists and is not the pipeline's."""


def _password_of(secret: dict[str, Any], uid: str, name: str) -> str:
    owners = (secret.get("metadata") or {}).get("ownerReferences") or []
    encoded = (secret.get("data") or {}).get(KAFKA_PASSWORD_KEY)
    if not any(o.get("uid") == uid for o in owners) or not encoded:
        raise SecretNotOwnedError(
            f"Secret {name} exists and is not this pipeline's Kafka password (no ownerReference to the "
            f"pipeline, or no key {KAFKA_PASSWORD_KEY}); delete or rename it so that the operator can make it"
        )
    return base64.b64decode(encoded).decode()


async def kafka_password(runtime: Runtime, ctx: BuildContext, uid: str, adopt: Adopt) -> tuple[str, bool]:
    """The pipeline's SCRAM password from its Secret, made first when missing; True when just made."""
    ref = Ref("v1", "Secret", ctx.names.namespace, ctx.names.kafka_secret)
    found = await runtime.kube.get(ref)
    if found is None:
        secret = build_pipeline_kafka_secret(ctx, secrets.token_urlsafe(PASSWORD_BYTES))
        adopt([secret])
        if await runtime.kube.create(secret) is not None:
            return str(secret["stringData"][KAFKA_PASSWORD_KEY]), True
        # Another reconcile made it meanwhile: its password is the one.
        found = await runtime.kube.get(ref)
        if found is None:
            raise KubeError(0, "Conflict", f"Secret {ref.name} was created and deleted meanwhile")
    return _password_of(found, uid, ref.name), False


async def ensure_principal(
    runtime: Runtime, pipeline: StockPipeline, ctx: BuildContext, uid: str, adopt: Adopt
) -> Check:
    """The pipeline's SCRAM user and ACLs on its brokers; a Check named for the Topics concern."""
    names, bootstrap = ctx.names, bootstrap_servers(pipeline.spec)
    try:
        password, new = await kafka_password(runtime, ctx, uid, adopt)
    except SecretNotOwnedError as exc:
        return Check.failed("KafkaSecretNotOwned", str(exc))
    except KubeError as exc:
        return Check.failed("CredentialsUnavailable", f"Secret {names.kafka_secret}: {exc.message}")
    timeout = runtime.settings.kafka_timeout_seconds
    admin = runtime.admin(bootstrap)
    try:
        outcome = await runtime.blocking(
            lambda: kafka_principals.ensure_principal(
                admin, names, password, new_password=new, timeout=timeout
            )
        )
    except kafka_principals.PrincipalError as exc:
        # Refused, not unreachable: most likely the operator's own login is no super user.
        return Check.failed(
            "KafkaUserFailed",
            f"Kafka at {bootstrap}: {exc}; the operator's login (MARKETPULSE_KAFKA_SASL_USERNAME) must be "
            "a super user of brokers with an authorizer",
        )
    except Exception as exc:
        return Check.failed("KafkaUnavailable", f"Kafka at {bootstrap}: {short_reason(exc)}")
    return Check.ok(
        "KafkaUserReady",
        f"SCRAM user {outcome.user} may use only topics and consumer groups {names.topic_prefix}.*",
    )


def with_principal(topics: Check, principal: Check | None) -> Check:
    """One Topics condition for both: the topics' when they failed, else the principal's failure,
    else both messages."""
    if principal is None or topics.status != "True":
        return topics
    if principal.status != "True":
        return principal
    return Check.ok(topics.reason, f"{topics.message}; {principal.message}")


async def remove_principal(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames) -> list[str]:
    """Delete the direct backend's SCRAM user and ACLs of the pipeline (whatever its authentication
    is now: it may have had one before); what was removed, by name."""
    spec = pipeline.spec
    if spec.kafka.topic_backend != "direct" or endpoint_refusals(spec, runtime.settings.endpoint_policy()):
        # Never contact an endpoint the platform does not allow, not even to delete.
        return []
    bootstrap = bootstrap_servers(spec)
    admin = runtime.admin(bootstrap)
    timeout = runtime.settings.kafka_timeout_seconds
    try:
        return await runtime.blocking(lambda: kafka_principals.remove_principal(admin, names, timeout))
    except Exception as exc:
        if spec.kafka.authentication != "scram-sha-512":
            # Best effort: such a pipeline most likely never had a user, and its deletion must not
            # wait on a broker that is down or on rights (user and ACL admin) it never needed.
            return []
        raise _cleanup_failure(bootstrap, exc) from None


def _cleanup_failure(bootstrap: str, exc: Exception) -> CleanupFailedError:
    if isinstance(exc, kafka_principals.PrincipalError):
        denied = exc.code in _DENIED
        return CleanupFailedError(
            "KafkaAccessDenied" if denied else "KafkaUnavailable",
            f"Kafka at {bootstrap}: {exc}",
            permanent=denied,
            remedy="make the operator's Kafka login a super user, so that it can delete users and ACLs",
        )
    # The broker unreachable: it may come back.
    return CleanupFailedError(
        "KafkaUnavailable", f"Kafka at {bootstrap}: {short_reason(exc)}", permanent=False
    )
