"""The warehouse side of the transform: the dbt project (bronze → silver → gold) and how to run it."""

from marketpulse.warehouse.dbt_project import (
    DbtNodeFailure,
    DbtProjectNotFoundError,
    DbtRunError,
    DbtRunResult,
    find_project_dir,
    run_dbt,
)

__all__ = [
    "DbtNodeFailure",
    "DbtProjectNotFoundError",
    "DbtRunError",
    "DbtRunResult",
    "find_project_dir",
    "run_dbt",
]
