"""The result row every suite produces, and its JSON and Markdown renderings.

A row is a plain dict (JSON-ready) with a fixed set of keys; ratios to the baseline and to the
ceiling are derived here, once, so every suite reports them the same way.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import orjson


class ResultRow(TypedDict):
    suite: str
    metric: str
    value: float
    unit: str
    target: str | None
    baseline: float | None
    baseline_name: str | None
    ceiling: float | None
    ceiling_name: str | None
    notes: str


ROW_KEYS = tuple(ResultRow.__annotations__)


def result_row(
    suite: str,
    metric: str,
    value: float,
    unit: str,
    *,
    target: str | None = None,
    baseline: float | None = None,
    baseline_name: str | None = None,
    ceiling: float | None = None,
    ceiling_name: str | None = None,
    notes: str = "",
) -> ResultRow:
    return ResultRow(
        suite=suite,
        metric=metric,
        value=float(value),
        unit=unit,
        target=target,
        baseline=None if baseline is None else float(baseline),
        baseline_name=baseline_name,
        ceiling=None if ceiling is None else float(ceiling),
        ceiling_name=ceiling_name,
        notes=notes,
    )


def check_row(row: Mapping[str, object]) -> ResultRow:
    """A row from any suite (also one written elsewhere) as a ResultRow; a wrong shape names the key."""
    missing = [key for key in ROW_KEYS if key not in row]
    if missing:
        raise ValueError(f"result row {row.get('metric', '?')!r}: missing keys {', '.join(missing)}")
    value = row["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"result row {row['metric']!r}: value must be a number, got {value!r}")
    return result_row(
        str(row["suite"]),
        str(row["metric"]),
        float(value),
        str(row["unit"]),
        target=_optional_str(row["target"]),
        baseline=_optional_float(row["baseline"]),
        baseline_name=_optional_str(row["baseline_name"]),
        ceiling=_optional_float(row["ceiling"]),
        ceiling_name=_optional_str(row["ceiling_name"]),
        notes=str(row["notes"]),
    )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number or null, got {value!r}")
    return float(value)


def ratio(value: float, reference: float | None) -> float | None:
    """value / reference, or None when there is no finite, non-zero reference."""
    if reference is None or reference == 0 or not math.isfinite(reference) or not math.isfinite(value):
        return None
    return value / reference


def with_ratios(row: ResultRow) -> dict[str, Any]:
    return {
        **row,
        "ratio_to_baseline": ratio(row["value"], row["baseline"]),
        "ratio_to_ceiling": ratio(row["value"], row["ceiling"]),
    }


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or value == 0:
        return f"{value:.3f}"
    return f"{value:.2e}"


def _ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    rows: Sequence[ResultRow],
    machine: Mapping[str, object],
    *,
    title: str,
    started_at: str,
    remarks: str,
    methods: Mapping[str, str],
) -> str:
    lines = [f"# {title}", "", f"Run started {started_at}.", "", remarks, "", "## Machine", ""]
    lines += [f"- **{key}**: {_cell(str(value))}" for key, value in machine.items()]
    if methods:
        lines += ["", "## How each suite measures", ""]
        for suite, text in methods.items():
            lines += [f"### {suite}", "", text.strip(), ""]
    lines += [
        "",
        "## Results",
        "",
        "Ratios are value ÷ baseline and value ÷ ceiling (for times and CPU, lower is better).",
        "",
        "| suite | metric | value | unit | target | baseline | ratio | ceiling | ratio | notes |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        full = with_ratios(row)
        baseline = (
            f"{_number(row['baseline'])} ({row['baseline_name']})" if row["baseline"] is not None else "—"
        )
        ceiling = f"{_number(row['ceiling'])} ({row['ceiling_name']})" if row["ceiling"] is not None else "—"
        lines.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    row["suite"],
                    row["metric"],
                    _number(row["value"]),
                    row["unit"],
                    row["target"] or "—",
                    baseline,
                    _ratio_text(full["ratio_to_baseline"]),
                    ceiling,
                    _ratio_text(full["ratio_to_ceiling"]),
                    row["notes"],
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_results(
    rows: Sequence[ResultRow],
    machine: Mapping[str, object],
    *,
    out: Path,
    suites: Sequence[str],
    remarks: str,
    started: dt.datetime,
    methods: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """`<timestamp>-<suites>.json` and `.md` in `out`, and `latest.md` as a copy of the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{'+'.join(suites)}"
    started_at = started.isoformat(timespec="seconds")
    payload = {
        "started_at": started_at,
        "suites": list(suites),
        "machine": dict(machine),
        "remarks": remarks,
        "methods": dict(methods or {}),
        "rows": [with_ratios(row) for row in rows],
    }
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    markdown = render_markdown(
        rows,
        machine,
        title=f"MarketPulse benchmark: {', '.join(suites)}",
        started_at=started_at,
        remarks=remarks,
        methods=methods or {},
    )
    md_path.write_text(markdown)
    (out / "latest.md").write_text(markdown)
    return json_path, md_path
