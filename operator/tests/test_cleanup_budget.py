"""When a deletionPolicy cleanup that keeps failing is given up on, and how failures are told apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import KafkaError, KafkaException

from marketpulse.operator.deletion import deleting_for, kafka_failure
from marketpulse.operator.deletion_budget import CleanupBudget, CleanupFailedError
from marketpulse.operator.kube import KubeError
from marketpulse.operator.pipeline_handlers import as_failure
from marketpulse.operator.settings import OperatorSettings

BUDGET = CleanupBudget(attempts=5, permanent_attempts=2, retry_seconds=1, stop_timeout_seconds=60)
DOWN = CleanupFailedError("StorageUnavailable", "connection refused", permanent=False)
DENIED = CleanupFailedError("AccessDenied", "denied", permanent=True, remedy="grant it")


@pytest.mark.parametrize(
    ("failure", "failures", "terminating", "exhausted"),
    [
        (DOWN, 1, False, False),
        (DOWN, 4, False, False),
        (DOWN, 5, False, True),
        # A server that is down may come back while the namespace goes: it still gets its tries.
        (DOWN, 1, True, False),
        (DENIED, 1, False, False),
        (DENIED, 2, False, True),
        # Nobody can restore a Secret in a namespace being deleted: no reason to wait.
        (DENIED, 1, True, True),
    ],
)
def test_a_cleanup_is_given_up_after_its_tries_and_at_once_when_it_cannot_succeed_in_a_dying_namespace(
    failure: CleanupFailedError, failures: int, terminating: bool, exhausted: bool
) -> None:
    assert BUDGET.exhausted(failure, failures, terminating) is exhausted


def test_the_settings_never_allow_more_permanent_tries_than_tries() -> None:
    settings = OperatorSettings(cleanup_attempts=2, cleanup_permanent_attempts=9)
    assert settings.cleanup_budget().permanent_attempts == 2


def test_kafka_authorization_failures_are_permanent_and_a_broker_down_is_not() -> None:
    denied = kafka_failure("b:9092", KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    down = kafka_failure("b:9092", KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert (denied.reason, denied.permanent) == ("KafkaAccessDenied", True)
    assert (down.reason, down.permanent) == ("KafkaUnavailable", False)
    assert "b:9092" in denied.message


def test_api_errors_are_permanent_only_when_the_operator_lacks_the_right() -> None:
    forbidden = as_failure(KubeError(403, "Forbidden", "cannot delete"))
    unreachable = as_failure(KubeError(0, "Unreachable", "refused"))
    assert forbidden.permanent
    assert not unreachable.permanent
    assert "ServiceAccount" in forbidden.remedy


def test_an_unexpected_error_is_retried_and_named_by_its_type_only() -> None:
    failure = as_failure(ZeroDivisionError("secret detail"))
    assert (failure.reason, failure.message, failure.permanent) == (
        "CleanupError",
        "ZeroDivisionError",
        False,
    )


def test_how_long_a_pipeline_has_been_deleting_is_read_from_its_deletion_timestamp() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stamp = (now - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert deleting_for({"metadata": {"deletionTimestamp": stamp}}, now) == 90
    assert deleting_for({"metadata": {}}, now) == 0
