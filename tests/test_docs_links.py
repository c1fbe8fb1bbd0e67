"""The docs stand on their own: every relative link in README.md and docs/ reaches a file
of the repository, and every ``#anchor`` a heading of its target (GitHub's slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())  # code and emphasis marks render away
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a markdown page's headings (outside code blocks)."""
    text = FENCE.sub("", page.read_text())
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    """Relative link targets of a page, code blocks left out."""
    found = LINK.findall(FENCE.sub("", page.read_text()))
    return [t for t in found if not re.match(r"[a-z]+:", t)]


def test_slug_follows_github() -> None:
    assert slug("In short: what was measured here") == "in-short-what-was-measured-here"
    assert slug("A larger base: 4 layers, width 128") == "a-larger-base-4-layers-width-128"
    assert slug("Layer pairs (`conv2d_fft`, `intra`)") == "layer-pairs-conv2d_fft-intra"
    assert slug("`layerscope scan` — options") == "layerscope-scan--options"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or (ROOT not in dest.parents and dest != ROOT):
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](#nowhere)\n```\n[code](#skip)\n```\n")
    assert links(page) == ["#title", "#nowhere"]
    assert anchors(page) == {"title"}
