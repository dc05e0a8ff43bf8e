"""One reconcile of one StockPipeline: render, then at once sync the children, provision the
backends and list the pods, then observe.

Handlers call `reconcile()`; it returns the observations and leaves writing the status and
emitting events to the status writer. Nothing here decides the status: `status.summarize` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from marketpulse.contract.api import StockPipeline, StockPipelineInvalid, validate_stockpipeline
from marketpulse.contract.workloads import PipelineNames
from marketpulse.operator import children, kafka_access, s3_accounts
from marketpulse.operator.builders import BuildContext, Manifest, dashboard_url, render_children
from marketpulse.operator.diff import with_hash
from marketpulse.operator.full_refresh import CONDITION as FULL_REFRESH
from marketpulse.operator.full_refresh import FullRefresh, full_refresh
from marketpulse.operator.hosts import claim_of, conflict_message
from marketpulse.operator.kube import KubeError
from marketpulse.operator.observe import ChildResult, Pods, by_component, pipeline_checks
from marketpulse.operator.policy import endpoint_refusals, replay_refusal
from marketpulse.operator.provision import ensure_bucket, ensure_direct_topics, secret_refusals
from marketpulse.operator.runtime import Runtime
from marketpulse.operator.status import Check, Observed

Adopt = Callable[[list[Manifest]], None]
Logger = logging.Logger | logging.LoggerAdapter[Any]

# Backends that are down, not wrong: the reconcile is retried soon rather than at the next resync.
_TRANSIENT_REASONS = {"KafkaUnavailable", "S3Unavailable", "CredentialsUnavailable", "S3AccountsFailed"}
# A bucket the pipeline may not use: nothing is rendered, so no workload writes to it.
_REFUSED_BUCKET = {"BucketNotOwned", "EndpointRefused"}


@dataclass
class Outcome:
    """What a reconcile saw and did; `observed` feeds `summarize`."""

    observed: Observed
    transient: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    invalid: StockPipelineInvalid | None = None
    # What the platform does not let this spec use (endpoints, Secrets): nothing was applied or contacted.
    refused: list[str] = field(default_factory=list)
    # The token of a full refresh requested by annotation and handed to the transform by this reconcile.
    full_refresh_requested: str | None = None


def parse(body: Mapping[str, Any]) -> StockPipeline:
    meta = body.get("metadata", {})
    return validate_stockpipeline(
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": dict(body.get("spec", {})),
        },
        source=f"{meta.get('namespace')}/{meta.get('name')}",
    )


async def refusals(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames) -> list[str]:
    """Everything in the spec the platform does not allow: endpoints, Secrets, a foreign replay file."""
    found = endpoint_refusals(pipeline.spec, runtime.settings.endpoint_policy())
    replay = replay_refusal(pipeline.spec, names)
    if replay is not None:
        found.append(replay)
    return found + await secret_refusals(runtime, pipeline, names)


def _now() -> datetime:
    return datetime.now(UTC)


async def _nothing() -> None:
    return None


def _refresh_fields(refresh: FullRefresh) -> dict[str, Any]:
    """What the status says about full refreshes (kept on every path, so no request is forgotten)."""
    notices = {FULL_REFRESH: refresh.check} if refresh.check is not None else {}
    return {"notices": notices, "last_full_refresh": refresh.token}


async def direct_kafka(
    runtime: Runtime, pipeline: StockPipeline, ctx: BuildContext, uid: str, adopt: Adopt
) -> Check:
    """Topics through the admin API and, with SCRAM, the pipeline's own user and ACLs (prefixed, so
    either may come first)."""
    scram = pipeline.spec.kafka.authentication == "scram-sha-512"
    topics, principal = await asyncio.gather(
        ensure_direct_topics(runtime, pipeline, ctx),
        kafka_access.ensure_principal(runtime, pipeline, ctx, uid, adopt) if scram else _nothing(),
    )
    return kafka_access.with_principal(topics, principal)


async def _no_accounts() -> s3_accounts.Issued:
    return s3_accounts.Issued()


async def reconcile(
    runtime: Runtime,
    body: Mapping[str, Any],
    adopt: Adopt,
    logger: Logger,
    *,
    fresh: bool = False,
    prune: bool = True,
    take_full_refresh: bool = False,
) -> Outcome:
    """Bring the children and backends in line with the spec. `fresh`: the pipeline was just
    created, so there is nothing to read back or prune (saves a round trip per child). `prune`:
    look for children the spec no longer wants (only a spec change makes them; False saves a list
    call per kind when a child's own change is the reason to reconcile). `take_full_refresh`: act
    on a full-refresh annotation (the caller then removes it: see `operator.full_refresh`)."""
    meta = body.get("metadata", {})
    previous = list((body.get("status") or {}).get("conditions", []))
    kept = _refresh_fields(full_refresh(body, _now(), act=False))
    try:
        pipeline = parse(body)
    except StockPipelineInvalid as exc:
        message = "; ".join(str(e) for e in exc.errors)
        observed = Observed(checks={}, now=_now(), previous=previous, invalid=message, **kept)
        return Outcome(observed, invalid=exc)

    spec = pipeline.spec
    ctx = runtime.context(pipeline, (body.get("status") or {}).get("bucket"))
    names = ctx.names
    refused = await refusals(runtime, pipeline, names)
    if refused:
        observed = Observed(checks={}, now=_now(), previous=previous, refused="; ".join(refused), **kept)
        return Outcome(observed, refused=refused)
    uid = str(meta.get("uid", ""))
    claim = claim_of(body) if spec.dashboard.ingress_enabled else None
    # The bucket first: workloads must never start against a bucket that is not the pipeline's.
    bucket_check, holder = await asyncio.gather(
        ensure_bucket(runtime, pipeline, names, logger),
        _nothing() if claim is None else runtime.host_claims.holder(claim, uid),
    )
    if bucket_check.check.reason in _REFUSED_BUCKET:
        message = bucket_check.check.message
        observed = Observed(
            checks={"Bucket": bucket_check.check}, now=_now(), previous=previous, refused=message, **kept
        )
        return Outcome(observed, refused=[message])
    # The pipeline's own S3 accounts need its bucket; an adopted bucket gets none (see provision).
    issue_accounts = (
        bucket_check.usable and not bucket_check.adopted and s3_accounts.applies(runtime, pipeline)
    )
    if bucket_check.adopted:
        ctx = runtime.context(pipeline, (body.get("status") or {}).get("bucket"), shared_s3=True)
    # Taken only here, where the workloads are rendered with it.
    refresh = full_refresh(body, _now(), act=take_full_refresh)
    desired = render_children(pipeline, replace(ctx, full_refresh=refresh.token))
    if holder is not None:
        # The host is another pipeline's: no Ingress, and one that this pipeline had goes.
        desired = [m for m in desired if m["kind"] != "Ingress"]
    adopt(desired)
    desired = [with_hash(m) for m in desired]

    direct = spec.kafka.topic_backend == "direct"
    kube = runtime.kube
    prune_kinds = children.PRUNABLE if prune else (children.INGRESS,) if holder is not None else ()
    child_results, prunes, topic_check, listed_pods, issued = await asyncio.gather(
        asyncio.gather(*(children.sync_child(kube, m, fresh=fresh) for m in desired)),
        _nothing() if fresh or not prune_kinds else children.prune(kube, names, uid, desired, prune_kinds),
        direct_kafka(runtime, pipeline, ctx, uid, adopt) if direct else _nothing(),
        # A pipeline just created has no pods yet.
        _nothing() if fresh else children.list_pods(kube, names),
        # Beside the workloads, which wait for their Secrets (never fall back to the platform's keys).
        s3_accounts.ensure(runtime, pipeline, names, uid, adopt) if issue_accounts else _no_accounts(),
        return_exceptions=True,
    )
    transient: list[str] = []
    if isinstance(child_results, BaseException):
        raise child_results
    results: list[ChildResult] = list(child_results)
    pruned: list[str] = []
    if prunes is None:
        pass
    elif isinstance(prunes, KubeError):
        transient.append(f"pruning: {prunes}")
    elif isinstance(prunes, BaseException):
        raise prunes
    else:
        pruned = prunes
    # None: not observed (just created, or the list failed), so the workloads' checks stand alone.
    pods: Pods | None = None
    if isinstance(listed_pods, KubeError):
        logger.warning("pods not observed: %s", listed_pods)
        if listed_pods.transient:
            transient.append(f"listing pods: {listed_pods}")
    elif isinstance(listed_pods, BaseException):
        raise listed_pods
    elif listed_pods is not None:
        pods = by_component(listed_pods)
    transient += [
        f"{r.manifest['kind']} {r.manifest['metadata']['name']}: {r.error}"
        for r in results
        if r.error is not None and r.error.transient
    ]
    if isinstance(topic_check, BaseException):
        raise topic_check
    if isinstance(issued, BaseException):
        raise issued

    checks = pipeline_checks(
        spec,
        names,
        results,
        runtime.capabilities,
        direct_topics=topic_check,
        bucket=issued.failure or bucket_check.check,
        pods=pods,
        secrets=(runtime.settings.s3_secret_key, *bucket_check.secrets, *issued.secrets),
        host_conflict=None if claim is None or holder is None else conflict_message(claim, holder),
    )
    transient += [f"{name}: {c.message}" for name, c in checks.items() if c.reason in _TRANSIENT_REASONS]
    freshness = bucket_check.freshness
    if freshness is None:
        freshness = list((body.get("status") or {}).get("freshness", []))
    observed = Observed(
        checks=checks,
        now=_now(),
        previous=previous,
        suspended=spec.suspend,
        topics=list(names.topics),
        # Recorded only once it is the pipeline's: a later reconcile trusts the recorded name.
        bucket=names.bucket if bucket_check.usable else None,
        dashboard_url=dashboard_url(spec, ctx, ingress=spec.dashboard.ingress_enabled and holder is None),
        freshness=freshness,
        **_refresh_fields(refresh),
    )
    applied = [f"{r.manifest['kind']}/{r.manifest['metadata']['name']}" for r in results if r.applied]
    if applied or pruned:
        logger.info("applied %s; pruned %s", ", ".join(applied) or "nothing", ", ".join(pruned) or "nothing")
    requested = refresh.token if refresh.requested else None
    return Outcome(
        observed, transient=transient, applied=applied, pruned=pruned, full_refresh_requested=requested
    )
