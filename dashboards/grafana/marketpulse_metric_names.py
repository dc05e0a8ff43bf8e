"""Which metric names PromQL uses, and which sample names the code's prometheus_client metrics expose.

Definitions come from the source (`ast`), so nothing is imported and nothing registers twice: every call
`Counter("name", ...)`, `Gauge(...)`, `Histogram(...)`, `Summary(...)`, `Info(...)` or `Enum(...)` with a
literal name. Each becomes the samples a scrape shows (prometheus_client's rules): a counter `x` or
`x_total` exposes `x_total` (and `x_created`), a histogram `x` exposes `x_bucket`, `x_sum`, `x_count`
(and `x_created`), and so on. A query must use one of those sample names: `rate(x[5m])` of a counter
defined as `x_total` is a mistake this catches, as is a histogram used without `_bucket`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

METRIC_CLASSES: Final = ("Counter", "Gauge", "Histogram", "Summary", "Info", "Enum")

# Suffixes each kind of metric adds to its name in the text exposition format.
SAMPLE_SUFFIXES: Final[Mapping[str, tuple[str, ...]]] = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


@dataclass(frozen=True)
class Definition:
    name: str  # as written in the source
    kind: str  # one of METRIC_CLASSES
    where: str  # file:line

    @property
    def family(self) -> str:
        """The name without the suffix prometheus_client strips (a counter's `_total`)."""
        return self.name.removesuffix("_total") if self.kind == "Counter" else self.name

    @property
    def samples(self) -> frozenset[str]:
        return frozenset(self.family + suffix for suffix in SAMPLE_SUFFIXES[self.kind])


def _metric_classes(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """Local names bound to prometheus_client's metric classes, and local names of the module itself."""
    classes: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "prometheus_client":
            for alias in node.names:
                if alias.name in METRIC_CLASSES:
                    classes[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "prometheus_client"}
    return classes, modules


def definitions_in(source: str, filename: str = "<string>") -> list[Definition]:
    """Metric definitions in one module's source (calls of prometheus_client's classes only)."""
    tree = ast.parse(source, filename)
    classes, modules = _metric_classes(tree)
    found: list[Definition] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            kind = classes.get(func.id)
        elif (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules
        ):
            kind = func.attr if func.attr in METRIC_CLASSES else None
        else:
            kind = None
        if kind is None:
            continue
        name_arg = (
            node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
        )
        if not (isinstance(name_arg, ast.Constant) and isinstance(name_arg.value, str)):
            raise ValueError(
                f"{filename}:{node.lineno}: a {kind} whose name is not a string literal cannot be checked; "
                "write the full metric name as the first argument"
            )
        if any(k.arg in ("namespace", "subsystem", "unit") for k in node.keywords):
            raise ValueError(
                f"{filename}:{node.lineno}: metric {name_arg.value!r} sets namespace/subsystem/unit; "
                "write the full name as the first argument so it can be found by reading the source"
            )
        found.append(Definition(name_arg.value, kind, f"{filename}:{node.lineno}"))
    return found


def definitions(roots: Iterable[Path]) -> list[Definition]:
    """Metric definitions in every module under `roots` that imports prometheus_client."""
    found: list[Definition] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            source = path.read_text()
            if "prometheus_client" in source:
                found += definitions_in(source, str(path))
    return found


def exposed(defs: Iterable[Definition]) -> dict[str, Definition]:
    """Sample name -> the definition that exposes it."""
    return {sample: d for d in defs for sample in d.samples}


# --- PromQL --------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*|[a-zA-Z_:][a-zA-Z0-9_:]*|\S")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$", re.DOTALL)
KEYWORDS: Final = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
    | {"inf", "nan", "atan2", "start", "end"}
)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression (or a Grafana `label_values(...)` query) selects."""
    if match := _LABEL_VALUES.match(expr):
        expr = match.group(1)
    names: set[str] = set()
    for op, value in _NAME_MATCHER.findall(expr):
        if op != "=":
            raise ValueError(f"{expr!r}: a __name__{op} matcher cannot be checked; name the metric")
        names.add(value)
    text = _GRAFANA_VARIABLE.sub(" ", expr)
    text = _STRING.sub('""', text)
    while True:  # innermost first, so nested subqueries and matchers all go
        stripped = _BRACKETS.sub(" ", _BRACES.sub(" ", text))
        if stripped == text:
            break
        text = stripped
    text = _GROUPING.sub(" ", text)
    tokens = [m.group(0) for m in _TOKEN.finditer(text)]
    for i, token in enumerate(tokens):
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", token) or token.lower() in KEYWORDS:
            continue
        if i + 1 < len(tokens) and tokens[i + 1] == "(":
            continue  # a function or aggregation
        names.add(token)
    return names


@dataclass(frozen=True)
class Problem:
    where: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name}: {self.why}"


def check(
    expressions: Mapping[str, str], defined: Mapping[str, Definition], external: Mapping[str, str]
) -> list[Problem]:
    """Names in `expressions` (where -> PromQL) that no definition exposes and that are not `external`."""
    families = {d.family: d for d in defined.values()}
    problems: list[Problem] = []
    for where, expr in expressions.items():
        for name in sorted(metric_names(expr)):
            if name in defined or name in external:
                continue
            if name in families:
                d = families[name]
                hint = ", ".join(sorted(d.samples))
                why = f"{d.kind} {d.name!r} ({d.where}) exposes {hint}, not the bare name"
            else:
                why = "no metric definition in the code exposes this name"
            problems.append(Problem(where, name, why))
    return problems


def dashboard_expressions(board: Mapping[str, Any], label: str) -> dict[str, str]:
    """where -> PromQL of every panel target (rows' nested panels too) and query variable."""
    found: dict[str, str] = {}

    def panels(items: list[dict[str, Any]]) -> None:
        for panel in items:
            for target in panel.get("targets") or []:
                if "expr" in target:
                    found[f"{label} panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}"] = (
                        target["expr"]
                    )
            panels(panel.get("panels") or [])

    panels(board.get("panels") or [])
    for variable in (board.get("templating") or {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            found[f"{label} variable ${variable['name']}"] = (
                query["query"] if isinstance(query, dict) else query
            )
    return found


def rule_expressions(rule: Mapping[str, Any], label: str) -> dict[str, str]:
    """where -> PromQL of every alerting and recording rule of a PrometheusRule manifest."""
    found: dict[str, str] = {}
    for group in rule["spec"]["groups"]:
        for r in group.get("rules", []):
            found[f"{label} rule {r.get('alert') or r.get('record')!r}"] = r["expr"]
    return found
