"""charts/marketpulse/README.md is generated from values.yaml (helm-docs' `# --` comments) and
README.md.gotmpl: the committed file is what the generator makes, and every value is documented."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marketpulse_dev import chartdocs

CHART = Path(__file__).parents[1] / "marketpulse"


def test_the_committed_readme_is_what_make_chart_docs_generates() -> None:
    assert (CHART / "README.md").read_text() == chartdocs.render(CHART), "run `make chart-docs`"


def test_the_check_mode_fails_on_a_stale_readme_and_passes_once_regenerated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "marketpulse"
    shutil.copytree(CHART, chart)
    (chart / "README.md").write_text("# stale\n")

    assert chartdocs.main(["--check", "--chart", str(chart)]) == 1
    assert "is stale: run `make chart-docs`" in capsys.readouterr().err
    assert chartdocs.main(["--chart", str(chart)]) == 0
    assert chartdocs.main(["--check", "--chart", str(chart)]) == 0


def test_every_value_of_the_chart_has_a_row_with_its_default() -> None:
    rows = {row.key: row for row in chartdocs.value_rows((CHART / "values.yaml").read_text())}

    assert rows["metrics.serviceMonitor.labels"].default == "`{}`"
    assert rows["metrics.prometheusRule.labels"].type == "object"
    assert rows["tests.dashboards"].default == "`[]`"
    assert rows["operator.replicas"] == chartdocs.Row(
        "operator.replicas",
        "int",
        "`1`",
        "Replicas of the operator. Replicas meet in a kopf peering object, so only one acts at a time; "
        "more than one only shortens fail-over.",
    )
    # A block documented as a whole is one row; its leaves are not rows of their own.
    assert rows["resources"].default.startswith('`{"requests":')
    assert "resources.requests.cpu" not in rows
    # A block whose keys are documented one by one shows no default of its own.
    assert rows["operator.cleanup"].default == ""
    assert "operator.cleanup.attempts" in rows


def test_a_value_without_a_description_is_refused_naming_its_key() -> None:
    values = "# -- Documented.\nshown: 1\nblock:\n  # a plain comment is no description\n  hidden: x\n"
    with pytest.raises(chartdocs.UndocumentedValuesError, match=r"comment: block\.hidden$"):
        chartdocs.value_rows(values)


def test_section_notes_above_the_description_and_continuation_lines_are_handled() -> None:
    values = "# A section note, not part of the row.\n# -- First line\n# and its continuation.\nkey: v\n"
    [row] = chartdocs.value_rows(values)
    assert row.description == "First line and its continuation."


def test_table_cells_escape_pipes_and_angle_brackets_outside_code() -> None:
    table = chartdocs.values_table([chartdocs.Row("k", "string", '`"a|b"`', "<name> or `<name>` | x")])
    assert table.splitlines()[-1] == '| k | string | `"a\\|b"` | &lt;name&gt; or `<name>` \\| x |'


def test_an_unknown_template_name_is_refused_naming_it(tmp_path: Path) -> None:
    chart = tmp_path / "marketpulse"
    shutil.copytree(CHART, chart)
    (chart / "README.md.gotmpl").write_text('{{ template "chart.badges" . }}\n')
    with pytest.raises(ValueError, match=r"unknown template 'chart\.badges'"):
        chartdocs.render(chart)
    assert chartdocs.main(["--chart", str(chart)]) == 2
