"""The bucket's lifecycle rules: bronze expires after its retention, old versions of `latest/` and `gold/`
after a day, other rules are kept, and an unchanged bucket is not written to."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from minio.commonconfig import ENABLED, Filter
from minio.lifecycleconfig import Expiration, LifecycleConfig, NoncurrentVersionExpiration, Rule
from minio.xml import marshal, unmarshal

from marketpulse.operator.backends import buckets
from marketpulse.operator.provision import bucket_check

NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}


def as_sent(config: LifecycleConfig) -> ET.Element:
    """The XML body `set_bucket_lifecycle` sends."""
    return ET.fromstring(marshal(config))  # noqa: S314 - XML we marshalled ourselves


def as_read_back(config: LifecycleConfig) -> LifecycleConfig:
    """What `get_bucket_lifecycle` returns for a server that stored `config`."""
    return unmarshal(LifecycleConfig, marshal(config).decode())


def rule_xml(root: ET.Element, prefix: str) -> ET.Element:
    [rule] = [
        r for r in root.iterfind("s3:Rule", NS) if r.findtext("s3:Filter/s3:Prefix", namespaces=NS) == prefix
    ]
    return rule


def test_old_versions_of_quotes_and_gold_expire_after_a_day_and_their_current_objects_stay() -> None:
    root = as_sent(LifecycleConfig(buckets.lifecycle_rules(30)))
    for prefix in ("latest/", "gold/"):
        rule = rule_xml(root, prefix)
        assert rule.findtext("s3:Status", namespaces=NS) == "Enabled"
        assert rule.findtext("s3:NoncurrentVersionExpiration/s3:NoncurrentDays", namespaces=NS) == "1"
        assert rule.findtext("s3:Expiration/s3:ExpiredObjectDeleteMarker", namespaces=NS) == "true"
        assert rule.find("s3:Expiration/s3:Days", NS) is None, "the current quotes and gold must not expire"
        assert rule.findtext("s3:AbortIncompleteMultipartUpload/s3:DaysAfterInitiation", namespaces=NS) == "1"


def test_bronze_keeps_its_retention_for_current_and_old_versions() -> None:
    bronze = rule_xml(as_sent(LifecycleConfig(buckets.lifecycle_rules(30))), "bronze/")
    assert bronze.findtext("s3:ID", namespaces=NS) == buckets.RULE_ID
    assert bronze.findtext("s3:Expiration/s3:Days", namespaces=NS) == "30"
    assert bronze.findtext("s3:NoncurrentVersionExpiration/s3:NoncurrentDays", namespaces=NS) == "30"


def test_a_bucket_that_has_the_rules_is_not_written_again() -> None:
    stored = as_read_back(LifecycleConfig(buckets.lifecycle_rules(30)))
    assert buckets.merged_lifecycle(stored, 30) is None


def test_a_bucket_with_only_the_old_bronze_rule_gets_the_new_rules_and_keeps_rules_of_others() -> None:
    theirs = Rule(
        ENABLED, rule_filter=Filter(prefix="exports/"), rule_id="team-exports", expiration=Expiration(days=3)
    )
    old_bronze = Rule(
        ENABLED,
        rule_filter=Filter(prefix="bronze/"),
        rule_id=buckets.RULE_ID,
        expiration=Expiration(days=30),
        noncurrent_version_expiration=NoncurrentVersionExpiration(noncurrent_days=30),
    )
    merged = buckets.merged_lifecycle(as_read_back(LifecycleConfig([theirs, old_bronze])), 30)
    assert merged is not None
    assert [r.rule_id for r in merged.rules] == [
        "team-exports",
        buckets.RULE_ID,
        buckets.LATEST_RULE_ID,
        buckets.GOLD_RULE_ID,
    ]
    assert buckets.merged_lifecycle(as_read_back(merged), 30) is None


def test_a_changed_retention_rewrites_the_bronze_rule() -> None:
    merged = buckets.merged_lifecycle(as_read_back(LifecycleConfig(buckets.lifecycle_rules(30))), 7)
    assert merged is not None
    bronze = rule_xml(as_sent(merged), "bronze/")
    assert bronze.findtext("s3:Expiration/s3:Days", namespaces=NS) == "7"


def test_the_condition_says_what_is_left_unbounded_when_the_server_refuses_lifecycle() -> None:
    outcome = buckets.BucketOutcome(owned=True, refused={"lifecycle": "NotImplemented"})
    check = bucket_check("b", 30, outcome)
    assert check.reason == "LifecycleNotSupported"
    assert "lifecycle refused by the S3 server (NotImplemented)" in check.message
    assert "latest/ and gold/ pile up" in check.message
    assert "bronze does not expire after 30 days" in check.message


def test_the_condition_states_every_rule_when_the_server_keeps_them() -> None:
    check = bucket_check("b", 30, buckets.BucketOutcome(owned=True))
    assert check.reason == "BucketReady"
    assert check.message == (
        "bucket b: versioning on, bronze expires after 30 days, old versions of latest/ and gold/ after 1 day"
    )
