"""Read a StockPipeline YAML file with the same validation and messages as the CRD, and as
`marketpulse validate` reports them: `FILE:LINE: field.path: message`."""

from __future__ import annotations

from pathlib import Path

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.api.documents import check_files


class PipelineFileError(ValueError):
    """The file is missing, is not YAML, or is not a valid StockPipeline; the message says which and where."""


def load_pipeline(path: Path) -> StockPipeline:
    checked = check_files([str(path)])
    if checked.problems:
        raise PipelineFileError("\n".join(checked.problems))
    if len(checked.pipelines) != 1:
        raise PipelineFileError(
            f"{path}: expected exactly one document of kind StockPipeline, found {len(checked.pipelines)}"
        )
    return checked.pipelines[0][1]
