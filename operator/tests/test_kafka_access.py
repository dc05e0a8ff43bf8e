"""The direct backend's Kafka password Secret is used only when it is the pipeline's, and the
principal's outcome joins the Topics condition without hiding a failure of either."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from marketpulse.operator.kafka_access import SecretNotOwnedError, _password_of, with_principal
from marketpulse.operator.status import Check

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
