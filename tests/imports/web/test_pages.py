"""The user's pages with Django's test client: upload, my imports, detail + error CSV, staged rows, orders."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from imports.models import ImportFile, Order
from imports.services.uploads import upload_batch_create
from tests.e2e.test_faults import HEADER, trades_csv
from tests.imports.api.test_api_user import approved_file, trades
from tests.imports.pipeline.test_pipeline import upload
from tests.imports.services.test_idempotency import approved_import

pytestmark = pytest.mark.django_db

PAGES = ["/", "/imports/", "/staged/", "/orders/"]


def logged_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def download(response: Any) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("url", PAGES + ["/imports/1/", "/imports/1/errors.csv"])
def test_every_page_needs_a_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_with_the_navigation_and_the_script(client: Client, user: Any, url: str) -> None:
    response = logged_in(client, user).get(url)
    assert response.status_code == 200
    html = response.content.decode()
    # The script under its content-hashed name (collectstatic's manifest; cached for a year by WhiteNoise).
    assert 'href="/orders/"' in html and re.search(r'src="/static/airlock/app\.[0-9a-f]{12}\.js"', html)
    assert 'id="staging-banner"' in html and "hidden" in html.split('id="staging-banner"')[1].split(">")[0]


def test_the_upload_page_has_a_drop_zone_that_posts_to_the_api(client: Client, user: Any) -> None:
    html = logged_in(client, user).get("/").content.decode()
    assert 'id="dropzone"' in html and 'data-api="/api/uploads"' in html
    assert 'type="file"' in html and "multiple" in html


def test_the_plain_upload_form_still_works_without_javascript(
    client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        response = logged_in(client, user).post(
            "/",
            {
                "file": SimpleUploadedFile("a.csv", trades("2024-03-01 09:30:00,AAPL,Buy,1,1.5,0,USD,T-1").encode()),
                "dedupe": "on",
            },
        )
    assert response.status_code == 302 and response["Location"] == "/imports/"
    assert ImportFile.objects.filter(owner=user, original_name="a.csv").exists()


def test_uploading_the_same_file_again_says_so_instead_of_claiming_a_new_import(
    client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = trades("2024-03-01 09:30:00,AAPL,Buy,1,1.5,0,USD,T-1").encode()
    logged_in(client, user)
    with django_capture_on_commit_callbacks(execute=False):
        for name in ("a.csv", "a-copy.csv"):
            response = client.post("/", {"file": SimpleUploadedFile(name, data), "dedupe": "on"}, follow=True)
    html = response.content.decode()
    assert "1 of 1 file(s) had been uploaded before" in html and "being processed" not in html
    assert ImportFile.objects.filter(owner=user).count() == 1


def test_the_banner_counts_rows_waiting_for_approval_and_links_to_them(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    html = logged_in(client, user).get("/orders/").content.decode()
    banner = html.split('id="staging-banner"')[1].split("</div>")[0]
    assert "hidden" not in banner.split(">")[0]
    assert "<b>3</b> rows from <b>1</b> file are waiting for an admin to approve their format." in banner
    assert 'href="/staged/"' in banner


def test_my_imports_groups_files_by_upload_with_counts_and_filters_by_status(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    done = approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    waiting = upload(
        user,
        text="When,Sym,Dir,Qty,Px\n2024-01-02,IBM,B,1,100\n",  # trades of an unknown format
        name="unknown.csv",
        run_jobs=run_jobs,
        capture=django_capture_on_commit_callbacks,
    )
    client = logged_in(client, user)
    html = client.get("/imports/").content.decode()
    assert f'data-file-id="{done.pk}"' in html and f'data-file-id="{waiting.pk}"' in html
    assert f"Upload #{done.batch_id}" in html and "Imported with invalid rows" in html
    assert 'data-poll="/api/uploads"' in html
    filtered = client.get("/imports/?status=PENDING_APPROVAL").content.decode()
    assert f'data-file-id="{waiting.pk}"' in filtered and f'data-file-id="{done.pk}"' not in filtered
    assert 'class="pill active"' in filtered


def test_the_detail_page_shows_detection_counts_skip_reasons_and_invalid_rows(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    ImportFile.objects.filter(pk=file.pk).update(skip_reasons={"blank line": 2}, rows_skipped=2)
    html = logged_in(client, user).get(f"/imports/{file.pk}/").content.decode()
    assert "utf-8" in html.lower() and "comma <code>,</code>" in html
    assert "blank line" in html
    assert '<td title="quantity">Quantity</td><td><code>0</code></td><td>quantity must be greater than 0</td>' in html
    assert f'href="/imports/{file.pk}/errors.csv"' in html


def test_the_error_report_has_the_original_cells_an_errors_column_and_no_formulas(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = trades(
        '2024-03-01 09:30:00,=HYPERLINK("http://x"),Buy,0,1.5,-12.5,USD,@T-1',
        "2024-03-01 09:30:00,AAPL,Buy,2,1.5,0,USD,T-2",
    )
    file = approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks, text=text)
    response = logged_in(client, user).get(f"/imports/{file.pk}/errors.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="trades-errors.csv"' in response["Content-Disposition"]
    rows = download(response)
    assert rows[0] == [
        "Trade Date",
        "Ticker",
        "Buy or Sell",
        "Shares",
        "Fill Price",
        "Fee",
        "Ccy",
        "Ref",
        "errors",
    ]
    assert len(rows) == 2
    bad = rows[1]
    assert bad[1] == '\'=HYPERLINK("http://x")' and bad[7] == "'@T-1"
    assert bad[5] == "-12.5"  # a number stays a number
    assert bad[8].startswith("line 2: Quantity: ")


def test_another_users_file_answers_404_on_every_page(
    client: Client, user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    client = logged_in(client, other_user)
    assert client.get(f"/imports/{file.pk}/").status_code == 404
    assert client.get(f"/imports/{file.pk}/errors.csv").status_code == 404
    assert f'data-file-id="{file.pk}"' not in client.get("/imports/").content.decode()
    assert "Nothing is waiting for approval" in client.get("/staged/").content.decode()


def test_the_staged_page_shows_raw_rows_under_their_header_as_pending_approval(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    html = logged_in(client, user).get("/staged/").content.decode()
    assert "<th>Ticker</th><th>Buy or Sell</th>" in html
    assert "<td>MSFT</td>" in html
    assert html.count(">Pending approval</span>") >= 3
    assert f'data-file-id="{file.pk}"' in html and 'data-poll="/api/staging/orders"' in html


def test_the_orders_page_filters_and_sums_bought_and_sold_per_currency(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = trades(
        "2024-03-01 09:30:00,AAPL,Buy,10,2.5,0,USD,T-1",
        "2024-03-02 09:30:00,AAPL,Sell,4,3,0,USD,T-2",
        "2024-03-03 09:30:00,SAP,Buy,1,100,0,EUR,T-3",
    )
    approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks, text=text)
    upload(
        user,
        text="X,Y\n1,2\n",
        name="staged.csv",
        run_jobs=run_jobs,
        capture=django_capture_on_commit_callbacks,
    )
    client = logged_in(client, user)
    page = client.get("/orders/")
    figures = page.context["figures"]
    assert figures == {
        "trades": 3,
        "by_currency": [
            {"currency": "EUR", "bought": "100.00", "sold": "0.00"},
            {"currency": "USD", "bought": "25.00", "sold": "12.00"},
        ],
    }
    assert "<b>SAP</b>" in page.content.decode()
    filtered = client.get("/orders/?symbol=aapl&side=SELL").context["figures"]
    assert filtered == {"trades": 1, "by_currency": [{"currency": "USD", "bought": "0.00", "sold": "12.00"}]}
    dated = client.get("/orders/?date_from=2024-03-02&date_to=2024-03-02").context["figures"]
    assert dated["trades"] == 1


def test_the_orders_page_explains_a_bad_filter_instead_of_ignoring_it(client: Client, user: Any) -> None:
    html = logged_in(client, user).get("/orders/?date_from=yesterday").content.decode()
    assert "&#x27;yesterday&#x27; is not a date (use YYYY-MM-DD)." in html


def test_a_big_upload_shows_its_first_files_on_my_imports_and_all_of_them_paginated_on_its_own_page(
    client: Client, user: Any, other_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    files = [SimpleUploadedFile(f"part-{i:03}.csv", trades_csv(1, start=i), "text/csv") for i in range(60)]
    with django_capture_on_commit_callbacks(execute=False):
        batch, created = upload_batch_create(owner=user, files=files)
    assert len(created) == 60
    logged_in(client, user)
    listing = client.get("/imports/").content.decode()
    assert listing.count("<tr data-file-id=") == 10
    assert f'href="/imports/uploads/{batch.pk}/">All 60 files of this upload' in listing
    assert "0</b> of 60 files done" in listing and 'data-batch="status">Pending' in listing

    first = client.get(f"/imports/uploads/{batch.pk}/").content.decode()
    assert first.count("<tr data-file-id=") == 50 and "Page 1 of 2 · 60 files" in first
    second = client.get(f"/imports/uploads/{batch.pk}/?page=2").content.decode()
    assert second.count("<tr data-file-id=") == 10 and "part-059.csv" in second
    assert logged_in(Client(), other_user).get(f"/imports/uploads/{batch.pk}/").status_code == 404


def test_the_errors_download_reads_in_plain_words_and_a_corrected_copy_imports_as_exported(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    original = [
        ["2024-01-02 09:30:00", "AAPL", "Buy", "10", "170.50", "1.00", "USD", "R-1"],
        ["13/45/2023 09:30:00", "MSFT", "Sell", "5", "410.10", "-$1800", "USD", "R-2"],
    ]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([HEADER.strip().split(","), *original])
    file = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, text.getvalue().encode())
    assert (file.rows_imported, file.rows_invalid) == (1, 1)

    logged_in(client, user)
    page = client.get(f"/imports/{file.pk}/").content.decode()
    plain = "&#x27;13/45/2023 09:30:00&#x27; is not a valid date; expected year-month-day hour:minute:second"
    assert plain in page and "Executed at" in page and "%Y" not in page

    rows = download(client.get(f"/imports/{file.pk}/errors.csv"))
    assert rows[0] == [*HEADER.strip().split(","), "errors"]
    assert rows[1][:-1] == original[1], "the cells are exported verbatim ('-$1800' without an apostrophe)"
    assert rows[1][-1] == (
        "line 3: Executed at: '13/45/2023 09:30:00' is not a valid date; expected "
        "year-month-day hour:minute:second like 2023-03-14 09:30:00"
    )

    # The user fixes the date, drops the errors column and uploads the file again: it imports as exported.
    fixed = [[*row[:-1]] for row in rows]
    fixed[1][0] = "2023-12-15 09:30:00"
    again = io.StringIO()
    csv.writer(again, lineterminator="\n").writerows(fixed)
    second = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, again.getvalue().encode())
    assert (second.status, second.rows_imported, second.rows_invalid) == ("IMPORTED", 1, 0)
    order = Order.objects.get(source_file=second)
    assert (order.symbol, order.commission) == ("MSFT", Decimal("1800"))
