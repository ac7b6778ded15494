"""The docs' examples run as written, as the README's do (``tests/test_readme.py``).

Every ``bash`` and ``python`` block of ``docs/*.md`` runs, file by file in order, from the
repository's root against a database of its own. Blocks that need what this machine lacks (a GPU,
kubectl, a Greenplum cluster) are marked ``console`` and shown only.
"""

from pathlib import Path

import pytest
from test_readme import BLOCK, RUN, run_block

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))


def docs_blocks() -> list[tuple[str, int, str, str]]:
    return [
        (path.name, number, kind, code)
        for path in DOCS
        for number, (kind, code) in enumerate(BLOCK.findall(path.read_text()), start=1)
        if kind in RUN
    ]


def test_every_docs_block_is_marked_run_or_shown():
    for path in DOCS:
        kinds = {kind for kind, _ in BLOCK.findall(path.read_text())}
        assert kinds <= RUN | {"console", "text", ""}, f"{path.name}: unknown code blocks {kinds}"
    assert docs_blocks(), "no docs block runs: the test would check nothing"


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("doc, number, kind, code", docs_blocks(), ids=lambda v: str(v)[:40])
def test_docs_blocks_run_as_written(own_database, tmp_path, doc, number, kind, code):
    run, where = run_block(kind, code, ROOT, own_database, tmp_path / "block.py")
    where = f"{doc} block {number} ({kind}):\n{where}"
    assert run.returncode == 0, where
    assert "Traceback" not in run.stderr, where
