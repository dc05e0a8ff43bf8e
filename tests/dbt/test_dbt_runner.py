"""run_dbt: finds the project, runs dbt in-process one invocation at a time, and names what failed."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from marketpulse.warehouse import DbtProjectNotFoundError, find_project_dir, run_dbt
from marketpulse.warehouse import dbt_project as dbt_project_module

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_project_is_found_in_the_source_tree_without_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MARKETPULSE_DBT_PROJECT_DIR", raising=False)
    assert find_project_dir() == REPO_ROOT / "dbt"


def test_a_configured_project_dir_without_dbt_project_yml_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(DbtProjectNotFoundError, match=r"MARKETPULSE_DBT_PROJECT_DIR=.*no dbt_project\.yml"):
        find_project_dir({"MARKETPULSE_DBT_PROJECT_DIR": str(tmp_path)})


def test_flags_that_run_dbt_sets_itself_and_unknown_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="--target"):
        run_dbt(["build", "--target", "prod"], target="duckdb", env={})
    with pytest.raises(ValueError, match="target: 'postgres'"):
        run_dbt(["build"], target="postgres", env={})


class _RecordingRunner:
    """Stands in for dbtRunner to observe how invocations interleave (no dbt work is done)."""

    active = 0
    most_active = 0
    seen_env: list[str | None] = []  # noqa: RUF012 - shared on purpose across instances
    guard = threading.Lock()

    def invoke(self, args: list[str]) -> Any:
        with self.guard:
            type(self).active += 1
            type(self).most_active = max(type(self).most_active, type(self).active)
            type(self).seen_env.append(os.environ.get("MARKETPULSE_PROBE"))
        time.sleep(0.05)
        with self.guard:
            type(self).active -= 1

        class _Outcome:
            success = True
            exception = None
            result = None

        return _Outcome()


def test_concurrent_invocations_run_one_at_a_time_each_with_its_own_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dbt.cli.main.dbtRunner", _RecordingRunner)
    monkeypatch.delenv("MARKETPULSE_PROBE", raising=False)
    project = find_project_dir()

    def invoke(index: int) -> None:
        run_dbt(["parse"], target="snowflake", env={"MARKETPULSE_PROBE": str(index)}, project_dir=project)

    threads = [threading.Thread(target=invoke, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert _RecordingRunner.most_active == 1
    assert sorted(_RecordingRunner.seen_env, key=str) == [str(index) for index in range(6)]
    assert "MARKETPULSE_PROBE" not in os.environ
    assert not dbt_project_module._lock.locked()


def _copy_project(destination: Path) -> Path:
    """A copy of the dbt project's sources (not its target/ or logs/), safe to edit."""
    shutil.copytree(
        find_project_dir(), destination, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    return destination


def test_the_project_is_parsed_once_and_again_only_when_its_files_or_vars_change(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dbt.parser.manifest import ManifestLoader

    real_parse = ManifestLoader.get_full_manifest.__func__  # type: ignore[attr-defined]
    parses: list[int] = []

    def counting_parse(cls: type[ManifestLoader], *args: Any, **kwargs: Any) -> Any:
        parses.append(1)
        return real_parse(cls, *args, **kwargs)

    # Counts dbt's own full parse; every invocation still goes through the real dbt.
    monkeypatch.setattr(ManifestLoader, "get_full_manifest", classmethod(counting_parse))
    project = _copy_project(tmp_path / "dbt")
    database = tmp_path / "warehouse.duckdb"
    env = {
        "MARKETPULSE_DUCKDB_PATH": str(database),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }

    def run_staging(*extra: str) -> None:
        run_dbt(["run", "--select", "stg_ticks", *extra], target="duckdb", env=env, project_dir=project)

    def staging_columns() -> list[str]:
        with duckdb.connect(str(database), read_only=True) as con:
            rows = con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'bronze' and table_name = 'stg_ticks' order by ordinal_position"
            ).fetchall()
        return [row[0] for row in rows]

    run_staging()
    run_staging()
    assert len(parses) == 1
    assert "probe" not in staging_columns()

    # An edited model is parsed again and the edit is what runs.
    model = project / "models" / "bronze" / "stg_ticks.sql"
    model.write_text(model.read_text().replace("select * from renamed", "select *, 1 as probe from renamed"))
    run_staging()
    assert len(parses) == 2
    assert staging_columns()[-1] == "probe"

    # Vars shape the parsed project (schemas, watchlist): other vars, another parse.
    run_staging("--vars", '{"watchlist": ["AAPL"]}')
    assert len(parses) == 3
    run_staging("--vars", '{"watchlist": ["AAPL"]}')
    assert len(parses) == 3

    # Without reuse, every invocation parses.
    run_dbt(
        ["run", "--select", "stg_ticks"], target="duckdb", env=env, project_dir=project, reuse_manifest=False
    )
    assert len(parses) == 4
