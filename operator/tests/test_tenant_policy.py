"""The platform's policy over what a spec may name: endpoints, Secrets, replay files and bucket names;
and what a remote server's answer may put in a status."""

from __future__ import annotations

import gzip
import re
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from minio.error import InvalidResponseError, S3Error

from marketpulse.archive.quotes import QuoteBook
from marketpulse.contract.api import StockPipeline
from marketpulse.contract.workloads import PipelineNames, names_for
from marketpulse.operator.policy import (
    SECRET_LABEL,
    SECRET_PIPELINES_ANNOTATION,
    EndpointPolicy,
    allowed,
    endpoint_refusals,
    referenced_secrets,
    replay_refusal,
    secret_refusal,
)
from marketpulse.operator.reasons import short_reason

POLICY = EndpointPolicy(
    default_s3_endpoint="http://minio.marketpulse.svc:9000",
    s3=("s3.eu.example.com", ".objects.example.org:443"),
    kafka=("kafka-0.kafka.svc:9092", ".brokers.example.com"),
)


def spec(**fields: Any) -> Any:
    return StockPipeline.model_validate(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"watchlist": ["AAPL"], **fields},
        }
    ).spec


@pytest.mark.parametrize(
    ("address", "patterns", "expected"),
    [
        ("s3.eu.example.com", ["s3.eu.example.com"], True),
        ("s3.eu.example.com:9000", ["s3.eu.example.com"], True),  # a host pattern allows any port
        ("s3.eu.example.com:9000", ["s3.eu.example.com:443"], False),
        ("a.objects.example.org:443", [".objects.example.org:443"], True),
        ("objects.example.org:443", [".objects.example.org:443"], False),  # sub-domains only
        ("evilobjects.example.org", [".objects.example.org"], False),
        ("S3.EU.Example.com", ["s3.eu.example.com"], True),
        ("[::1]:9000", ["[::1]"], True),
        ("anything:1", ["*"], True),
        ("anything:1", [], False),
    ],
)
def test_an_address_is_allowed_only_by_a_matching_pattern(
    address: str, patterns: list[str], expected: bool
) -> None:
    assert allowed(address, patterns) is expected


def test_the_operators_own_s3_endpoint_and_listed_https_endpoints_are_allowed() -> None:
    assert endpoint_refusals(spec(storage={"endpoint": "http://minio.marketpulse.svc:9000/"}), POLICY) == []
    assert endpoint_refusals(spec(storage={"endpoint": "https://s3.eu.example.com"}), POLICY) == []
    assert endpoint_refusals(spec(), POLICY) == []


def test_every_endpoint_outside_the_allow_lists_is_refused_naming_its_field() -> None:
    snowflake = {
        "account": "acme",
        "user": "u",
        "database": "D",
        "endpoint": "https://collector.evil.example",
        "password": {"secretKeyRef": {"name": "s", "key": "k"}},
    }
    found = endpoint_refusals(
        spec(
            storage={"endpoint": "https://attacker.example:8443"},
            warehouse={"type": "snowflake", "snowflake": snowflake},
            kafka={"topicBackend": "direct", "bootstrapServers": "kafka-0.kafka.svc:9092,10.0.0.9:9092"},
        ),
        POLICY,
    )
    assert found == [
        "spec.storage.endpoint: attacker.example:8443 is not an allowed S3 endpoint (the platform allows: "
        "s3.eu.example.com, .objects.example.org:443); ask the platform team to add it to the operator's "
        "allow-list",
        "spec.warehouse.snowflake.endpoint: collector.evil.example is not an allowed Snowflake endpoint "
        "(the platform allows: .snowflakecomputing.com); ask the platform team to add it to the operator's "
        "allow-list",
        "spec.kafka.bootstrapServers: 10.0.0.9:9092 not an allowed Kafka address (the platform allows: "
        "kafka-0.kafka.svc:9092, .brokers.example.com); ask the platform team to add it to the operator's "
        "allow-list",
    ]


def test_plain_http_needs_the_platforms_consent_even_for_an_allowed_host() -> None:
    http = spec(storage={"endpoint": "http://s3.eu.example.com"})
    assert endpoint_refusals(http, POLICY) == [
        "spec.storage.endpoint: http://s3.eu.example.com is not https, and the platform does not allow "
        "plain http endpoints"
    ]
    consenting = EndpointPolicy(**{**POLICY.__dict__, "allow_plain_http": True})
    assert endpoint_refusals(http, consenting) == []


def test_every_secret_a_spec_names_is_found_with_its_field() -> None:
    found = referenced_secrets(
        spec(
            source={"type": "finnhub", "finnhub": {"apiKey": {"secretKeyRef": {"name": "fh", "key": "k"}}}},
            storage={"credentialsSecret": {"name": "s3"}},
            warehouse={
                "type": "snowflake",
                "snowflake": {
                    "account": "a",
                    "user": "u",
                    "database": "D",
                    "privateKey": {"secretKeyRef": {"name": "sf", "key": "pem"}},
                    "privateKeyPassphrase": {"secretKeyRef": {"name": "sf2", "key": "pass"}},
                },
            },
            alerts={
                "rules": [{"name": "m", "priceMove": {}}],
                "webhookUrl": {"secretKeyRef": {"name": "hook", "key": "u"}},
            },
        )
    )
    assert sorted(found) == [
        ("spec.alerts.webhookUrl.secretKeyRef", "hook"),
        ("spec.source.finnhub.apiKey.secretKeyRef", "fh"),
        ("spec.storage.credentialsSecret", "s3"),
        ("spec.warehouse.snowflake.privateKey.secretKeyRef", "sf"),
        ("spec.warehouse.snowflake.privateKeyPassphrase.secretKeyRef", "sf2"),
    ]


def secret_object(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"metadata": {"name": "s", "labels": labels or {}, "annotations": annotations or {}}, "data": {}}


def test_a_secret_is_usable_only_when_marked_and_by_the_pipelines_its_owner_lists() -> None:
    field = "spec.storage.credentialsSecret"
    marked = {SECRET_LABEL: "true"}
    assert secret_refusal(field, "s", secret_object(marked), "p") is None
    assert (
        secret_refusal(field, "s", secret_object(marked, {SECRET_PIPELINES_ANNOTATION: "p, q"}), "p") is None
    )
    assert secret_refusal(field, "s", secret_object(marked, {SECRET_PIPELINES_ANNOTATION: "*"}), "p") is None
    unmarked = secret_refusal(field, "s", secret_object(), "p")
    assert unmarked == (
        "spec.storage.credentialsSecret: Secret s is not marked for use by pipelines; its owner may allow it "
        f"with `kubectl label secret s {SECRET_LABEL}=true`"
    )
    assert secret_refusal(field, "s", secret_object({SECRET_LABEL: "yes"}), "p") == unmarked
    other = secret_refusal(field, "s", secret_object(marked, {SECRET_PIPELINES_ANNOTATION: "q"}), "p")
    assert other is not None
    assert other.endswith("(q), not by p")
    missing = secret_refusal(field, "s", None, "p")
    assert missing is not None
    assert "not found" in missing


def test_a_replay_file_must_be_in_the_pipelines_own_bucket_unless_it_brings_its_own_credentials() -> None:
    names = PipelineNames("team", "p")
    foreign = spec(source={"type": "replay", "replay": {"uri": "s3://other/ticks.ndjson"}})
    assert replay_refusal(foreign, names) == (
        f"spec.source.replay.uri: bucket other is not the pipeline's bucket {names.bucket}; put the file in "
        "the pipeline's bucket, or set storage.credentialsSecret to credentials that may read it"
    )
    own = spec(source={"type": "replay", "replay": {"uri": f"s3://{names.bucket}/ticks.ndjson"}})
    assert replay_refusal(own, names) is None
    with_own_keys = spec(
        source={"type": "replay", "replay": {"uri": "s3://other/t.ndjson"}},
        storage={"credentialsSecret": {"name": "k"}},
    )
    assert replay_refusal(with_own_keys, names) is None
    assert replay_refusal(spec(source={"type": "replay", "replay": {"uri": "/data/t.ndjson"}}), names) is None


S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def test_derived_bucket_names_keep_look_alike_pipelines_apart_and_are_valid_s3_names() -> None:
    a, b = PipelineNames("team-a", "prod"), PipelineNames("team", "a-prod")
    assert a.legacy_bucket == b.legacy_bucket == "mp-team-a-prod"  # the ambiguity the hash removes
    assert a.bucket != b.bucket
    assert a.bucket.startswith("mp-team-a-prod-")
    longest = PipelineNames("n" * 63, "p" * 40)
    for names in (a, b, longest):
        assert S3_BUCKET.match(names.bucket), names.bucket
    assert longest.bucket != PipelineNames("n" * 63, "p" * 39 + "q").bucket


def test_a_recorded_bucket_is_kept_only_when_it_is_the_pipelines_own_legacy_name() -> None:
    pipeline = StockPipeline.model_validate(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "prod", "namespace": "team-a"},
            "spec": {"watchlist": ["AAPL"]},
        }
    )
    assert names_for(pipeline, "mp-team-a-prod").bucket == "mp-team-a-prod"
    # Anything else in the status (an older operator recorded what the spec named) is not trusted.
    assert names_for(pipeline, "someone-elses-bucket").bucket == names_for(pipeline).bucket


def test_remote_answers_become_short_reasons_without_their_bodies_or_messages() -> None:
    body = "<html>" + "secret-looking text\n" * 500 + "</html>"
    assert short_reason(InvalidResponseError(503, "text/html", body)) == (
        "the S3 server answered HTTP 503 without an S3 error document"
    )
    s3 = S3Error(None, "Slow\nDown<script>", "the server's own long words " * 50, "r", "h", "/b")
    assert short_reason(s3) == "S3 error SlowDownscript"
    kafka = KafkaException(KafkaError(KafkaError._TRANSPORT, "broker said: " + "x" * 500))
    assert short_reason(kafka) == "Kafka error _TRANSPORT"
    assert short_reason(ValueError("remote text " * 100)) == "ValueError"
    assert len(short_reason(OSError("a" * 1000))) <= 120


def test_the_quote_book_keeps_only_the_watchlist_and_a_bounded_number_without_one() -> None:
    book = QuoteBook(watchlist=frozenset({"AAPL"}))
    for symbol in ("AAPL", "EVIL", "ZZZZ"):
        book.apply(symbol, 1.0, "2026-12-02T15:00:00Z", 1)
    assert list(book.quotes) == ["AAPL"]
    open_book = QuoteBook(limit=3)
    for index in range(10):
        open_book.apply(f"S{index}", 1.0, "2026-12-02T15:00:00Z", 1)
    assert list(open_book.quotes) == ["S0", "S1", "S2"]


def test_a_gzip_body_is_decompressed_no_further_than_the_bound() -> None:
    from urllib3 import HTTPResponse

    from marketpulse.storage.bounded import ObjectTooLargeError, read_bounded

    def response(body: bytes, encoding: str | None) -> HTTPResponse:
        import io

        headers = {"Content-Encoding": encoding} if encoding else {}
        return HTTPResponse(io.BytesIO(body), headers=headers, preload_content=False)

    small = b'{"quotes": {}}'
    assert read_bounded(response(gzip.compress(small), "gzip"), 1024) == small
    assert read_bounded(response(small, None), 1024) == small
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024))
    with pytest.raises(ObjectTooLargeError, match="decompresses to more than 1048576 bytes"):
        read_bounded(response(bomb, "gzip"), 1024 * 1024)
    with pytest.raises(ObjectTooLargeError, match="larger than 1024 bytes"):
        read_bounded(response(b"x" * 5000, None), 1024)
