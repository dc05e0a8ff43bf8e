"""Every reference in the documentation resolves: links to files and their sections, and the
`docs/<page>.md, "<section>"` citations in code and comments.

Markdown is parsed with markdown-it (CommonMark), so links and headings inside code blocks are not
taken for real ones; section anchors follow GitHub's rule, which is what readers click.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parent.parent
_MD = MarkdownIt("commonmark").enable("table")
# A citation in prose; a path in quotes is data (a fixture's file name, say), not a reference.
_CITATION = re.compile(r"(?<![\"'/\w])docs/(?P<page>[a-z0-9_-]+\.md)(?:, \"(?P<section>[^\"]+)\")?")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(ROOT / line for line in out.splitlines() if (ROOT / line).is_file())


def _inline_text(token: Token) -> str:
    return "".join(child.content for child in token.children or [] if child.type in ("text", "code_inline"))


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


@cache
def headings(path: Path) -> tuple[str, ...]:
    tokens = _MD.parse(path.read_text(encoding="utf-8"))
    pairs = itertools.pairwise(tokens)
    return tuple(_inline_text(inline) for opening, inline in pairs if opening.type == "heading_open")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in headings(path):
        base = github_anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")  # GitHub numbers repeated headings
    return frozenset(found)


def _links(path: Path) -> list[str]:
    targets: list[str] = []
    for token in _MD.parse(path.read_text(encoding="utf-8")):
        for child in token.children or []:
            if child.type == "link_open":
                targets.append(str(child.attrs.get("href", "")))
    return targets


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in _links(path):
        parts = urlsplit(target)
        if parts.scheme or target.startswith("//"):
            continue  # external: not checked offline
        file = (path.parent / unquote(parts.path)).resolve() if parts.path else path
        if not file.exists():
            problems.append(f"{target}: no such file")
            continue
        if parts.fragment and file.suffix == ".md" and parts.fragment not in anchors(file):
            problems.append(f"{target}: no section #{parts.fragment} in {file.name}")
    return problems


MARKDOWN = _tracked("*.md")


def test_the_documentation_is_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in MARKDOWN}
    assert {"README.md", "docs/architecture.md", "docs/testing.md"} <= names


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_code_cites_only_sections_that_exist() -> None:
    problems = []
    for path in _tracked("*.py", "*.toml", "*.yaml", "*.yml", "Makefile", "*.sql", "*.md"):
        for match in _CITATION.finditer(path.read_text(encoding="utf-8", errors="replace")):
            page = ROOT / "docs" / match["page"]
            where = f"{path.relative_to(ROOT)}: {match[0]}"
            if not page.exists():
                problems.append(f"{where}: no such page")
            elif match["section"] and match["section"] not in headings(page):
                problems.append(f"{where}: no such section")
    assert problems == []


def test_no_reference_to_the_old_architecture_numbering() -> None:
    stale = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _tracked("*.py", "*.md", "*.yaml", "*.toml")
        if path != Path(__file__)
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if re.search(r"ARCHITECTURE\b|§\d", line)
    ]
    assert stale == []


def test_the_checker_catches_a_broken_link_and_section(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A `code` heading (with parens)\n", encoding="utf-8")
    page.write_text(
        "[ok](other.md#a-code-heading-with-parens) [gone](missing.md) [section](other.md#nope)\n"
        "[here](#top) [web](https://example.com/x)\n\n# Top\n\n```\n[in code](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nope: no section #nope in other.md",
    ]
