"""Generate the StockPipeline CustomResourceDefinition from the pydantic models.

The JSON Schema that pydantic emits is not what the API server accepts: it uses `$ref`, `anyOf`
with null for optional fields, `const`, numeric `exclusiveMinimum` and `additionalProperties:
false`. `structural()` turns it into a structural OpenAPI v3 schema and refuses anything it does
not know, so a new kind of field is a deliberate decision rather than a CRD the server rejects.

    python -m marketpulse.contract.api.crd            # rewrite the chart's CRD
    python -m marketpulse.contract.api.crd --check    # exit 1 if the committed CRD is stale
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from marketpulse.contract.api.v1alpha1 import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    StockPipeline,
)

CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_RELATIVE_PATH = Path("charts", "marketpulse", "crds", f"{CRD_NAME}.yaml")
HEADER = (
    "# Generated from marketpulse.contract.api by `python -m marketpulse.contract.api.crd`; do not edit.\n"
)

# The order keys appear in, for a stable, readable file.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "items",
    "additionalProperties",
    "required",
    "properties",
    "x-kubernetes-validations",
)
_RULE_KEY_ORDER = ("rule", "message", "fieldPath", "reason")
# pydantic keys that carry nothing the API server needs; `additionalProperties: false` (beside
# properties, which the API server forbids) is dropped too: unknown fields are refused by pruning and
# kubectl's strict field validation. A schema there is a map's values and is kept.
_DROPPED = {"title", "$defs"}


class SchemaError(ValueError):
    """The models use a JSON Schema construct that has no structural equivalent."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline `$ref` and unwrap `anyOf: [X, null]`; keywords beside them (description, default) win."""
    siblings = {k: v for k, v in node.items() if k not in ("$ref", "anyOf")}
    if "$ref" in node:
        # A copy per use: shared lists would come out of yaml.safe_dump as anchors and aliases.
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        return {**_resolve(target, defs), **siblings}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != 1:
            raise SchemaError(f"only Optional[X] unions have a structural form, got anyOf {node['anyOf']}")
        if siblings.get("default", ...) is None:
            del siblings["default"]
        return {**_resolve(branches[0], defs), **siblings}
    return node


def structural(node: dict[str, Any], defs: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Turn one pydantic JSON Schema node into a structural OpenAPI v3 schema node."""
    node = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "uniqueItems":
            # Quadratic uniqueness checks are refused by the API server; a set list is the equivalent.
            out.setdefault("x-kubernetes-list-type", "set")
        elif key == "properties":
            out[key] = {name: structural(sub, defs, f"{where}.{name}") for name, sub in value.items()}
        elif key == "x-kubernetes-validations":
            # pydantic sorts the keys of extra schema data; put the rule first, as people write it.
            out[key] = [{k: entry[k] for k in _RULE_KEY_ORDER if k in entry} for entry in value]
        elif key == "items":
            out[key] = structural(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs, f"{where}{{}}")
            elif value is not False and where != ".metadata":  # metadata is the API server's
                raise SchemaError(
                    f"{where or '<root>'}: additionalProperties {value!r} has no structural form"
                )
        elif key in _KEY_ORDER:
            out[key] = value
        else:
            raise SchemaError(f"{where or '<root>'}: no structural form for JSON Schema keyword {key!r}")
    if "type" not in out:
        raise SchemaError(f"{where or '<root>'}: a structural schema needs a type on every node")
    return {key: out[key] for key in _KEY_ORDER if key in out}


def openapi_schema() -> dict[str, Any]:
    source = StockPipeline.model_json_schema(by_alias=True, mode="validation")
    schema = structural(source, source.get("$defs", {}))
    # The API server owns apiVersion, kind and metadata; only the name is constrained here, and
    # that by the CEL rule on the root, which needs metadata.name declared for its fieldPath.
    schema["properties"]["apiVersion"] = {"description": "marketpulse.io/v1alpha1", "type": "string"}
    schema["properties"]["kind"] = {"description": "StockPipeline", "type": "string"}
    schema["properties"]["metadata"] = {"type": "object", "properties": {"name": {"type": "string"}}}
    schema["required"] = ["spec"]
    return schema


PRINTER_COLUMNS = [
    {"name": "Symbols", "type": "string", "jsonPath": ".spec.watchlist", "description": "Watchlist."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Source", "type": "string", "jsonPath": ".spec.source.type", "priority": 1},
    {"name": "Warehouse", "type": "string", "jsonPath": ".spec.warehouse.type", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def render_crd() -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of StockPipeline."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "marketpulse", "app.kubernetes.io/part-of": "marketpulse"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["marketpulse"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    return HEADER + yaml.safe_dump(render_crd(), sort_keys=False, width=100, allow_unicode=True)


def default_output() -> Path:
    # The module lives at src/marketpulse/contract/api/ in the source tree.
    return Path(__file__).resolve().parents[4] / CRD_RELATIVE_PATH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marketpulse.contract.api.crd", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=None, help="file to write ('-' for stdout)")
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date")
    args = parser.parse_args(argv)
    text = render_crd_yaml()
    if args.output == Path("-"):
        sys.stdout.write(text)
        return 0
    output: Path = args.output or default_output()
    if args.check:
        if output.is_file() and output.read_text() == text:
            return 0
        print(f"{output} is out of date: run python -m marketpulse.contract.api.crd", file=sys.stderr)
        return 1
    if not output.parent.is_dir():
        print(f"{output.parent} does not exist: run from a source checkout or pass --output", file=sys.stderr)
        return 2
    output.write_text(text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
