"""The dbt models and tests pass sqlfluff with the project's configuration (dbt/.sqlfluff)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt"


def test_the_dbt_sql_is_sqlfluff_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sqlfluff", "lint", "--processes", "2", "--disable-progress-bar", "."],
        cwd=DBT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"sqlfluff lint (in dbt/) failed:\n{result.stdout}\n{result.stderr}"
