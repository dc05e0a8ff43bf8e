"""Helpers for tests that need a Kubernetes API server (local control plane or $KUBECONFIG)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from kubernetes import client, config

from marketpulse.localenv.pytest_plugin import KubeTarget

UPSTREAM_CRDS = Path(__file__).parent / "upstream-crds"
CHARTS = Path(__file__).parent / "charts"


def run(
    argv: Sequence[str | Path], kube: KubeTarget, *, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run kubectl/helm against the test cluster; on failure show what the tool said."""
    result = subprocess.run(
        [str(a) for a in argv],
        env=kube.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def api_client(kube: KubeTarget) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(kube.kubeconfig))
    yield api
    api.close()
