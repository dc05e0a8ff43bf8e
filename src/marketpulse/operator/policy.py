"""What a StockPipeline may reach, decided by the platform, not by the pipeline's author.

The operator acts with more rights than an author has, so every endpoint and Secret a spec names
is checked here before anything is rendered or contacted:

- endpoints (S3, Snowflake, Kafka) must match the platform's allow-lists, and `http://` needs the
  platform's consent: a refused endpoint gets no connection, from the operator or from a pod;
- a Secret is used only when its owner marked it for pipelines with the label `SECRET_LABEL`
  (and, optionally, named the pipelines that may use it in `SECRET_PIPELINES_ANNOTATION`);
- a replay file in S3 must be in the pipeline's own bucket, unless the pipeline brings its own
  S3 credentials (with the shared ones it could read any tenant's objects).

Everything here is pure; the reconcile fetches the Secrets' metadata and calls `secret_refusal`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.api.base import SecretValue
from marketpulse.contract.workloads import PipelineNames

SECRET_LABEL = "marketpulse.io/pipeline-secret"  # noqa: S105 - a label key, not a secret
SECRET_PIPELINES_ANNOTATION = "marketpulse.io/allowed-pipelines"  # noqa: S105 - an annotation key
ANY = "*"


def parse_patterns(text: str) -> tuple[str, ...]:
    """`a.example.com, .example.org:9092, *` -> the patterns, lower-cased, empty ones dropped."""
    return tuple(p.strip().lower() for p in text.split(",") if p.strip())


def _split_host_port(address: str) -> tuple[str, str | None]:
    if address.startswith("["):  # [::1]:9000
        host, _, rest = address[1:].partition("]")
        return host.lower(), rest.removeprefix(":") or None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address.lower(), None
    return host.lower(), port


def allowed(address: str, patterns: Sequence[str]) -> bool:
    """Whether `host[:port]` matches a pattern: `*`, `host`, `host:port`, `.suffix` or `.suffix:port`
    (a suffix matches sub-domains only: `.example.com` allows `s3.example.com`, not `example.com`)."""
    host, port = _split_host_port(address)
    for pattern in patterns:
        if pattern == ANY:
            return True
        want_host, want_port = _split_host_port(pattern)
        if want_port is not None and want_port != port:
            continue
        if want_host.startswith("."):
            if host.endswith(want_host) and len(host) > len(want_host):
                return True
        elif host == want_host:
            return True
    return False


@dataclass(frozen=True)
class EndpointPolicy:
    """The platform's allow-lists (operator settings, from the chart's `security` values)."""

    # The operator's own S3 endpoint: always allowed, whatever its scheme.
    default_s3_endpoint: str
    s3: tuple[str, ...] = ()
    kafka: tuple[str, ...] = ()
    snowflake: tuple[str, ...] = (".snowflakecomputing.com",)
    allow_plain_http: bool = False


def _url_refusal(
    field: str, url: str, patterns: Sequence[str], policy: EndpointPolicy, what: str
) -> str | None:
    parts = urlsplit(url)
    address = parts.netloc.rpartition("@")[2]
    if parts.scheme != "https" and not policy.allow_plain_http:
        return f"{field}: {url} is not https, and the platform does not allow plain http endpoints"
    if not allowed(address, patterns):
        listed = ", ".join(patterns) or "none"
        return (
            f"{field}: {address} is not an allowed {what} endpoint (the platform allows: {listed}); "
            "ask the platform team to add it to the operator's allow-list"
        )
    return None


def endpoint_refusals(spec: StockPipelineSpec, policy: EndpointPolicy) -> list[str]:
    """One message per endpoint in `spec` that the platform does not allow, naming the field."""
    refusals: list[str] = []
    endpoint = spec.storage.endpoint
    if endpoint is not None and endpoint.rstrip("/") != policy.default_s3_endpoint.rstrip("/"):
        refusal = _url_refusal("spec.storage.endpoint", endpoint, policy.s3, policy, "S3")
        if refusal:
            refusals.append(refusal)
    snowflake = spec.warehouse.snowflake
    if spec.warehouse.type == "snowflake" and snowflake is not None and snowflake.endpoint is not None:
        refusal = _url_refusal(
            "spec.warehouse.snowflake.endpoint", snowflake.endpoint, policy.snowflake, policy, "Snowflake"
        )
        if refusal:
            refusals.append(refusal)
    if spec.kafka.bootstrap_servers:
        refused = [a for a in spec.kafka.bootstrap_servers.split(",") if not allowed(a, policy.kafka)]
        if refused:
            listed = ", ".join(policy.kafka) or "none"
            refusals.append(
                f"spec.kafka.bootstrapServers: {', '.join(refused)} not an allowed Kafka address "
                f"(the platform allows: {listed}); ask the platform team to add it to the operator's "
                "allow-list"
            )
    return refusals


def replay_refusal(spec: StockPipelineSpec, names: PipelineNames) -> str | None:
    """A replay file in another bucket, read with the platform's shared S3 credentials: refused."""
    replay = spec.source.replay
    if spec.source.type != "replay" or replay is None or not replay.uri.startswith("s3://"):
        return None
    bucket = replay.uri.removeprefix("s3://").partition("/")[0]
    if bucket == names.bucket or spec.storage.credentials_secret is not None:
        return None
    return (
        f"spec.source.replay.uri: bucket {bucket} is not the pipeline's bucket {names.bucket}; "
        "put the file in the pipeline's bucket, or set storage.credentialsSecret to credentials "
        "that may read it"
    )


# --- Secrets ----------------------------------------------------------------------------------------


def _secret_values(model: BaseModel, path: str) -> Iterator[tuple[str, str]]:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        wire = f"{path}.{field.alias or _camel(name)}"
        yield from _walk(value, wire)


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, SecretValue):
        yield f"{path}.secretKeyRef", value.secret_key_ref.name
    elif isinstance(value, BaseModel):
        yield from _secret_values(value, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def referenced_secrets(spec: StockPipelineSpec) -> list[tuple[str, str]]:
    """(field path, Secret name) of every Secret the spec makes a workload or the operator read."""
    refs = list(_secret_values(spec, "spec"))
    if spec.storage.credentials_secret is not None:
        refs.append(("spec.storage.credentialsSecret", spec.storage.credentials_secret.name))
    return refs


def secret_refusal(field: str, name: str, secret: Mapping[str, Any] | None, pipeline: str) -> str | None:
    """Why the pipeline `pipeline` may not use the Secret `name` (its object, None when missing)."""
    if secret is None:
        return (
            f"{field}: Secret {name} not found in the pipeline's namespace; create it with the label "
            f"{SECRET_LABEL}=true"
        )
    meta = secret.get("metadata") or {}
    if (meta.get("labels") or {}).get(SECRET_LABEL) != "true":
        return (
            f"{field}: Secret {name} is not marked for use by pipelines; its owner may allow it with "
            f"`kubectl label secret {name} {SECRET_LABEL}=true`"
        )
    listed = (meta.get("annotations") or {}).get(SECRET_PIPELINES_ANNOTATION)
    if listed is not None and pipeline not in parse_patterns(listed) and ANY not in parse_patterns(listed):
        return (
            f"{field}: Secret {name} may be used only by the pipelines in its annotation "
            f"{SECRET_PIPELINES_ANNOTATION} ({listed}), not by {pipeline}"
        )
    return None
