"""Building the MarketPulse image with buildah: what the cache key covers, where Debian packages come from,
what a missing prerequisite says, and (marked `image`) a real build whose entrypoint runs as uid 10001."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from marketpulse_dev.localenv import image
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.image import DockerIgnore, Target, context_files, debian_mirror, input_hash

REPO = Path(__file__).parents[1]


def small_repo(tmp_path: Path) -> Path:
    """A build context shaped like the repository's, with the repository's own ignore file."""
    (tmp_path / "images" / "marketpulse").mkdir(parents=True)
    (tmp_path / image.DOCKERFILE).write_text("FROM scratch\n")
    shutil.copy(REPO / image.IGNOREFILE, tmp_path / image.IGNOREFILE)
    for rel, text in {
        "pyproject.toml": "[project]\nname = 'x'\nversion = '1'\n",
        "requirements.lock": "",
        "README.md": "",
        "src/marketpulse/app.py": "x = 1\n",
        "src/marketpulse/__pycache__/app.cpython-311.pyc": "bytecode",
        "tests/test_app.py": "",
        "dbt/models/a.sql": "select 1",
        "dbt/target/manifest.json": "{}",
        "docs/notes.md": "",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_the_context_is_what_the_ignore_file_admits(tmp_path: Path) -> None:
    root = small_repo(tmp_path)
    assert context_files(root, DockerIgnore.read(root / image.IGNOREFILE)) == [
        "README.md",
        "dbt/models/a.sql",
        "pyproject.toml",
        "requirements.lock",
        "src/marketpulse/app.py",
    ]


def test_the_image_hash_changes_with_a_code_file_and_not_with_an_ignored_one(tmp_path: Path) -> None:
    root = small_repo(tmp_path)
    before = input_hash(root, "localhost/base:1")
    for ignored in ("docs/notes.md", "tests/test_app.py", "dbt/target/manifest.json"):
        (root / ignored).write_text("changed")
    (root / "src/marketpulse/__pycache__/app.cpython-311.pyc").write_text("other bytecode")
    assert input_hash(root, "localhost/base:1") == before
    (root / "src/marketpulse/app.py").write_text("x = 2\n")
    after_code = input_hash(root, "localhost/base:1")
    assert after_code != before
    (root / image.DOCKERFILE).write_text("FROM scratch\nUSER 1\n")
    assert input_hash(root, "localhost/base:1") not in {before, after_code}


def test_the_image_hash_changes_with_the_base_and_a_new_executable_bit(tmp_path: Path) -> None:
    root = small_repo(tmp_path)
    before = input_hash(root, "localhost/base:1")
    assert input_hash(root, "localhost/base:2") != before
    (root / "src/marketpulse/app.py").chmod(0o755)
    assert input_hash(root, "localhost/base:1") != before


def test_the_build_reads_a_snapshot_of_exactly_the_context_and_unchanged_files_keep_their_times(
    tmp_path: Path,
) -> None:
    root = small_repo(tmp_path / "repo")
    snapshot = image.snapshot_context(root, tmp_path / "snapshot")
    assert input_hash(snapshot, "b") == input_hash(root, "b")
    assert not (snapshot / "docs").exists()
    assert not (snapshot / "src/marketpulse/__pycache__").exists()
    kept = (snapshot / "README.md").stat().st_mtime_ns
    (root / "src/marketpulse/app.py").unlink()
    (root / "src/marketpulse/new.py").write_text("y = 1\n")
    image.snapshot_context(root, snapshot)
    assert input_hash(snapshot, "b") == input_hash(root, "b")
    assert not (snapshot / "src/marketpulse/app.py").exists()
    assert (snapshot / "README.md").stat().st_mtime_ns == kept


def test_dockerignore_follows_docker_semantics() -> None:
    ignore = DockerIgnore(["*", "!src/**", "**/__pycache__", "!src/keep/__pycache__/x.pyc", "/top.txt"])
    assert ignore.excluded("README.md")
    assert ignore.excluded("docs/a/b.md")
    assert not ignore.excluded("src/a/b.py")
    assert ignore.excluded("src/a/__pycache__/b.pyc")  # a matching parent directory excludes its files
    assert not ignore.excluded("src/keep/__pycache__/x.pyc")  # the last matching line wins
    assert ignore.may_readmit_below("src")
    assert not ignore.may_readmit_below("docs")
    assert DockerIgnore(["a?c", "d*/e"]).excluded("abc")
    assert not DockerIgnore(["a?c"]).excluded("a/c")
    assert DockerIgnore(["d*/e"]).excluded("dir/e/f")


def test_the_repository_context_holds_the_code_and_none_of_the_tests_or_bytecode() -> None:
    files = context_files(REPO, DockerIgnore.read(REPO / image.IGNOREFILE))
    assert "src/marketpulse/cli/__init__.py" in files
    assert "src/marketpulse/operator/main.py" in files
    assert "dbt/dbt_project.yml" in files
    # dbt/tests are the dbt project's data tests, which `dbt build` runs in the image.
    python_tests = [f for f in files if "/tests/" in f and not f.startswith("dbt/")]
    assert not [*python_tests, *(f for f in files if f.endswith(".pyc") or f.startswith(".venv/"))]
    # The development harness (marketpulse-dev) is never sent to the build.
    assert not [f for f in files if f.startswith("dev/")]


def test_the_mirror_is_read_from_deb822_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETPULSE_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb-src deb\nURIs: http://mirror.example/debian\n  http://second.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "other.sources.disabled").write_text(
        "Types: deb\nURIs: http://wrong.example/\nSuites: bookworm\n"
    )
    assert debian_mirror("bookworm", tmp_path) == "http://mirror.example/debian"


def test_the_mirror_is_read_from_a_one_line_sources_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARKETPULSE_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] https://mirror.example/debian bookworm main\n"
    )
    assert debian_mirror("bookworm", tmp_path) == "https://mirror.example/debian"


def test_without_a_mirror_for_the_suite_the_error_says_how_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARKETPULSE_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text("deb http://mirror.example/debian trixie main\n")
    with pytest.raises(
        ComponentError, match=r"no `deb` entry for suite 'bookworm'.*MARKETPULSE_DEBIAN_MIRROR"
    ):
        debian_mirror("bookworm", tmp_path)
    monkeypatch.setenv("MARKETPULSE_DEBIAN_MIRROR", "http://chosen.example/debian")
    assert debian_mirror("bookworm", tmp_path) == "http://chosen.example/debian"


def test_missing_prerequisites_are_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image.os, "geteuid", lambda: 1000)
    with pytest.raises(ComponentError, match=r"need root here; run it as root"):
        image.check_prerequisites(debootstrap=True)
    monkeypatch.setattr(image.os, "geteuid", lambda: 0)
    monkeypatch.setattr(image.shutil, "which", lambda tool: None if tool == "debootstrap" else f"/bin/{tool}")
    with pytest.raises(
        ComponentError, match=r"`debootstrap` is not on PATH; install it with `apt-get install"
    ):
        image.check_prerequisites(debootstrap=True)
    image.check_prerequisites(debootstrap=False)  # only the base needs debootstrap


def test_only_the_stage_that_runs_pip_gets_the_ca_bundle_and_pip_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETPULSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.crt"))
    monkeypatch.delenv("PIP_CERT", raising=False)
    (tmp_path / "ca.crt").write_text("a bundle")
    passes: list[list[str]] = []
    monkeypatch.setattr(image, "run_step", lambda step, argv, **_: passes.append(list(argv)))
    image.build(REPO, "localhost/base:1", Target.operator, "localhost/marketpulse-operator:1")
    deps, first, second = passes
    assert deps[deps.index("--target") + 1] == "operator-deps"
    assert first[first.index("--target") + 1] == "app"
    assert f"{tmp_path / 'ca.crt'}:{image.BUILD_CA_PATH}:ro" in first
    assert any(arg.endswith(f":{image.BUILD_PIP_CONF_PATH}:ro") for arg in first)
    assert "--tag" not in first
    assert second[second.index("--target") + 1] == "operator"
    assert second[second.index("--tag") + 1] == "localhost/marketpulse-operator:1"
    assert "--volume" not in second
    assert "--env" not in first + second
    pip_conf = next(a for a in first if a.endswith(f":{image.BUILD_PIP_CONF_PATH}:ro")).split(":")[0]
    assert f"cert = {image.BUILD_CA_PATH}" in Path(pip_conf).read_text()


def test_the_workloads_image_is_the_dockerfiles_default_target_as_docker_build_builds_it() -> None:
    assert "--target" not in image.build_argv(REPO, "localhost/base:1", None, tag="localhost/marketpulse:1")
    assert image.PIP_STAGES[Target.workloads] == ("deps", "app")


# --- a real build (cached per machine: minutes the first time, seconds after) -----------------------


def run_in_image(
    reference: str, *command: str, user: str = "10001:10001"
) -> subprocess.CompletedProcess[str]:
    """Run `command` in a working container of `reference` (chroot isolation, as the build runs)."""
    container = subprocess.run(
        ["buildah", "from", "--pull=never", reference], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", "--user", user, container, "--", *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


@pytest.fixture(scope="module")
def built() -> dict[Target, image.BuiltImage]:
    try:
        return {target: image.ensure_image(target, root=REPO, live=False) for target in Target}
    except ComponentError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.image
@pytest.mark.timeout(3600)
def test_the_built_image_runs_its_entrypoint_as_uid_10001(built: dict[Target, image.BuiltImage]) -> None:
    workloads = built[Target.workloads]
    assert workloads.archive.is_file()
    assert workloads.reference == f"localhost/marketpulse:{workloads.input_hash}"
    result = run_in_image(workloads.reference, "marketpulse", "--help")
    assert result.returncode == 0, result.stderr
    assert "operator" in result.stdout
    assert "transform" in result.stdout
    who = run_in_image(workloads.reference, "python", "-c", "import os, dbt, duckdb; print(os.getuid())")
    assert who.stdout.strip() == "10001", who.stderr


@pytest.mark.image
@pytest.mark.timeout(3600)
def test_the_operator_image_runs_the_operator_without_dbt_duckdb_or_streamlit(
    built: dict[Target, image.BuiltImage],
) -> None:
    operator = built[Target.operator]
    assert operator.archive.is_file()
    result = run_in_image(operator.reference, "marketpulse", "operator", "--help")
    assert result.returncode == 0, result.stderr
    left_out = ("dbt", "duckdb", "pyarrow", "streamlit", "plotly", "snowflake", "pandas")
    probe = (
        "import importlib.util, json, marketpulse.operator.main, marketpulse.operator.cleanup; "
        f"print(json.dumps([m for m in {left_out!r} if importlib.util.find_spec(m)]))"
    )
    present = run_in_image(operator.reference, "python", "-c", probe)
    assert present.returncode == 0, present.stderr
    assert json.loads(present.stdout) == []


@pytest.mark.image
@pytest.mark.timeout(3600)
def test_neither_the_ca_bundle_nor_pip_settings_reach_the_images(
    built: dict[Target, image.BuiltImage],
) -> None:
    for target in Target:
        reference = built[target].reference
        config = json.loads(
            subprocess.run(
                ["buildah", "inspect", "--type", "image", reference],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        env = " ".join(config["OCIv1"]["config"].get("Env", []))
        for leaked in ("PIP_", "CERT", "REQUESTS_CA_BUNDLE", "SSL_"):
            assert leaked not in env, f"{reference}: {env}"
        listed = run_in_image(reference, "sh", "-c", "ls /etc/pip.conf /etc/xdg/pip 2>&1; echo done")
        assert "No such file" in listed.stdout, listed.stdout


HARNESS_TOP_LEVEL = {"marketpulse_dev", "pytest", "_pytest", "fakesnow", "selenium"}
LIST_MODULES = (
    "import json, pkgutil, marketpulse; "
    "product = [m.name for m in pkgutil.walk_packages(marketpulse.__path__, 'marketpulse.', onerror=str)]; "
    "print(json.dumps(sorted(product + [m.name for m in pkgutil.iter_modules()])))"
)


@pytest.mark.image
@pytest.mark.timeout(3600)
def test_neither_image_installs_a_module_of_the_development_harness(
    built: dict[Target, image.BuiltImage],
) -> None:
    # The harness's own packages (the ones the product has no namesake for) and its pytest plugin.
    harness_packages = {p.name for p in (REPO / "dev/src/marketpulse_dev").iterdir() if p.is_dir()}
    harness_packages -= {p.name for p in (REPO / "src/marketpulse").iterdir() if p.is_dir()}
    harness_packages |= {"pytest_plugin"}
    assert {"localenv", "bench", "reliability", "fakes"} <= harness_packages
    for target in Target:
        listed = run_in_image(built[target].reference, "python", "-c", LIST_MODULES)
        assert listed.returncode == 0, listed.stderr
        modules = set(json.loads(listed.stdout))
        assert "marketpulse.operator.main" in modules, f"{target}: the listing does not see the product"
        assert not modules & HARNESS_TOP_LEVEL, f"{target}: {sorted(modules & HARNESS_TOP_LEVEL)}"
        # A harness package copied back into the product package, at any depth, is caught by its name.
        strays = sorted(m for m in modules if harness_packages & set(m.split(".")[1:]))
        assert not strays, f"{target}: harness modules in the product: {strays}"
