"""Every relative link in README.md and docs/**/*.md points to a file that exists, and to a heading of it."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced and indented code blocks, where a link is a link."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced and not line.startswith("    "):
            yield line


def without_code_spans(line: str) -> str:
    """The line with its `code spans` blanked: a link written in code is an example, not a link."""
    return re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings, with -1, -2 ... for repeated ones as GitHub does."""
    seen: set[str] = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            name, n = base, 0
            while name in seen:
                n += 1
                name = f"{base}-{n}"
            seen.add(name)
    return seen


def relative_links(page: Path) -> list[str]:
    """The link targets of a page that are neither absolute URLs nor mail addresses."""
    targets = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(without_code_spans(line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                targets.append(target)
    return targets


LINKS: list[tuple[Path, str]] = [(page, target) for page in PAGES for target in relative_links(page)]


def test_the_pages_have_links_to_check() -> None:
    """The link scan finds the README's links (a broken pattern would make every check below vacuous)."""
    readme_links = [target for page, target in LINKS if page.name == "README.md" and page.parent == ROOT]
    assert "docs/reference.md" in {t.split("#")[0] for t in readme_links}


@pytest.mark.parametrize(
    "page,target", LINKS, ids=[f"{page.relative_to(ROOT)}->{target}" for page, target in LINKS]
)
def test_relative_link_points_to_an_existing_file_and_heading(page: Path, target: str) -> None:
    """The file a relative link names exists; its #anchor, on a Markdown page, is one of its headings."""
    path_part, _, anchor = target.partition("#")
    linked = (page.parent / path_part).resolve() if path_part else page
    assert linked.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
    if anchor and linked.suffix == ".md":
        assert anchor in anchors(linked), f"{page.relative_to(ROOT)}: no heading #{anchor} in {linked.name}"


def test_slug_matches_githubs_anchors() -> None:
    """Headings with code, punctuation and parentheses get the anchors GitHub would give them."""
    assert slug("Graceful stop (drain)") == "graceful-stop-drain"
    assert slug("Several instances behind `hagi://`") == "several-instances-behind-hagi"
    assert slug("Redis + RabbitMQ, at once") == "redis--rabbitmq-at-once"
