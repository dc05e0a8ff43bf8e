"""The generated CRD is one the API server accepts and that refuses what the models refuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from marketpulse.contract.api.crd import SchemaError, main, render_crd, render_crd_yaml, structural

VERSION = render_crd()["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


def test_the_schema_is_structural_every_node_typed_without_refs_or_unions() -> None:
    forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "const", "title", "uniqueItems", "nullable"}

    for path, node in nodes(SCHEMA):
        assert "type" in node, f"{path or '<root>'} has no type"
        assert not forbidden & node.keys(), f"{path} uses {forbidden & node.keys()}"
        if "additionalProperties" in node:  # a map: its values' schema, never beside properties
            assert isinstance(node["additionalProperties"], dict), f"{path}: unknown fields are pruned"
            assert "properties" not in node, f"{path}: a map declares no properties"
        assert "x-kubernetes-preserve-unknown-fields" not in node, f"{path} keeps unknown fields"


def test_every_string_and_list_is_bounded_so_that_cel_costs_stay_within_the_limits() -> None:
    for path, node in nodes(SCHEMA):
        if path in (".apiVersion", ".kind", ".metadata.name"):
            continue  # owned and bounded by the API server itself
        if node["type"] == "string" and "enum" not in node and node.get("format") != "date-time":
            assert "maxLength" in node, f"{path} is an unbounded string"
        if node["type"] == "array":
            assert "maxItems" in node, f"{path} is an unbounded list"
        if "additionalProperties" in node:
            assert "maxProperties" in node, f"{path} is an unbounded map"


def test_the_watchlist_is_a_set_of_upper_case_tickers_between_1_and_200() -> None:
    watchlist = SCHEMA["properties"]["spec"]["properties"]["watchlist"]

    assert watchlist["x-kubernetes-list-type"] == "set"
    assert (watchlist["minItems"], watchlist["maxItems"]) == (1, 200)
    assert watchlist["items"]["pattern"] == r"^[A-Z][A-Z0-9.\-]{0,9}$"
    assert SCHEMA["properties"]["spec"]["required"] == ["watchlist"]


def test_nested_objects_default_to_the_model_defaults_so_the_server_fills_them_in() -> None:
    spec = SCHEMA["properties"]["spec"]["properties"]

    assert spec["source"]["default"] == {"type": "synthetic"}
    assert spec["kafka"]["default"]["topicBackend"] == "strimzi"
    assert spec["warehouse"]["default"] == {"type": "duckdb"}
    assert spec["deletionPolicy"]["default"] == "Retain"


def test_cross_field_and_transition_rules_carry_messages() -> None:
    rules = [rule for _, node in nodes(SCHEMA) for rule in node.get("x-kubernetes-validations", [])]

    assert all(rule["message"] for rule in rules)
    transitions = {rule["rule"] for rule in rules if "oldSelf" in rule["rule"]}
    assert "self.partitions >= oldSelf.partitions" in transitions
    assert any("self.bucket == oldSelf.bucket" in rule for rule in transitions)


def test_the_crd_is_namespaced_with_short_name_sp_a_status_subresource_and_printer_columns() -> None:
    crd = render_crd()

    assert crd["metadata"]["name"] == "stockpipelines.marketpulse.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["sp"]
    assert VERSION["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"] if "priority" not in c}
    assert columns == {
        "Symbols": ".spec.watchlist",
        "Phase": ".status.phase",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Age": ".metadata.creationTimestamp",
    }


def test_rendering_twice_gives_identical_yaml_without_anchors() -> None:
    text = render_crd_yaml()

    assert text == render_crd_yaml()
    assert "&id" not in text
    assert "*id" not in text


def test_a_union_that_has_no_structural_form_is_refused_rather_than_emitted() -> None:
    with pytest.raises(SchemaError, match="only Optional"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})


def test_the_check_mode_of_the_cli_fails_on_a_stale_file_and_passes_once_regenerated(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    target.write_text("stale: true\n")

    assert main(["--check", "--output", str(target)]) == 1
    assert main(["--output", str(target)]) == 0
    assert main(["--check", "--output", str(target)]) == 0
    assert yaml.safe_load(target.read_text()) == render_crd()
