"""Validate a StockPipeline given as plain data (e.g. loaded from YAML) with messages that name the field.

The operator and `marketpulse run -f pipeline.yaml` both come through here, so a bad pipeline is
refused with the same field paths (`spec.watchlist[1]`) as `kubectl apply`, and cross-field rules
with the very messages of the CRD's CEL rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from marketpulse.contract.api.base import RULE_ERROR, ApiModel
from marketpulse.contract.api.v1alpha1 import StockPipeline, StockPipelineSpec

M = TypeVar("M", bound=ApiModel)


@dataclass(frozen=True)
class FieldError:
    """One problem: where (`spec.kafka.partitions`) and what is wrong or expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class StockPipelineInvalid(ValueError):  # noqa: N818 - reads as "StockPipeline invalid", like the API's "is invalid"
    """A StockPipeline that the API would refuse; `errors` lists every problem found."""

    def __init__(self, errors: Sequence[FieldError], *, source: str | None = None) -> None:
        self.errors = tuple(errors)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {error}" for error in self.errors)
        super().__init__(f"StockPipeline{where} is invalid:\n{lines}")


def field_path(loc: Iterable[str | int], suffix: str = "") -> str:
    """`("spec", "watchlist", 1)` -> `spec.watchlist[1]`, as the API server writes paths."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    if suffix.startswith(".") and not path:
        suffix = suffix[1:]
    return path + suffix


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == RULE_ERROR:
        return error["msg"]
    if kind == "missing":
        return "Required value"
    if kind == "extra_forbidden":
        return "unknown field (not part of the StockPipeline API; field names are camelCase)"
    if isinstance(error["input"], (dict, list)):
        return error["msg"]
    return f"{error['msg']} (got {_short(error['input'])})"


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    errors = []
    for error in exc.errors():
        suffix = str((error.get("ctx") or {}).get("field_path", "")) if error["type"] == RULE_ERROR else ""
        errors.append(FieldError(field_path((*prefix, *error["loc"]), suffix), _message(error)))
    return errors


def _validate(model: type[M], data: object, prefix: Sequence[str], source: str | None) -> M:
    if not isinstance(data, Mapping):
        where = ".".join(prefix) or "the document"
        raise StockPipelineInvalid(
            [FieldError(where, f"expected a mapping of fields, got {type(data).__name__}")], source=source
        )
    try:
        # Field names only by their wire (camelCase) names, as the API server accepts them.
        return model.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise StockPipelineInvalid(field_errors(exc, prefix), source=source) from None


def validate_stockpipeline(data: object, *, source: str | None = None) -> StockPipeline:
    """Validate a whole StockPipeline resource (apiVersion, kind, metadata, spec[, status]).

    Raises StockPipelineInvalid naming each offending field; `source` (a file name) goes in the message.
    """
    return _validate(StockPipeline, data, (), source)


def validate_spec(data: object, *, source: str | None = None) -> StockPipelineSpec:
    """Validate just a spec; paths in errors start with `spec.` as they do for the whole resource."""
    return _validate(StockPipelineSpec, data, ("spec",), source)


def validate_update(old: StockPipeline, new: StockPipeline) -> None:
    """Refuse a change that the CRD's transition rules refuse (e.g. shrinking kafka.partitions)."""
    errors = [
        FieldError(field_path(("spec", *loc), failed.field_path or ""), failed.message)
        for loc, failed in new.spec.transition_failures(old.spec)
    ]
    if errors:
        raise StockPipelineInvalid(errors, source=new.metadata.name)
