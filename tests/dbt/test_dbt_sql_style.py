"""The dbt models and tests pass sqlfluff with the project's configuration (dbt/.sqlfluff).

sqlfluff renders each file through dbt's own templater on the DuckDB target of dbt/profiles.yml, so
the project's macros render exactly as they do in a build; the database file, dbt's target folder
and its logs go to a temporary folder, never into the project.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt"


def test_the_dbt_sql_is_sqlfluff_clean_with_the_dbt_templater(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MARKETPULSE_DBT_TARGET": "duckdb",
        "MARKETPULSE_DUCKDB_PATH": str(tmp_path / "lint.duckdb"),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sqlfluff", "lint", "--processes", "2", "--disable-progress-bar", "."],
        cwd=DBT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"sqlfluff lint (in dbt/) failed:\n{result.stdout}\n{result.stderr}"
    # The dbt templater, not a stand-in: it compiles the project before it lints.
    assert "[dbt templater] Project Compiled." in result.stdout + result.stderr
