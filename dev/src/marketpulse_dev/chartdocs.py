"""The chart's README, generated from its values.yaml in helm-docs' convention.

A `# -- description` comment (continued by the `#` lines under it) right above a key documents it;
plain `#` comments above the `# --` line are section notes and stay out of the table. Every leaf
needs one, unless a block above it has one (`resources`, a free-form map): then the block is the row.
The README is `README.md.gotmpl` with helm-docs' template names filled in, so helm-docs itself could
take over from here without a change to the template:

    python -m marketpulse_dev.chartdocs            # rewrite charts/marketpulse/README.md
    python -m marketpulse_dev.chartdocs --check    # exit 1 if the committed README is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[3] / "charts" / "marketpulse"
TEMPLATE = "README.md.gotmpl"
README = "README.md"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[^\s#:-][^:]*?):(\s|$)")
_TEMPLATE_CALL = re.compile(r"\{\{-?\s*template\s+\"(?P<name>[\w.]+)\"\s+\.\s*-?\}\}")


class UndocumentedValuesError(ValueError):
    """Leaves of values.yaml with no `# --` comment of their own or of a block above them."""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


def _comment_above(lines: list[str], number: int) -> str | None:
    """The `# --` description right above line `number`, or None."""
    block: list[str] = []
    for line in reversed(lines[:number]):
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        block.insert(0, stripped)
    for start, line in enumerate(block):
        if line.startswith("# --"):
            parts = [
                line.removeprefix("# --").strip(),
                *(rest.lstrip("#").strip() for rest in block[start + 1 :]),
            ]
            return " ".join(p for p in parts if p)
    return None


def _descriptions(lines: list[str]) -> dict[tuple[str, ...], str | None]:
    """Key path -> its `# --` description, for every mapping key of values.yaml, in file order."""
    found: dict[tuple[str, ...], str | None] = {}
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = _KEY.match(line)
        if not match:
            continue
        indent, key = len(match["indent"]), match["key"].strip().strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        found[tuple(k for _, k in stack)] = _comment_above(lines, number)
    return found


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _lookup(values: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = values
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def value_rows(values_yaml: str) -> list[Row]:
    """One row per documented key; raises UndocumentedValuesError naming each leaf nobody documents."""
    values = yaml.safe_load(values_yaml) or {}
    described = _descriptions(values_yaml.splitlines())
    rows, undocumented = [], []
    for path, description in described.items():
        present, value = _lookup(values, path)
        if not present:  # a key inside a list item (the commented `pipelines` example has none)
            continue
        covered = any(described.get(path[:i]) for i in range(1, len(path)))
        if description is None:
            leaf = not isinstance(value, dict) or not value
            if leaf and not covered:
                undocumented.append(".".join(path))
            continue
        documented_below = isinstance(value, dict) and any(described.get((*path, child)) for child in value)
        default = "" if documented_below else f"`{json.dumps(value, separators=(',', ':'))}`"
        rows.append(Row(".".join(path), _type(value), default, description))
    if undocumented:
        raise UndocumentedValuesError(
            "values.yaml: these values have no `# -- description` comment: " + ", ".join(undocumented)
        )
    return rows


def _pipes(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(text: str) -> str:
    """Text for a table cell: `|` escaped, and `<`/`>` outside code spans, which Markdown would
    otherwise take for HTML tags (`<release>` would vanish)."""
    parts = _pipes(text).split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def values_table(rows: list[Row]) -> str:
    lines = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    lines += [f"| {r.key} | {r.type} | {_pipes(r.default)} | {_cell(r.description)} |" for r in rows]
    return "\n".join(lines)


def render(chart: Path = CHART) -> str:
    """The README from the chart's README.md.gotmpl, Chart.yaml and values.yaml."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    table = values_table(value_rows((chart / "values.yaml").read_text()))
    known = {
        "chart.name": str(meta["name"]),
        "chart.description": " ".join(str(meta.get("description", "")).split()),
        "chart.version": str(meta["version"]),
        "chart.appVersion": str(meta.get("appVersion", "")),
        "chart.kubeVersion": str(meta.get("kubeVersion", "")),
        "chart.valuesTable": table,
        "chart.valuesSection": f"## Values\n\n{table}",
    }

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in known:
            raise ValueError(f"{TEMPLATE}: unknown template {name!r}; known: {', '.join(sorted(known))}")
        return known[name]

    return _TEMPLATE_CALL.sub(fill, (chart / TEMPLATE).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marketpulse_dev.chartdocs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed README is stale")
    parser.add_argument("--chart", type=Path, default=CHART, help="the chart's folder")
    args = parser.parse_args(argv)
    try:
        text = render(args.chart)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = args.chart / README
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is stale: run `make chart-docs`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
