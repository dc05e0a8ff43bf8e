"""skaffold.yaml and k8s-tests/kind/ point at things that exist (they cannot run here: no Docker)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
KIND = ROOT / "k8s-tests" / "kind"


def skaffold() -> dict:  # type: ignore[type-arg]
    config: dict = yaml.safe_load((ROOT / "skaffold.yaml").read_text())  # type: ignore[type-arg]
    return config


def test_skaffold_builds_every_dockerfile_under_images() -> None:
    artifacts = skaffold()["build"]["artifacts"]
    built = {ROOT / a.get("context", ".") / a["docker"]["dockerfile"] for a in artifacts}
    assert built == set((ROOT / "images").glob("*/Dockerfile"))


def test_skaffold_deploys_the_chart_with_values_files_that_exist_and_sets_the_built_image() -> None:
    (release,) = skaffold()["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    for values in release["valuesFiles"]:
        assert (ROOT / values).is_file(), values
    image = skaffold()["build"]["artifacts"][0]["image"]
    key = re.sub(r"[^A-Za-z0-9]", "_", image)
    assert release["setValueTemplates"]["image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
    assert release["setValueTemplates"]["image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"


def test_skaffold_forwards_the_dashboard_of_the_sample_and_the_operator_metrics() -> None:
    forwards = {f["resourceName"]: f for f in skaffold()["portForward"]}
    sample = yaml.safe_load(
        (ROOT / "operator/config/samples/stockpipeline-synthetic-duckdb.yaml").read_text()
    )
    (release,) = skaffold()["deploy"]["helm"]["releases"]
    assert f"{sample['metadata']['name']}-dashboard" in forwards
    # Release "marketpulse" of chart "marketpulse": the full name is just "marketpulse".
    assert f"{release['name']}-metrics" in forwards


def test_the_kind_profile_loads_images_instead_of_pushing() -> None:
    (kind,) = [p for p in skaffold()["profiles"] if p["name"] == "kind"]
    assert kind["build"]["local"]["push"] is False
    assert kind["activation"] == [{"kubeContext": "kind-marketpulse"}]


def test_the_kind_cluster_publishes_the_ingress_ports_of_an_ingress_ready_node() -> None:
    cluster = yaml.safe_load((KIND / "cluster.yaml").read_text())
    (node,) = cluster["nodes"]
    assert {m["containerPort"] for m in node["extraPortMappings"]} == {80, 443}
    assert "ingress-ready=true" in node["kubeadmConfigPatches"][0]


def test_the_kind_script_is_valid_bash_and_uses_files_that_exist() -> None:
    script = (KIND / "up.sh").read_text()
    subprocess.run(["bash", "-n", str(KIND / "up.sh")], check=True)
    subprocess.run(["bash", "-n", str(KIND / "down.sh")], check=True)
    for path in re.findall(r"(?:charts|k8s-tests|operator|images)/[\w./-]+", script):
        assert (ROOT / path.rstrip("/")).exists(), path
    assert 'kubectl -n "$NAMESPACE" wait "stockpipeline/$name" --for=condition=Ready' in script


@pytest.mark.helm
def test_the_kind_values_satisfy_the_chart(helm_binary: Path) -> None:
    chart = ROOT / "charts" / "marketpulse"
    result = subprocess.run(
        [str(helm_binary), "lint", str(chart), "--strict", "--values", str(KIND / "values.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
