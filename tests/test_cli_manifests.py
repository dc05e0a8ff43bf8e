"""`marketpulse validate -f` and `marketpulse render -f`: the API's rules on files, each problem as
FILE:LINE: field: message with exit 2 and never a traceback, and the operator's children without a cluster."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from marketpulse.cli import app
from marketpulse.contract.api.documents import MAX_BYTES, MAX_VALUES

SAMPLES = sorted((Path(__file__).parents[1] / "operator" / "config" / "samples").glob("stockpipeline-*.yaml"))
DUCKDB_SAMPLE = SAMPLES[0].with_name("stockpipeline-synthetic-duckdb.yaml")

GOOD = """\
apiVersion: marketpulse.io/v1alpha1
kind: StockPipeline
metadata:
  name: {name}
spec:
  watchlist: [AAPL, MSFT]
"""


def invoke(*args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), input=stdin)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.exception
    )
    return result


def write(tmp_path: Path, text: str | bytes, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- validate ---------------------------------------------------------------------------------------


def test_every_sample_is_valid_and_named_with_exit_0() -> None:
    result = invoke("validate", *(arg for sample in SAMPLES for arg in ("-f", str(sample))))
    assert result.exit_code == 0, result.output
    for sample in SAMPLES:
        name = yaml.safe_load(sample.read_text())["metadata"]["name"]
        assert f"{sample}: StockPipeline {name} is valid" in result.stdout


def test_standard_input_and_several_documents_are_read_and_other_kinds_are_skipped() -> None:
    stream = GOOD.format(name="one") + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys}\n---\n"
    stream += GOOD.format(name="two")
    result = invoke("validate", "-f", "-", stdin=stream)
    assert result.exit_code == 0, result.output
    assert "<stdin>: StockPipeline one is valid" in result.stdout
    assert "<stdin>: StockPipeline two is valid" in result.stdout
    assert "<stdin>:8: skipped Secret/keys: not a StockPipeline" in result.stderr


BAD_FIELDS = """\
apiVersion: marketpulse.io/v1alpha1
kind: StockPipeline
metadata:
  name: demo
spec:
  watchlist: [AAPL, msft]
  kafka:
    partitions: 0
    replicas: 1
    colour: blue
  source:
    type: replay
"""


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (6, "spec.watchlist[1]", "String should match pattern"),
        (8, "spec.kafka.partitions", "greater than or equal to 1 (got 0)"),
        (10, "spec.kafka.colour", "unknown field"),
        # A missing field is reported on the line of the nearest field that is there.
        (11, "spec.source.replay", "source.type replay needs source.replay.uri"),
    ],
)
def test_each_invalid_field_is_reported_with_its_file_line_and_the_apis_message(
    tmp_path: Path, line: int, field: str, message: str
) -> None:
    path = write(tmp_path, BAD_FIELDS)
    result = invoke("validate", "-f", str(path))
    assert result.exit_code == 2
    [reported] = [x for x in result.stderr.splitlines() if f": {field}: " in x]
    assert reported.startswith(f"{path}:{line}: {field}: "), reported
    assert message in reported


def test_a_rule_of_the_crd_is_reported_with_its_cel_message(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.format(name="Not_A_Name"))
    result = invoke("validate", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path}:4: metadata.name: metadata.name must be at most" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- just\n- a list\n", ":1: the document: expected a mapping of fields, got list"),
        ("a scalar\n", ":1: the document: expected a mapping of fields, got str"),
        (
            GOOD.format(name="x").replace("v1alpha1", "v9"),
            ":1: apiVersion: Input should be 'marketpulse.io/v1alpha1' (got 'marketpulse.io/v9')",
        ),
        (
            GOOD.format(name="x").replace("kind: StockPipeline", "kind: StockPipelin"),
            ":2: kind: Input should be 'StockPipeline'",
        ),
        (
            GOOD.format(name="x").replace("apiVersion: marketpulse.io/v1alpha1\n", ""),
            ":1: apiVersion: Required",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", ": no StockPipeline in it"),
        ("", ": no StockPipeline in it"),
        ("key: [unclosed\n", ":2: not valid YAML: while parsing a flow sequence"),
        ("a: 1\n\tb: 2\n", ":2: not valid YAML"),
        ("!!python/object:os.system {}\n", ":1: not valid YAML: could not determine a constructor"),
        (
            GOOD.format(name="x") + "  watchlist: [SPY]\n",
            ":7: spec.watchlist: duplicate key 'watchlist' (first at line 6)",
        ),
        ("? [a, b]\n: c\n", ":1: a key must be a plain string"),
        ("a: &a [*a]\n", ":1: a[0]: an alias refers to a value that contains it"),
    ],
)
def test_a_file_that_is_no_valid_stockpipeline_is_named_with_its_line_and_exit_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    result = invoke("validate", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path}{expected}" in result.stderr
    assert "is valid" not in result.stdout


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 values
    path = write(tmp_path, "\n".join(lines) + "\n")
    result = invoke("validate", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path}:1: more than {MAX_VALUES} values once its aliases are expanded" in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[" * 5000 + "]" * 5000, ": nested too deeply to read"),
        (
            "a:\n" + "".join(f"{'  ' * i}b{i}:\n" for i in range(1, 80)) + "    x: 1\n",
            ": nested more than 64",
        ),
        (b"\xff\xfe not text", ":1: not UTF-8 text"),
        (b"a" * (MAX_BYTES + 1), ": larger than 3 MiB"),
    ],
    ids=["brackets", "mapping", "binary", "huge"],
)
def test_hostile_files_are_bounded_and_reported_without_a_traceback(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = write(tmp_path, content)
    result = invoke("validate", "-f", str(path))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.stderr.startswith(str(path))


def test_a_file_that_cannot_be_read_is_named_with_exit_2(tmp_path: Path) -> None:
    missing = invoke("validate", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file" in missing.stderr
    directory = invoke("validate", "-f", str(tmp_path))
    assert directory.exit_code == 2
    assert f"{tmp_path}: is a directory; expected a YAML file" in directory.stderr


def test_one_bad_file_among_good_ones_fails_the_run_and_the_good_ones_are_still_checked(
    tmp_path: Path,
) -> None:
    bad = write(tmp_path, GOOD.format(name="x").replace("AAPL", "aapl"), "bad.yaml")
    result = invoke("validate", "-f", str(DUCKDB_SAMPLE), "-f", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:6: spec.watchlist[0]" in result.stderr


# --- render -----------------------------------------------------------------------------------------

ALL_KINDS = {
    "KafkaTopic",
    "PersistentVolumeClaim",
    "Deployment",
    "CronJob",
    "Service",
    "NetworkPolicy",
    "ServiceMonitor",
    "PrometheusRule",
}


def test_render_prints_the_operators_children_as_a_yaml_stream_in_the_default_namespace() -> None:
    result = invoke("render", "-f", str(DUCKDB_SAMPLE))
    assert result.exit_code == 0, result.output
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m is not None]
    assert {m["kind"] for m in manifests} == ALL_KINDS
    assert {m["metadata"]["namespace"] for m in manifests} == {"default"}
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/marketpulse/marketpulse:{version('marketpulse')}"


def test_render_json_is_a_kubectl_style_list_and_the_namespace_option_places_the_pipeline() -> None:
    result = invoke("render", "-f", str(DUCKDB_SAMPLE), "-o", "json", "-n", "trading")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert {m["kind"] for m in listed["items"]} == ALL_KINDS
    assert {m["metadata"]["namespace"] for m in listed["items"]} == {"trading"}


def test_render_uses_the_operators_defaults_not_this_shells_operator_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MARKETPULSE_IMAGE", "registry.example/other:1")
    monkeypatch.setenv("MARKETPULSE_NETWORK_POLICIES", "false")
    manifests = json.loads(invoke("render", "-f", str(DUCKDB_SAMPLE), "-o", "json").stdout)["items"]
    assert "NetworkPolicy" in {m["kind"] for m in manifests}
    assert "registry.example/other:1" not in json.dumps(manifests)


def test_render_leaves_out_the_kinds_a_cluster_without_strimzi_and_prometheus_operator_lacks() -> None:
    bare = json.loads(invoke("render", "-f", str(DUCKDB_SAMPLE), "-o", "json", "-a", "v1").stdout)["items"]
    assert {m["kind"] for m in bare} == ALL_KINDS - {"KafkaTopic", "ServiceMonitor", "PrometheusRule"}
    older = invoke("render", "-f", str(DUCKDB_SAMPLE), "-o", "json", "-a", "kafka.strimzi.io/v1beta2")
    topics = [m for m in json.loads(older.stdout)["items"] if m["kind"] == "KafkaTopic"]
    assert topics
    assert {t["apiVersion"] for t in topics} == {"kafka.strimzi.io/v1beta2"}


def test_render_of_an_invalid_file_reports_like_validate_prints_nothing_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_FIELDS)
    result = invoke("render", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path}:8: spec.kafka.partitions:" in result.stderr
    assert result.stdout == ""


def test_render_refuses_a_namespace_option_that_contradicts_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.format(name="x").replace("  name: x\n", "  name: x\n  namespace: team-a\n"))
    result = invoke("render", "-f", str(path), "-n", "team-b")
    assert result.exit_code == 2
    assert "metadata.namespace: team-a does not match --namespace team-b" in result.stderr
    assert result.stdout == ""
