"""Per-pipeline S3 accounts without a server: the policy documents, the names and keys, the signed
versitygw admin requests, the MinIO call sequence (against a fake shaped like `minio.MinioAdmin`),
and which Secret each workload's S3 keys come from."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from minio.error import MinioAdminException
from pydantic import ValidationError

from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.workloads import Platform, names_for, render_workloads
from marketpulse.operator.backends import s3_policies
from marketpulse.operator.backends.s3_iam import Account, AdminApiError, access_key, new_secret_key
from marketpulse.operator.backends.s3_iam_minio import MinioAccounts, policy_name
from marketpulse.operator.backends.s3_iam_versitygw import VersityGwAccounts, VersityGwAdmin, _error_code
from marketpulse.operator.s3_accounts import account_store
from marketpulse.operator.settings import OperatorSettings

SAMPLES = Path(__file__).parents[1] / "config" / "samples"
BUCKET = "mp-team-p-0123abcd"
BUCKET_CONFIG = {"s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketVersioning", "s3:DeleteBucket"}
BUCKET_CONFIG |= {"s3:PutLifecycleConfiguration", "s3:PutBucketAcl", "s3:CreateBucket", "s3:*"}


def granted(policy: s3_policies.Policy, principal: str | None = None) -> dict[str, set[str]]:
    """Resource -> actions the policy allows (to `principal`, for a bucket policy)."""
    out: dict[str, set[str]] = {}
    for s in policy["Statement"]:
        assert s["Effect"] == "Allow"
        if principal is not None and s["Principal"] != {"AWS": [principal]}:
            continue
        for resource in s["Resource"]:
            out.setdefault(resource, set()).update(s["Action"])
    return out


# --- policy documents -----------------------------------------------------------------------------


def test_the_writer_may_read_write_and_delete_objects_and_list_only_its_own_bucket() -> None:
    assert granted(s3_policies.user_policy(BUCKET, "writer")) == {
        f"arn:aws:s3:::{BUCKET}": {"s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"},
        f"arn:aws:s3:::{BUCKET}/*": {
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        },
    }


def test_the_reader_may_only_get_objects_and_list_its_bucket() -> None:
    assert granted(s3_policies.user_policy(BUCKET, "reader")) == {
        f"arn:aws:s3:::{BUCKET}": {"s3:ListBucket"},
        f"arn:aws:s3:::{BUCKET}/*": {"s3:GetObject"},
    }


@pytest.mark.parametrize("access", ["writer", "reader"])
def test_no_account_may_change_the_bucket_itself_or_reach_any_other(access: s3_policies.Access) -> None:
    policy = s3_policies.user_policy(BUCKET, access)
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert not actions & BUCKET_CONFIG
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}
    assert all("*" not in r.removesuffix("/*") for r in resources)


def test_bucket_actions_and_object_actions_sit_on_the_arn_each_applies_to() -> None:
    # versitygw and AWS refuse a statement whose action has no resource of its kind.
    for statement in s3_policies.user_policy(BUCKET, "writer")["Statement"]:
        on_objects = all(r.endswith("/*") for r in statement["Resource"])
        assert on_objects == (statement["Sid"].endswith("Objects"))


def test_the_bucket_policy_names_the_writer_and_the_reader_by_access_key_with_their_own_grants() -> None:
    policy = s3_policies.bucket_policy(BUCKET, "mpwAAA", "mprBBB")
    assert granted(policy, "mpwAAA") == granted(s3_policies.user_policy(BUCKET, "writer"))
    assert granted(policy, "mprBBB") == granted(s3_policies.user_policy(BUCKET, "reader"))
    assert {json.dumps(s["Principal"]) for s in policy["Statement"]} == {
        '{"AWS": ["mpwAAA"]}',
        '{"AWS": ["mprBBB"]}',
    }


def test_a_policy_the_server_stored_in_its_own_form_counts_as_unchanged() -> None:
    wanted = s3_policies.bucket_policy(BUCKET, "mpwAAA", "mprBBB")
    rewritten = json.loads(json.dumps(wanted))
    for s in rewritten["Statement"]:
        s.pop("Sid")
        s["Action"] = list(reversed(s["Action"]))
        if len(s["Resource"]) == 1:
            s["Resource"] = s["Resource"][0]
        s["Principal"] = {"AWS": s["Principal"]["AWS"][0]}
    rewritten["Statement"].reverse()
    assert s3_policies.same_policy(rewritten, wanted)
    assert not s3_policies.same_policy(s3_policies.bucket_policy(BUCKET, "mpwAAA", "mprCCC"), wanted)
    assert not s3_policies.same_policy(None, wanted)


# --- keys -----------------------------------------------------------------------------------------


def test_access_keys_are_stable_per_pipeline_uid_and_fit_minio_s_limits() -> None:
    writer = access_key("uid-1", BUCKET, "writer")
    assert writer == access_key("uid-1", BUCKET, "writer")
    assert writer.startswith("mpw")
    assert access_key("uid-1", BUCKET, "reader").startswith("mpr")
    # A pipeline deleted and created again under the same name is another pipeline: other accounts.
    assert access_key("uid-2", BUCKET, "writer") != writer
    assert 3 <= len(writer) <= 20
    secret = new_secret_key()
    assert 8 <= len(secret) <= 40
    assert secret != new_secret_key()


def test_an_account_never_shows_its_secret_key_in_its_repr() -> None:
    assert "s3cr3t" not in repr(Account("writer", "mpwAAA", "s3cr3t"))


# --- versitygw's admin API ------------------------------------------------------------------------

NOW = datetime(2026, 12, 3, 10, 15, 0, tzinfo=UTC)


def botocore_signature(request: Any, secret: str = "root-secret") -> str:  # noqa: S107 - a test key
    """The signature botocore computes for the same request: an independent SigV4 implementation."""
    aws = AWSRequest(method=request.method, url=str(request.url), data=request.content)
    for name in ("host", "x-amz-content-sha256", "x-amz-date"):
        aws.headers[name] = request.headers[name]
    aws.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    auth = SigV4Auth(Credentials("root", secret), "s3", "us-east-1")
    canonical = auth.canonical_request(aws)
    return str(auth.signature(auth.string_to_sign(aws, canonical), aws))


def test_an_admin_request_is_a_patch_signed_with_sigv4_for_s3_as_botocore_signs_it() -> None:
    admin = VersityGwAdmin("http://127.0.0.1:7070/", "root", "root-secret")
    body = b"<Account><Access>mpwAAA</Access></Account>"
    request = admin.build("/create-user", body=body, now=NOW)
    assert request.method == "PATCH"
    assert str(request.url) == "http://127.0.0.1:7070/create-user"
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=root/20261203/us-east-1/s3/aws4_request")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date" in authorization
    assert authorization.endswith(f"Signature={botocore_signature(request)}")
    assert not authorization.endswith(botocore_signature(request, secret="another"))


def test_query_parameters_are_encoded_sorted_and_signed() -> None:
    admin = VersityGwAdmin("http://127.0.0.1:7070", "root", "root-secret")
    request = admin.build("/delete-user", {"access": "mpw a/b", "b": "2"}, now=NOW)
    assert str(request.url) == "http://127.0.0.1:7070/delete-user?access=mpw%20a%2Fb&b=2"
    assert request.headers["Authorization"].endswith(f"Signature={botocore_signature(request)}")


def test_a_refusal_keeps_the_status_and_error_code_and_never_the_servers_message() -> None:
    body = b"<Error><Code>XAdminUserExists</Code><Message>secret words of the server</Message></Error>"
    error = AdminApiError("create-user", 409, _error_code(body))
    assert str(error) == "S3 admin API create-user: HTTP 409 XAdminUserExists"
    assert _error_code(b"<html>not xml") == ""
    assert (
        str(AdminApiError("list-users", 500, "<script>x</script>"))
        == "S3 admin API list-users: HTTP 500 scriptxscript"
    )


# --- MinIO: a fake shaped like minio.MinioAdmin (MinIO's server is not run here) ------------------


class FakeMinioAdmin:
    """A FAKE of `minio.MinioAdmin`'s user and policy calls: records them and keeps users and policies
    in dicts. It stands in for MinIO's server, which this project never runs (AGPL)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}

    def _missing(self, code: str) -> MinioAdminException:
        return MinioAdminException("404", json.dumps({"Code": code, "Message": "private server text"}))

    def user_info(self, access_key: str) -> str:
        self.calls.append(("user_info", access_key))
        if access_key not in self.users:
            raise self._missing("XMinioAdminNoSuchUser")
        user = self.users[access_key]
        return json.dumps({"status": "enabled", "policyName": ",".join(user["policies"])})

    def user_add(self, access_key: str, secret_key: str) -> str:
        self.calls.append(("user_add", access_key))
        self.users.setdefault(access_key, {"policies": []})["secret"] = secret_key
        return ""

    def user_remove(self, access_key: str) -> str:
        self.calls.append(("user_remove", access_key))
        if self.users.pop(access_key, None) is None:
            raise self._missing("XMinioAdminNoSuchUser")
        return ""

    def policy_info(self, policy_name: str) -> str:
        self.calls.append(("policy_info", policy_name))
        if policy_name not in self.policies:
            raise self._missing("XMinioAdminNoSuchPolicy")
        return json.dumps(self.policies[policy_name])

    def policy_add(
        self, policy_name: str, policy_file: Any = None, policy: dict[Any, Any] | None = None
    ) -> str:
        self.calls.append(("policy_add", policy_name))
        assert policy is not None
        assert policy_file is None
        self.policies[policy_name] = policy
        return ""

    def policy_remove(self, policy_name: str) -> str:
        self.calls.append(("policy_remove", policy_name))
        if any(policy_name in u["policies"] for u in self.users.values()):
            raise MinioAdminException("400", json.dumps({"Code": "XMinioAdminPolicyInUse"}))
        if self.policies.pop(policy_name, None) is None:
            raise self._missing("XMinioAdminNoSuchPolicy")
        return ""

    def attach_policy(self, policies: list[str], user: str | None = None, group: str | None = None) -> str:
        self.calls.append(("attach_policy", *policies, str(user)))
        assert user is not None
        assert group is None
        self.users[user]["policies"] += policies
        return ""


WRITER = Account("writer", "mpwAAA", "writer-secret", fresh=True)
READER = Account("reader", "mprBBB", "reader-secret", fresh=True)


def test_minio_gets_a_user_and_a_bucket_limited_policy_per_account_attached_in_order() -> None:
    fake = FakeMinioAdmin()
    assert MinioAccounts(fake).ensure(BUCKET, WRITER, READER)
    w, r = policy_name(WRITER), policy_name(READER)
    assert fake.calls == [
        ("user_info", "mpwAAA"),
        ("user_add", "mpwAAA"),
        ("policy_info", w),
        ("policy_add", w),
        ("attach_policy", w, "mpwAAA"),
        ("user_info", "mprBBB"),
        ("user_add", "mprBBB"),
        ("policy_info", r),
        ("policy_add", r),
        ("attach_policy", r, "mprBBB"),
    ]
    assert fake.policies[w] == s3_policies.user_policy(BUCKET, "writer")
    assert fake.policies[r] == s3_policies.user_policy(BUCKET, "reader")
    assert fake.users["mpwAAA"]["secret"] == "writer-secret"


def test_minio_accounts_in_place_are_only_read_on_the_next_reconcile() -> None:
    fake = FakeMinioAdmin()
    MinioAccounts(fake).ensure(BUCKET, WRITER, READER)
    fake.calls.clear()
    kept = (Account("writer", "mpwAAA", "writer-secret"), Account("reader", "mprBBB", "reader-secret"))
    assert not MinioAccounts(fake).ensure(BUCKET, *kept)
    assert {c[0] for c in fake.calls} == {"user_info", "policy_info"}


def test_a_new_secret_key_is_set_on_a_minio_user_that_already_exists() -> None:
    fake = FakeMinioAdmin()
    MinioAccounts(fake).ensure(BUCKET, WRITER, READER)
    fake.calls.clear()
    MinioAccounts(fake).ensure(BUCKET, Account("writer", "mpwAAA", "new-secret", fresh=True), READER)
    assert ("user_add", "mpwAAA") in fake.calls
    assert fake.users["mpwAAA"]["secret"] == "new-secret"


def test_minio_removal_takes_users_before_their_policies_and_tolerates_what_is_gone() -> None:
    fake = FakeMinioAdmin()
    MinioAccounts(fake).ensure(BUCKET, WRITER, READER)
    fake.calls.clear()
    MinioAccounts(fake).remove(BUCKET, "mpwAAA", "mprBBB")
    assert fake.calls == [
        ("user_remove", "mpwAAA"),
        ("policy_remove", policy_name("mpwAAA")),
        ("user_remove", "mprBBB"),
        ("policy_remove", policy_name("mprBBB")),
    ]
    assert fake.users == {}
    assert fake.policies == {}
    MinioAccounts(fake).remove(BUCKET, "mpwAAA", "mprBBB")  # again: nothing left, no error


def test_a_minio_refusal_becomes_an_admin_api_error_with_status_and_code_only() -> None:
    class Refusing(FakeMinioAdmin):
        def user_info(self, access_key: str) -> str:
            raise MinioAdminException("403", json.dumps({"Code": "AccessDenied", "Message": "root is bob"}))

    with pytest.raises(AdminApiError) as refused:
        MinioAccounts(Refusing()).ensure(BUCKET, WRITER, READER)
    assert str(refused.value) == "S3 admin API user-info: HTTP 403 AccessDenied"


# --- which Secret the workloads read --------------------------------------------------------------


def sample(**storage: Any) -> StockPipeline:
    document = yaml.safe_load((SAMPLES / "stockpipeline-synthetic-duckdb.yaml").read_text())
    document["metadata"]["namespace"] = "team"
    document["spec"]["storage"] = {**document["spec"].get("storage", {}), **storage}
    document["spec"]["alerts"] = {
        "rules": [{"name": "move", "priceMove": {"percent": 5, "windowMinutes": 5}}]
    }
    return validate_stockpipeline(document)


def s3_secrets(p: StockPipeline, platform: Platform) -> dict[str, set[str]]:
    """Component -> the Secrets its S3 keys come from."""
    out: dict[str, set[str]] = {}
    for workload in render_workloads(p.spec, names_for(p), platform):
        refs = {e.secret.name for e in workload.env if e.secret is not None and e.name.startswith("S3_")}
        if refs:
            out[workload.component] = refs
    return out


PER_PIPELINE = Platform(s3_per_pipeline=True)


def test_with_per_pipeline_accounts_workloads_use_the_writer_and_the_dashboard_the_read_only_secret() -> None:
    p = sample()
    name = p.metadata.name
    assert s3_secrets(p, PER_PIPELINE) == {
        "archive": {f"{name}-s3"},
        "transform": {f"{name}-s3"},
        "dashboard": {f"{name}-s3-readonly"},
    }


def test_with_shared_credentials_every_workload_uses_the_platform_secret() -> None:
    assert set().union(*s3_secrets(sample(), Platform()).values()) == {"marketpulse-s3"}


def test_a_pipeline_with_its_own_credentials_or_another_endpoint_gets_no_account_of_the_platform() -> None:
    own = sample(credentialsSecret={"name": "team-s3"})
    assert set().union(*s3_secrets(own, PER_PIPELINE).values()) == {"team-s3"}
    elsewhere = sample(endpoint="https://s3.eu.example.com")
    assert set().union(*s3_secrets(elsewhere, PER_PIPELINE).values()) == {"marketpulse-s3"}
    same = sample(endpoint=PER_PIPELINE.s3_endpoint + "/")
    assert set().union(*s3_secrets(same, PER_PIPELINE).values()) == {
        f"{same.metadata.name}-s3",
        f"{same.metadata.name}-s3-readonly",
    }


# --- settings -------------------------------------------------------------------------------------


def test_the_s3_iam_setting_defaults_to_shared_and_accepts_only_known_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert OperatorSettings().s3_iam == "shared"
    assert not OperatorSettings().platform().s3_per_pipeline
    monkeypatch.setenv("MARKETPULSE_S3_IAM", "versitygw")
    assert OperatorSettings().platform().s3_per_pipeline
    monkeypatch.setenv("MARKETPULSE_S3_IAM", "ceph")
    with pytest.raises(ValidationError, match="s3_iam"):
        OperatorSettings()


def test_the_account_store_is_the_one_of_the_configured_server() -> None:
    common = {"s3_endpoint": "http://127.0.0.1:9000", "s3_access_key": "root", "s3_secret_key": "rootsecret"}
    assert isinstance(account_store(OperatorSettings(s3_iam="minio", **common)), MinioAccounts)
    versitygw = account_store(
        OperatorSettings(s3_iam="versitygw", s3_admin_endpoint="http://127.0.0.1:7071", **common)
    )
    assert isinstance(versitygw, VersityGwAccounts)
    assert versitygw.admin.endpoint == "http://127.0.0.1:7071"
