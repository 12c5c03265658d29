"""The README and docs/ pages agree with the code: generated tables current, links resolve, no stray numbers."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# Pages other branches of issue 20 write; the README links them already. Empty this set once they are merged.
PENDING: set[str] = set()
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


@pytest.fixture(scope="module")
def gen():
    """docs/generate.py, loaded once (its tables are computed once per process)."""
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _outside_blocks(text: str) -> str:
    """``text`` without its generated blocks and code fences."""
    text = re.sub(r"<!-- generated: .*?<!-- end generated -->", "", text, flags=re.DOTALL)
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


@pytest.mark.slow  # builds every registered model and counts its FLOPs: about 10 s, 20 s on a loaded machine
def test_generated_tables_are_current(gen):
    """Parameter counts, FLOPs, the released models, formats and limits in the pages are the code's."""
    stale = [p.name for p in _pages() if gen.regenerate(p.read_text(encoding="utf-8"), p.name)
             != p.read_text(encoding="utf-8")]
    assert not stale, f"run `PYTHONPATH=src python docs/generate.py`: stale tables in {stale}"
    blocks = {name for p in _pages() for name in re.findall(r"<!-- generated: ([a-z-]+) -->", p.read_text())}
    assert blocks == set(gen.blocks())  # every block is used somewhere


def test_a_changed_number_is_caught(gen):
    text = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    assert "| `fasta` |" in text
    assert gen.regenerate(text.replace("| `fasta` |", "| `fastq` |")) == text
    with pytest.raises(ValueError, match="unknown generated block 'nope'"):
        gen.regenerate("<!-- generated: nope -->\nx\n<!-- end generated -->")


def test_readme_numbers_come_from_one_place():
    """Outside generated tables the README states no counts or measured values (those live in docs/)."""
    prose = _outside_blocks(README.read_text(encoding="utf-8"))
    numbers = re.findall(r"\b\d{1,3}(?:,\d{3})+\b|\b0\.\d+\b|\b\d+(?:\.\d+)? ?(?:MFLOP|seq/s|min|s\b|%)", prose)
    assert not numbers, f"README numbers outside generated tables: {numbers}"


def test_readme_install_matches_the_makefile():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    version = re.search(r"^TORCH_VERSION \?= (\S+)", makefile, re.MULTILINE).group(1)
    index = re.search(r"^TORCH_INDEX \?= (\S+)", makefile, re.MULTILINE).group(1)
    readme = README.read_text(encoding="utf-8")
    assert f"pip install torch=={version} --index-url {index}" in readme
    assert "source .venv/bin/activate" in readme and "make demo" in readme and "make test" in readme


def test_links_resolve_and_the_contents_match_the_headings():
    for page in _pages():
        for target, _ in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            path = (page.parent / target).resolve()
            assert path.exists() or path.name in PENDING, f"{page.name}: broken link {target}"
    readme = README.read_text(encoding="utf-8")
    titles = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    headings = {re.sub(r"[^a-z0-9 -]", "", t.lower()).replace(" ", "-") for t in titles}
    anchors = re.findall(r"^- \[[^]]+\]\(#([^)]+)\)", readme, re.MULTILINE)
    assert set(anchors) == headings - {"contents"}
