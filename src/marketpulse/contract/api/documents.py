"""Read the YAML documents of StockPipeline files, remembering the line of every field, within bounds,
and validate them with the API's rules.

`marketpulse validate`, `render` and `run -f` report each problem as `FILE:LINE: field.path: message`,
so the reader keeps PyYAML's node marks (the line where each value starts) keyed by the field paths
the validation writes (`spec.watchlist[1]`). A file is untrusted input: its size, the number of values once
aliases are expanded (an alias "bomb" is a few lines that expand to billions) and the nesting
depth are bounded, and every failure is a `FileProblem` that names the line, never a traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from marketpulse.contract.api.v1alpha1 import API_VERSION, GROUP, KIND, StockPipeline
from marketpulse.contract.api.validation import StockPipelineInvalid, validate_stockpipeline

# The API server takes requests up to 3 MiB; nothing larger could be applied anyway.
MAX_BYTES = 3 * 1024 * 1024
# Values counted with aliases expanded, as validation would walk them. A StockPipeline has a few hundred.
MAX_VALUES = 100_000
MAX_DEPTH = 64
STDIN = "-"
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class FileProblem:
    """Something wrong with the file itself or one of its fields; `line` is 1-based (0: the whole file)."""

    line: int
    message: str
    path: str = ""


@dataclass
class Document:
    """One YAML document: its data as `yaml.safe_load` gives it and the line of each field path."""

    data: object
    line: int
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int:
        """The line of `path`, or of its nearest ancestor present in the file (a missing field is
        reported where its parent is)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            parent = re.sub(r"(\[\d+\]|\.[^.\[\]]*|^[^.\[\]]*)$", "", path)
            if parent == path:
                break
            path = parent
        return self.line


@dataclass
class ManifestFile:
    name: str
    documents: list[Document] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)


class _OutOfBoundsError(Exception):
    def __init__(self, problem: FileProblem) -> None:
        self.problem = problem


def _read_bytes(name: str) -> bytes:
    if name == STDIN:
        return sys.stdin.buffer.read(MAX_BYTES + 1)
    with Path(name).open("rb") as stream:
        return stream.read(MAX_BYTES + 1)


def _read_text(name: str) -> tuple[str | None, FileProblem | None]:
    try:
        raw = _read_bytes(name)
    except FileNotFoundError:
        return None, FileProblem(0, "no such file")
    except IsADirectoryError:
        return None, FileProblem(0, "is a directory; expected a YAML file")
    except PermissionError:
        return None, FileProblem(0, "cannot read it: permission denied")
    except OSError as exc:
        return None, FileProblem(0, f"cannot read it: {exc.strerror or exc}")
    if len(raw) > MAX_BYTES:
        return None, FileProblem(
            0, f"larger than {MAX_BYTES // 2**20} MiB; a Kubernetes object is at most 1.5 MiB"
        )
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, FileProblem(line, f"not UTF-8 text (byte {exc.start} cannot be decoded); expected YAML")


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Walk:
    """Records the line of every field path and enforces the bounds, following aliases as the data will."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.values = 0
        self.problems: list[FileProblem] = []

    def visit(self, node: Node, path: str, depth: int, ancestors: frozenset[int]) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _OutOfBoundsError(
                FileProblem(
                    self.document.line,
                    f"more than {MAX_VALUES} values once its aliases are expanded; "
                    "a StockPipeline has a few hundred",
                )
            )
        if depth > MAX_DEPTH:
            raise _OutOfBoundsError(
                FileProblem(_line(node), f"nested more than {MAX_DEPTH} levels deep", path)
            )
        if id(node) in ancestors:
            raise _OutOfBoundsError(
                FileProblem(_line(node), "an alias refers to a value that contains it", path)
            )
        self.document.lines.setdefault(path, _line(node))
        inside = ancestors | {id(node)}
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.visit(item, f"{path}[{index}]", depth + 1, inside)
        elif isinstance(node, MappingNode):
            self._mapping(node, path, depth, inside)

    def _mapping(self, node: MappingNode, path: str, depth: int, inside: frozenset[int]) -> None:
        first: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == MERGE_TAG:  # `<<: *defaults`: the merged fields sit at this same path
                self.visit(value, path, depth + 1, inside)
                continue
            if not isinstance(key, ScalarNode):
                self.problems.append(FileProblem(_line(key), "a key must be a plain string", path))
                continue
            child = f"{path}.{key.value}" if path else str(key.value)
            if key.value in first:
                self.problems.append(
                    FileProblem(
                        _line(key), f"duplicate key {key.value!r} (first at line {first[key.value]})", child
                    )
                )
            first.setdefault(key.value, _line(key))
            # A field is reported on its key's line (a block value starts on the next one).
            self.document.lines.setdefault(child, _line(key))
            self.visit(value, child, depth + 1, inside)


def _problem_of(exc: yaml.YAMLError) -> FileProblem:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return FileProblem(int(exc.problem_mark.line) + 1, f"not valid YAML: {what}")
    return FileProblem(0, f"not valid YAML: {exc}")


def read_manifest_file(name: str) -> ManifestFile:
    """Every document of `name` (`-`: standard input); problems instead of exceptions."""
    found = ManifestFile("<stdin>" if name == STDIN else name)
    text, problem = _read_text(name)
    if text is None:
        found.problems.append(problem or FileProblem(0, "cannot read it"))
        return found
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            document = Document(data=None, line=_line(node))
            walk = _Walk(document)
            walk.visit(node, "", 0, frozenset())
            found.problems += walk.problems
            document.data = loader.construct_document(node)
            if document.data is not None:
                found.documents.append(document)
    except _OutOfBoundsError as exc:
        found.problems.append(exc.problem)
    except yaml.YAMLError as exc:
        found.problems.append(_problem_of(exc))
    except RecursionError:
        found.problems.append(FileProblem(0, "nested too deeply to read"))
    finally:
        loader.dispose()
    return found


@dataclass
class Checked:
    """The StockPipelines found in the files, and every problem as the line to print."""

    pipelines: list[tuple[str, StockPipeline]]
    problems: list[str]
    notes: list[str]


def _where(file: ManifestFile, line: int) -> str:
    return f"{file.name}:{line}" if line else file.name


def _problem_line(file: ManifestFile, problem: FileProblem) -> str:
    path = f" {problem.path}:" if problem.path else ""
    return f"{_where(file, problem.line)}:{path} {problem.message}"


def _is_ours(data: object) -> bool:
    """Documents of other kinds (a Secret, a Namespace beside the pipeline) are left alone, as `marketpulse
    run -f` leaves them; anything that claims to be ours, or cannot say what it is, is validated."""
    if not isinstance(data, dict):
        return True
    api_version = data.get("apiVersion")
    return data.get("kind") in (None, KIND) or (
        isinstance(api_version, str) and api_version.split("/")[0] == GROUP
    )


def check_files(names: Iterable[str], *, require_pipeline: bool = False) -> Checked:
    """Every StockPipeline of the files, validated; `require_pipeline`: a file without one is a problem."""
    checked = Checked([], [], [])
    for name in names:
        file = read_manifest_file(name)
        checked.problems += [_problem_line(file, p) for p in file.problems]
        found = 0
        for document in file.documents:
            if not _is_ours(document.data):
                assert isinstance(document.data, dict)
                checked.notes.append(
                    f"{_where(file, document.line)}: skipped {kind_of(document.data)}: not a {KIND}"
                )
                continue
            found += 1
            missing = []
            if isinstance(document.data, dict):
                missing = [
                    f"{_where(file, document.line)}: {key}: Required value (expected {value})"
                    for key, value in (("apiVersion", API_VERSION), ("kind", KIND))
                    if key not in document.data
                ]
            checked.problems += missing
            try:
                pipeline = validate_stockpipeline(document.data, source=file.name)
            except StockPipelineInvalid as exc:
                checked.problems += [
                    f"{_where(file, document.line_of(e.path))}: {e.path}: {e.message}" for e in exc.errors
                ]
                continue
            if not missing:
                checked.pipelines.append((file.name, pipeline))
        if require_pipeline and not found and not file.problems:
            checked.problems.append(f"{file.name}: no {KIND} in it; expected a document of kind {KIND}")
    return checked


def kind_of(data: Mapping[str, object]) -> str:
    kind, name = data.get("kind"), (data.get("metadata") or {})
    named = name.get("name") if isinstance(name, Mapping) else None
    return f"{kind}/{named}" if named else str(kind)
