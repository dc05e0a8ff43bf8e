"""The operator's credentials, as kopf gets them from the Kubernetes client's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from marketpulse.operator.kube import bearer_token


def test_an_in_cluster_token_loses_its_lower_case_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # load_incluster_config stores "bearer <token>"; sending that again behind "Bearer " is a 401.
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("eyJhbGciOi.payload.signature")
    ca.write_text("-----BEGIN CERTIFICATE-----\n")  # read only as a path here
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    configuration = client.Configuration()
    loader = config.incluster_config.InClusterConfigLoader(token_filename=str(token), cert_filename=str(ca))
    loader.load_and_set(configuration)

    assert configuration.auth_settings()["BearerToken"]["value"] == "bearer eyJhbGciOi.payload.signature"
    assert bearer_token(configuration) == "eyJhbGciOi.payload.signature"


def test_a_kubeconfig_token_loses_its_scheme_and_client_certificates_give_none() -> None:
    with_token = client.Configuration()
    with_token.api_key = {"authorization": "Bearer abc.def"}
    with_certificate = client.Configuration()
    with_certificate.cert_file = "/path/to/client.crt"

    assert bearer_token(with_token) == "abc.def"
    assert bearer_token(with_certificate) is None
