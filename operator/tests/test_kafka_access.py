"""The direct backend's Kafka password Secret is used only when it is the pipeline's, and the
principal's outcome joins the Topics condition without hiding a failure of either."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from marketpulse.contract.api import validate_stockpipeline
from marketpulse.contract.workloads import names_for
from marketpulse.operator.builders import Capabilities
from marketpulse.operator.deletion_budget import CleanupFailedError
from marketpulse.operator.kafka_access import (
    SecretNotOwnedError,
    _password_of,
    remove_principal,
    with_principal,
)
from marketpulse.operator.runtime import Runtime
from marketpulse.operator.settings import OperatorSettings
from marketpulse.operator.status import Check
from marketpulse_dev.localenv.process import free_port

UID = "0b5e-uid"


def secret(owner: str | None = UID, data: dict[str, str] | None = None) -> dict[str, Any]:
    owners = [] if owner is None else [{"kind": "StockPipeline", "uid": owner}]
    encoded = {"password": base64.b64encode(b"pw").decode()} if data is None else data
    return {"metadata": {"name": "fx-kafka", "ownerReferences": owners}, "data": encoded}


def test_the_pipelines_own_secret_gives_its_password() -> None:
    assert _password_of(secret(), UID, "fx-kafka") == "pw"


@pytest.mark.parametrize(
    "found",
    [secret(owner=None), secret(owner="another-pipeline"), secret(data={})],
    ids=["unowned", "another pipeline's", "no password key"],
)
def test_a_secret_that_is_not_the_pipelines_password_is_refused_naming_it(found: dict[str, Any]) -> None:
    with pytest.raises(SecretNotOwnedError, match="Secret fx-kafka exists and is not this pipeline's"):
        _password_of(found, UID, "fx-kafka")


def test_the_topics_condition_reports_a_failure_of_either_and_both_messages_when_ready() -> None:
    topics, user = Check.ok("TopicsReady", "3 topics"), Check.ok("KafkaUserReady", "user ns.fx")
    down = Check.failed("KafkaUnavailable", "broker down")
    refused = Check.failed("KafkaUserFailed", "not a super user")

    assert with_principal(topics, None) == topics
    assert with_principal(down, user) == down
    assert with_principal(topics, refused) == refused
    assert with_principal(topics, user) == Check.ok("TopicsReady", "3 topics; user ns.fx")


def _remove_with_the_broker_down(authentication: str) -> list[str]:
    settings = OperatorSettings(kafka_timeout_seconds=0.5, allowed_kafka_servers="127.0.0.1")
    runtime = Runtime(settings, kube=None, capabilities=Capabilities())  # type: ignore[arg-type]
    spec = {
        "watchlist": ["AAPL"],
        "kafka": {
            "topicBackend": "direct",
            "bootstrapServers": f"127.0.0.1:{free_port()}",  # nothing listens there
            "authentication": authentication,
        },
    }
    meta = {"name": "fx", "namespace": "ns"}
    kind = {"apiVersion": "marketpulse.io/v1alpha1", "kind": "StockPipeline"}
    pipeline = validate_stockpipeline({**kind, "metadata": meta, "spec": spec})
    try:
        return asyncio.run(remove_principal(runtime, pipeline, names_for(pipeline)))
    finally:
        runtime.pool.shutdown(wait=False)


def test_a_pipelines_login_that_cannot_be_removed_yet_fails_its_cleanup_as_one_that_may_pass() -> None:
    with pytest.raises(CleanupFailedError) as caught:
        _remove_with_the_broker_down("scram-sha-512")
    assert (caught.value.reason, caught.value.permanent) == ("KafkaUnavailable", False)


def test_a_pipeline_without_scram_is_never_held_up_by_looking_for_a_login() -> None:
    assert _remove_with_the_broker_down("none") == []
