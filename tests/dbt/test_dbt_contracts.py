"""Gold's enforced dbt contracts and public access (DuckDB; test_dbt_snowflake.py builds them on Snowflake).

Every gold model declares each column's name and data type, and dbt refuses to build a model whose
SQL no longer produces them. The violations are made on a copy of the project, never on dbt/ itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from dbt_oracle import GOLD

from marketpulse.warehouse import DbtRunError, find_project_dir, run_dbt

CONTRACT_FAILED = "This model has an enforced contract that failed."


def _env(workdir: Path) -> dict[str, str]:
    return {
        "MARKETPULSE_DUCKDB_PATH": str(workdir / "warehouse.duckdb"),
        "DBT_TARGET_PATH": str(workdir / "target"),
        "DBT_LOG_PATH": str(workdir / "logs"),
    }


def test_every_gold_model_is_public_with_an_enforced_contract_typing_every_column(tmp_path: Path) -> None:
    listed = run_dbt(
        [
            "ls",
            "--resource-type",
            "model",
            "--select",
            "path:models/gold",
            "--output",
            "json",
            "--output-keys",
            "name",
            "config",
            "columns",
        ],
        target="duckdb",
        env=_env(tmp_path),
    )
    models = {model["name"]: model for model in map(json.loads, listed.raw)}
    assert set(models) == set(GOLD)
    for name, model in models.items():
        assert model["config"]["contract"]["enforced"] is True, name
        assert model["config"]["access"] == "public", name
        untyped = [column for column, spec in model["columns"].items() if not spec.get("data_type")]
        assert not untyped, f"{name}: columns without a data_type: {untyped}"


def _project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "dbt"
    shutil.copytree(find_project_dir(), copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    return copy


@pytest.mark.parametrize(
    ("before", "after", "column", "reason"),
    [
        pytest.param(
            "ln(close / previous_close) as log_return",
            "cast(ln(close / previous_close) as varchar) as log_return",
            "log_return",
            "data type mismatch",
            id="wrong-type",
        ),
        pytest.param(
            "        close,\n        previous_close,\n",
            "        close,\n",
            "previous_close",
            "missing in definition",
            id="missing-column",
        ),
    ],
)
def test_a_gold_model_that_breaks_its_contract_fails_the_build_with_dbts_contract_error(
    tmp_path: Path, before: str, after: str, column: str, reason: str
) -> None:
    project = _project_copy(tmp_path)
    model = project / "models" / "gold" / "returns_daily.sql"
    sql = model.read_text()
    assert sql.count(before) == 1, f"returns_daily.sql no longer contains {before!r}; update this test"
    model.write_text(sql.replace(before, after))

    with pytest.raises(DbtRunError) as caught:
        run_dbt(
            ["build", "--exclude-resource-type", "unit_test"],
            target="duckdb",
            env=_env(tmp_path),
            project_dir=project,
            reuse_manifest=False,
        )
    # The broken model fails alone (the models that read it are skipped).
    assert caught.value.failed_nodes == ["returns_daily"]
    (failure,) = caught.value.failures
    assert CONTRACT_FAILED in failure.message
    mismatch = next((line for line in failure.message.splitlines() if f"| {column} " in line), "")
    assert reason in mismatch, failure.message
    assert CONTRACT_FAILED in str(caught.value)
    # Refused before anything was created for it; its inputs were built.
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        gold = {
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables where table_schema = 'gold'"
            ).fetchall()
        }
    assert "returns_daily" not in gold
    assert {"ohlc_1m", "ohlc_daily"} <= gold
    # The project itself is untouched.
    assert (find_project_dir() / "models" / "gold" / "returns_daily.sql").read_text().count(before) == 1
