"""Raw rows stored as JSON: a NUL cannot crash the COPY, control characters are kept escaped."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from staging.models import StagedRow
from staging.services import staged_rows_write

pytestmark = pytest.mark.django_db


def test_a_nul_control_characters_and_backslashes_survive_the_copy(owned_files: dict[str, Any]) -> None:
    file = owned_files["pending"]
    rows = [
        (1001, ["a\x00b", "ok"]),
        (1002, ["bell\x07", "esc\x1b[31m", "tab\tnew\nline"]),
        (1003, ["literal \\u0000 text", "C:\\path\\x", "\u202eevil"]),
    ]
    with transaction.atomic():
        assert staged_rows_write(file_id=file.pk, format_id=file.format_id, rows=rows) == 3
    raw = dict(StagedRow.objects.filter(file=file, line__gte=1001).values_list("line", "raw"))
    assert raw[1001] == ["a\ufffdb", "ok"]
    assert raw[1002] == ["bell\x07", "esc\x1b[31m", "tab\tnew\nline"]
    assert raw[1003] == ["literal \\u0000 text", "C:\\path\\x", "\u202eevil"]


def test_the_rows_of_the_same_file_are_all_kept_when_one_holds_a_nul(owned_files: dict[str, Any]) -> None:
    file = owned_files["pending"]
    before = StagedRow.objects.filter(file=file).count()
    rows = [(2000 + n, [f"v{n}", "\x00" if n == 50 else "x"]) for n in range(100)]
    with transaction.atomic():
        staged_rows_write(file_id=file.pk, format_id=file.format_id, rows=rows)
    assert StagedRow.objects.filter(file=file).count() == before + 100
