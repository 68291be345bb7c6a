"""The admin preview on a large staged set: every row counted, through the admin view, in seconds."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from formats.models import CsvFormat
from imports.models import ImportBatch, ImportFile
from staging.services import staged_rows_write
from tests.formats.test_admin_review import GOOD

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ROWS = 100_000
COLUMNS = ["Trade Date", "Ticker", "Buy or Sell", "Shares", "Fill Price", "Fee", "Ccy", "Ref"]


def test_the_preview_validates_all_100k_staged_rows_of_a_format(user: Any, reviewer: Any) -> None:
    fmt = CsvFormat.objects.create(
        name="big",
        header=[c.casefold() for c in COLUMNS],
        columns=COLUMNS,
        fingerprint="b" * 64,
        mapping=GOOD,
        created_by=user,
    )
    batch = ImportBatch.objects.create(owner=user)
    file = ImportFile.objects.create(
        batch=batch,
        owner=user,
        original_name="big.csv",
        stored_name="big",
        sha256="0" * 64,
        size=1,
        format=fmt,
        status="PENDING_APPROVAL",
    )

    def rows() -> Any:
        for i in range(ROWS):
            quantity = "0" if i % 50 == 0 else str(i % 300 + 1)  # every 50th row is invalid
            side = "Buy" if i % 2 else "Sell"
            yield (
                i + 2,
                [
                    f"2024-03-{i % 28 + 1:02d} 09:30:00",
                    "AAPL",
                    side,
                    quantity,
                    "171.25",
                    "1.00",
                    "USD",
                    f"T-{i}",
                ],
            )

    with transaction.atomic():
        staged_rows_write(file_id=file.pk, format_id=fmt.pk, rows=rows())
    client = Client()
    client.force_login(reviewer)
    started = time.monotonic()
    response = client.post(reverse("admin:formats_csvformat_preview", args=[fmt.pk]), {"mapping": json.dumps(GOOD)})
    seconds = time.monotonic() - started
    body = response.json()
    assert body["summary"] == {
        "total": ROWS,
        "would_import": ROWS - ROWS // 50,
        "would_be_invalid": ROWS // 50,
        "would_skip": 0,
    }
    assert f"{ROWS // 50}</td>" in body["html"]  # the top error's row count
    print(f"\npreview of {ROWS} staged rows through the admin view: {seconds:.2f}s")
