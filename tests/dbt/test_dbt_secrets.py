"""dbt sees Snowflake secrets only as DBT_ENV_SECRET_* variables, whose values it scrubs from its logs."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from marketpulse.warehouse import dbt_project as dbt_project_module
from marketpulse.warehouse import find_project_dir, run_dbt
from marketpulse.warehouse.dbt_project import dbt_environment

PROFILE = find_project_dir() / "profiles.yml"


def test_the_profile_reads_the_password_and_passphrase_only_from_dbt_env_secret_variables() -> None:
    snowflake = yaml.safe_load(PROFILE.read_text())["marketpulse"]["outputs"]["snowflake"]

    assert snowflake["password"] == "{{ env_var('DBT_ENV_SECRET_SNOWFLAKE_PASSWORD', '') }}"
    assert snowflake["private_key_passphrase"] == (
        "{{ env_var('DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE', '') }}"
    )
    read = set(re.findall(r"env_var\('([A-Z_]+)'", PROFILE.read_text()))
    assert not read & {"SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"}


def test_a_dbt_invocation_gets_the_secrets_under_their_dbt_env_secret_names_only() -> None:
    overlay = dbt_environment(
        {"SNOWFLAKE_ACCOUNT": "org-acct", "SNOWFLAKE_PASSWORD": "pw-4711"},
        {"SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "pass-0815", "PATH": "/bin"},
    )

    assert overlay == {
        "SNOWFLAKE_ACCOUNT": "org-acct",
        "SNOWFLAKE_PASSWORD": None,  # unset while dbt runs
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": None,
        "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD": "pw-4711",
        "DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "pass-0815",
    }


def test_dbt_runs_with_the_secret_renamed_and_the_environment_is_restored_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, str | None] = {}

    class Recorder:
        def __init__(self, **_: object) -> None:
            pass

        def invoke(self, _args: list[str]) -> object:
            for name in ("SNOWFLAKE_PASSWORD", "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"):
                seen[name] = os.environ.get(name)
            return type("Outcome", (), {"success": True, "result": None, "exception": None})()

    import dbt.cli.main

    monkeypatch.setattr(dbt.cli.main, "dbtRunner", Recorder)
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "from-the-pod-4711")
    monkeypatch.delenv("DBT_ENV_SECRET_SNOWFLAKE_PASSWORD", raising=False)
    monkeypatch.setattr(dbt_project_module, "_summarise", lambda _result: ({}, {}, []))

    run_dbt(["debug"], target="snowflake", env={}, reuse_manifest=False)

    assert seen == {"SNOWFLAKE_PASSWORD": None, "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD": "from-the-pod-4711"}
    assert os.environ["SNOWFLAKE_PASSWORD"] == "from-the-pod-4711"
    assert "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD" not in os.environ
