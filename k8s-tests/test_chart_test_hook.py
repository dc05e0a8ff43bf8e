"""The chart's `helm test` pod as the real API server admits it: in a namespace that enforces the
restricted Pod Security Standard, and a pod lacking one of its settings refused there (so the
admission is really checking). Running it needs a kubelet: k8s-tests/node/test_pipeline_in_cluster.py."""

from __future__ import annotations

import pytest
import yaml
from chart_harness import CHART, Helm

pytestmark = [pytest.mark.k8s, pytest.mark.helm]


def hook_pod(helm: Helm) -> dict[str, object]:
    argv = ["template", helm.release, CHART, "--namespace", helm.namespace]
    argv += ["--show-only", "templates/tests/dashboards-test.yaml", "--set", "tests.dashboards={demo}"]
    document: dict[str, object] = yaml.safe_load(helm.run(helm.helm, *argv).stdout)
    return document


def dry_run(helm: Helm, manifest: dict[str, object]) -> tuple[int, str]:
    argv = [helm.kubectl, "create", "--dry-run=server", "--validate=strict", "-n", helm.namespace, "-f", "-"]
    result = helm.kube.run(argv, stdin=yaml.safe_dump(manifest), check=False)
    return result.returncode, result.stdout + result.stderr


def test_the_test_pod_is_admitted_under_the_restricted_standard_and_a_weaker_one_is_not(helm: Helm) -> None:
    label = ["label", "namespace", helm.namespace, "pod-security.kubernetes.io/enforce=restricted"]
    helm.run(helm.kubectl, *label, "--overwrite")
    pod = hook_pod(helm)
    weaker = yaml.safe_load(yaml.safe_dump(pod))
    del weaker["spec"]["containers"][0]["securityContext"]["capabilities"]

    admitted, said = dry_run(helm, pod)
    refused, why = dry_run(helm, weaker)

    assert admitted == 0, said
    assert refused != 0
    assert 'violates PodSecurity "restricted:latest"' in why
    assert "capabilities" in why
