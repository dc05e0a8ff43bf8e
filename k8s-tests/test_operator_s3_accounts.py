"""MARKETPULSE_S3_IAM=versitygw: the operator issues each pipeline its own S3 accounts on the real
versitygw, in Secrets its workloads read; each reaches only its own bucket, the dashboard's only reads,
and deleting the pipeline removes them."""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import pytest
from minio import Minio
from minio.error import S3Error
from operator_harness import (
    Cluster,
    condition,
    handled,
    operator_settings,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse.operator.backends.s3_iam import new_secret_key
from marketpulse.operator.backends.s3_iam_versitygw import VersityGwAdmin
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.s3]


def keys(cluster: Cluster, namespace: str, name: str) -> tuple[str, str, Any]:
    secret = cluster.core.read_namespaced_secret(name, namespace)
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    return data["AWS_ACCESS_KEY_ID"], data["AWS_SECRET_ACCESS_KEY"], secret.metadata


def s3_secret_of(container: Any) -> set[str]:
    return {
        e.value_from.secret_key_ref.name
        for e in container.env or []
        if e.name.startswith("S3_") and e.value_from is not None
    }


def code(call: Any) -> str:
    with pytest.raises(S3Error) as refused:
        call()
    return str(refused.value.code)


def put(client: Minio, bucket: str, key: str) -> None:
    client.put_object(bucket, key, io.BytesIO(b"x"), 1)


def test_each_pipeline_gets_accounts_limited_to_its_bucket_kept_across_reconciles_and_removed_with_it(
    cluster: Cluster, kube: KubeTarget, namespace: str, s3_server: S3Server
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=False)
    settings = operator_settings(kube, s3_server, s3_iam="versitygw")
    root = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    with running_operator(settings, namespace):
        for name in ("alpha", "beta"):
            document = sample("synthetic-duckdb")
            document["metadata"]["name"] = name
            document["spec"]["deletionPolicy"] = "Delete"
            cluster.apply_yaml(namespace, document)
        alpha, beta = (
            wait_status(cluster, namespace, n, handled(1), f"the first reconcile of {n}")
            for n in ("alpha", "beta")
        )
        bucket_a, bucket_b = alpha["status"]["bucket"], beta["status"]["bucket"]
        assert condition(alpha, "Bucket")["status"] == "True", condition(alpha, "Bucket")

        # The Secrets: the pipeline's own, the workloads read the writer's, the dashboard the reader's.
        wait_for(
            lambda: (
                cluster.core.list_namespaced_secret(namespace, field_selector="metadata.name=alpha-s3").items
            ),
            what="alpha's Secret",
        )
        writer_key, writer_secret, writer_meta = keys(cluster, namespace, "alpha-s3")
        reader_key, reader_secret, reader_meta = keys(cluster, namespace, "alpha-s3-readonly")
        uid = alpha["metadata"]["uid"]
        assert [o.uid for o in writer_meta.owner_references] == [uid]
        assert [o.uid for o in reader_meta.owner_references] == [uid]
        assert writer_key != s3_server.access_key
        archive = cluster.apps.read_namespaced_deployment("alpha-archive", namespace)
        dashboard = cluster.apps.read_namespaced_deployment("alpha-dashboard", namespace)
        transform = cluster.batch.read_namespaced_cron_job("alpha-transform", namespace)
        assert s3_secret_of(archive.spec.template.spec.containers[0]) == {"alpha-s3"}
        assert s3_secret_of(transform.spec.job_template.spec.template.spec.containers[0]) == {"alpha-s3"}
        assert s3_secret_of(dashboard.spec.template.spec.containers[0]) == {"alpha-s3-readonly"}

        # The keys work, on alpha's bucket only.
        writer = minio_client(s3_server.endpoint, writer_key, writer_secret)
        reader = minio_client(s3_server.endpoint, reader_key, reader_secret)
        put(writer, bucket_a, "bronze/ticks/x.ndjson")
        assert reader.get_object(bucket_a, "bronze/ticks/x.ndjson").read() == b"x"
        assert code(lambda: put(reader, bucket_a, "forged")) == "AccessDenied"
        assert code(lambda: reader.remove_object(bucket_a, "bronze/ticks/x.ndjson")) == "AccessDenied"
        put(root, bucket_b, "theirs")
        assert code(lambda: writer.get_object(bucket_b, "theirs")) == "AccessDenied"
        assert code(lambda: put(writer, bucket_b, "mine")) == "AccessDenied"
        assert code(lambda: writer.make_bucket("mp-not-allowed")) == "AccessDenied"
        assert bucket_b not in {b.name for b in writer.list_buckets()}

        # Another reconcile (a spec change) keeps the keys: the Secret is never rewritten.
        version = writer_meta.resource_version
        cluster.patch_spec(namespace, "alpha", {"watchlist": ["AAPL", "MSFT"]})
        wait_status(cluster, namespace, "alpha", handled(2), "the reconcile of the change")
        assert keys(cluster, namespace, "alpha-s3")[2].resource_version == version
        put(writer, bucket_a, "bronze/ticks/y.ndjson")

        cluster.delete_pipeline(namespace, "alpha")
        wait_for(lambda: cluster.pipeline_gone(namespace, "alpha"), timeout=20, what="alpha to go")
    # Its accounts are gone from the server: the keys its pods held are refused.
    assert code(lambda: list(writer.list_objects(bucket_b))) == "InvalidAccessKeyId"
    assert code(lambda: list(reader.list_objects(bucket_b))) == "InvalidAccessKeyId"
    beta_key, beta_secret, _ = keys(cluster, namespace, "beta-s3")
    put(minio_client(s3_server.endpoint, beta_key, beta_secret), bucket_b, "still-works")


def test_an_admin_api_refusal_reaches_the_status_as_status_and_code_only_and_no_shared_keys_are_used(
    cluster: Cluster, kube: KubeTarget, namespace: str, s3_server: S3Server
) -> None:
    # The operator's keys may create buckets (userplus) but are no admin: the admin API refuses them.
    access, secret = f"op-{uuid.uuid4().hex[:12]}", new_secret_key()
    admin = VersityGwAdmin(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    admin.create_user(access, secret, role="userplus")
    admin.close()
    cluster.crd_set(strimzi="v1", monitoring=False)
    settings = operator_settings(
        kube, s3_server, s3_iam="versitygw", s3_access_key=access, s3_secret_key=secret
    )
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        pipeline = wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: condition(p, "Bucket").get("reason") == "S3AccountsFailed",
            "the Bucket condition to say the accounts were refused",
        )
        archive = cluster.apps.read_namespaced_deployment("demo-archive", namespace)
    bucket = condition(pipeline, "Bucket")
    assert bucket["status"] == "False"
    assert bucket["message"] == (
        f"bucket {pipeline['status']['bucket']}: S3 admin API list-users: HTTP 403 XAdminAccessDenied"
    )
    # Fail closed: the workloads wait for the pipeline's own Secret, never get the operator's keys.
    assert s3_secret_of(archive.spec.template.spec.containers[0]) == {"demo-s3"}
