"""The docs stand on their own: every file they point to is in a plain clone of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted(
    [REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("services/*/README.md"), REPO / "deploy" / "README.md"]
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
REPO_PATH = re.compile(r"`((?:libs|services|deploy|docs|tests|examples)/[^`\s<>*…{}]+)`")
OUTSIDE = re.compile(r"\.\./shared|shared/(?:DESIGN|REQUIREMENTS|STYLE)\.md|\bDESIGN\.md|\bREQUIREMENTS\.md")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_file_a_doc_names_is_in_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert not OUTSIDE.findall(text), f"{doc.name} points outside the repository: {OUTSIDE.findall(text)}"
    missing = [
        link
        for link in LINK.findall(text)
        if not link.startswith(("http://", "https://", "mailto:")) and not (doc.parent / link).exists()
    ]
    missing += [
        path
        for path in (p.rstrip(".,:;") for p in REPO_PATH.findall(text))
        if not (REPO / path).exists() and not (doc.parent / path).exists()  # a service's README: its own tests/
    ]
    assert not missing, f"{doc.relative_to(REPO)} names files a clone does not have: {missing}"
