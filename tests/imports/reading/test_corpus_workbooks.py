"""Real workbooks and JSON exports from ../shared/corpus (when it has any): each reads or is refused with
a clear message, never a crash, in bounded time.

The workbooks the tests write themselves are in tests/imports/reading/workbooks.py; tests/fixtures/README.md
lists the real files this reader was checked against and why they are not copied into the repository.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config.errors import UnreadableFile
from imports.reading import Record
from imports.sheets.dispatch import detect_layout, iter_records
from tests.conftest import CORPUS

KINDS = (".xlsx", ".xlsm", ".xls", ".ods", ".json", ".ndjson", ".jsonl")
FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in KINDS) if CORPUS.exists() else []


@pytest.mark.skipif(not FILES, reason=f"no workbook or JSON export in {CORPUS} (the corpus holds CSV files only)")
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_a_real_workbook_reads_or_is_refused_with_a_message(path: Path) -> None:
    started = time.perf_counter()
    try:
        layout = detect_layout(path)
        records = sum(1 for item in iter_records(path, layout) if isinstance(item, Record))
    except UnreadableFile as exc:
        assert exc.message and len(exc.message) < 1000
    else:
        assert layout.header and records >= 0
    assert time.perf_counter() - started < 60
