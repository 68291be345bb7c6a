"""Every corpus export whose suggested mapping SQL can convert: both paths give the same orders, keys and errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.conf import settings as django_settings

from formats.management.commands.mapping_accuracy import suggest_for_file
from imports.pipeline import fastpath
from imports.pipeline.stage import records_of
from imports.reading import Record
from imports.sheets.dispatch import detect_layout, sheet_limits
from tests.conftest import CORPUS
from tests.imports.pipeline.test_fastpath import assert_same_outcome, migrate_with

pytestmark = pytest.mark.django_db

FILES = sorted(str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*.csv")) if CORPUS.exists() else []
ROWS = 400  # per file: enough for every kind of row the corpus files hold, quick on both paths


@pytest.mark.skipif(not FILES, reason="../shared/corpus is absent in this checkout")
@pytest.mark.parametrize("relative", FILES or ["(none)"])
def test_a_corpus_export_gives_the_same_outcome_on_both_paths(
    django_user_model: Any, settings: Any, relative: str
) -> None:
    path = CORPUS / relative
    try:
        spec, _ = suggest_for_file(path, learned={})
    except Exception as exc:  # noqa: BLE001 -- an unreadable corpus file is the reader tests' business
        pytest.skip(f"{relative}: no suggestion ({exc.__class__.__name__}: {exc})")
    mapping, columns = spec["mapping"], spec["columns"]
    if fastpath.plan_for(mapping, columns, dedupe=True) is None:
        pytest.skip(f"{relative}: its suggested mapping is converted by the Python path only")
    layout = detect_layout(path, None, limits=sheet_limits(django_settings.AIRLOCK))
    rows = [item.cells for item in records_of(path, layout) if isinstance(item, Record)][:ROWS]
    arguments = {"mapping": copy.deepcopy(mapping), "rows": rows, "header": columns}
    fast = migrate_with(django_user_model, fast=True, settings=settings, **arguments)
    python = migrate_with(django_user_model, fast=False, settings=settings, **arguments)
    assert_same_outcome(fast, python)
    if not fast["accepted"]:
        pytest.skip(f"{relative}: SQL declined all {len(rows)} rows (Python converted them; the outcomes agree)")
