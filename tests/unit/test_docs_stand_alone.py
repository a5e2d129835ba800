"""The repository's documentation stands alone: it cites nothing a reader of the repository
cannot open (internal specifications, style guides, issue numbers), its links lead somewhere,
and it promises nothing the package does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import jobcollection

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = sorted(
    p for ext in ("*.py", "*.sql") for p in (ROOT / "src" / "jobcollection").rglob(ext)
)
INTERNAL = re.compile(r"\bSPEC\b|SPEC\.md|STYLE\.md|\.\./shared|\bissues? \d|§\s*\d")


@pytest.mark.parametrize("path", DOCS + SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_references(path: Path) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if INTERNAL.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings(path: Path) -> None:
    text = path.read_text("utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.is_file(), f"{path.name}: link to missing {target}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text("utf-8"), flags=re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{path.name}: no heading #{anchor} in {linked.name}"


def test_the_docs_the_sources_point_to_exist() -> None:
    for source in SOURCES:
        for name in re.findall(r"docs/(\w+\.md)", source.read_text("utf-8")):
            assert (ROOT / "docs" / name).is_file(), f"{source.name} cites docs/{name}"


def test_the_package_promises_no_storage_it_does_not_have() -> None:
    adapters = {p.stem for p in (ROOT / "src" / "jobcollection" / "storage").glob("*.py")}
    assert jobcollection.__doc__ is not None
    for backend, module in (("PostgreSQL", "postgres"), ("Redis", "redis"), ("MySQL", "mysql")):
        if module not in adapters:
            assert backend not in jobcollection.__doc__
