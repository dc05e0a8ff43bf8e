"""Read a StockPipeline YAML file with the same validation and messages as the CRD."""

from __future__ import annotations

from pathlib import Path

import yaml

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.api.validation import validate_stockpipeline


class PipelineFileError(ValueError):
    """The file is missing, is not YAML, or is not a valid StockPipeline; the message says which and where."""


def load_pipeline(path: Path) -> StockPipeline:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PipelineFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise PipelineFileError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise PipelineFileError(f"{path}: not valid YAML ({exc})") from None
    pipelines = [d for d in documents if isinstance(d, dict) and d.get("kind") == "StockPipeline"]
    if len(pipelines) != 1:
        raise PipelineFileError(
            f"{path}: expected exactly one document of kind StockPipeline, found {len(pipelines)}"
        )
    try:
        return validate_stockpipeline(pipelines[0], source=str(path))
    except ValueError as exc:
        raise PipelineFileError(str(exc)) from None
