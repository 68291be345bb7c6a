"""Hostile bytes and names: refused at upload or failed by the worker, always with what and where."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from imports.models import ImportBatch, ImportFile
from staging.models import StagedRow
from tests.imports.pipeline.test_pipeline import TRADES
from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db


def post(client: Client, user: Any, name: str, data: bytes, capture: Any = None) -> Any:
    upload = SimpleUploadedFile(name, data, content_type="text/csv")
    if capture is None:
        return client.post("/api/uploads", {"file": upload}, **bearer(user))
    with capture(execute=True):
        return client.post("/api/uploads", {"file": upload}, **bearer(user))


def stored(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


BINARIES = {
    "png": (b"\x89PNG\r\n\x1a\n" + os.urandom(300), "This is a PNG image, not a CSV, spreadsheet or JSON file"),
    "zip": (b"PK\x03\x04\x14\x00" + os.urandom(300), "The ZIP archive is damaged"),
    "elf": (b"\x7fELF\x02\x01\x01" + os.urandom(300), "This is an ELF executable, not a CSV"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + os.urandom(300), "This is a PDF document, not a CSV"),
    "random-bytes": (bytes(range(1, 9)) * 200, "The file looks binary"),
    "xml": (b'<?xml version="1.0"?><orders><order id="1"/></orders>', "This is an XML document, not a CSV"),
    "html": (b"<!DOCTYPE html><html><body><table><tr><td>1</td></tr></table>", "This is an HTML page"),
    "json-number": (b"42", "The file is JSON holding a single number, not records."),
}


@pytest.mark.parametrize("kind", sorted(BINARIES))
def test_a_file_that_is_not_tabular_is_refused_at_upload_and_not_stored(
    client: Client, settings: Any, user: Any, kind: str
) -> None:
    data, what = BINARIES[kind]
    response = post(client, user, "trades.csv", data)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "unreadable_file"
    assert body["message"].startswith(f"'trades.csv': {what}"), body["message"]
    assert body["details"]["file"] == "trades.csv"
    assert not ImportBatch.objects.exists() and not ImportFile.objects.exists() and stored(settings) == []


def test_an_empty_file_is_refused_at_upload(client: Client, settings: Any, user: Any) -> None:
    response = post(client, user, "empty.csv", b"")
    assert response.status_code == 400
    assert response.json()["message"] == "'empty.csv': The file is empty (0 bytes): there is nothing to import."
    assert stored(settings) == []


def test_one_binary_file_in_a_bulk_upload_refuses_the_whole_request(client: Client, settings: Any, user: Any) -> None:
    files = [SimpleUploadedFile("good.csv", TRADES.encode()), SimpleUploadedFile("photo.csv", BINARIES["png"][0])]
    response = client.post("/api/uploads", {"file": files}, **bearer(user))
    assert response.status_code == 400 and "'photo.csv': This is a PNG image" in response.json()["message"]
    assert not ImportFile.objects.exists() and stored(settings) == []


def test_the_upload_page_shows_the_binary_file_message(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.post("/", {"file": SimpleUploadedFile("x.csv", BINARIES["pdf"][0]), "dedupe": "on"})
    assert response.status_code == 200
    assert b"&#x27;x.csv&#x27;: This is a PDF document, not a CSV" in response.content
    assert not ImportBatch.objects.exists()


# Problems only a full read finds: the worker marks the file FAILED with the message.
WORKER_FAILURES = {
    "nul-byte": (TRADES.encode() + b"2024-03-05 10:00:00,IBM,Buy,1,1\x00,0,USD,X\n", "NUL byte at line 5"),
    "undecodable": (
        b"\xef\xbb\xbf" + TRADES.encode() + b"2024-03-05,\xff\xfe,Buy,1,1,0,USD,X\n",
        "Line 5 cannot be read as utf-8-sig although it starts with a byte-order mark",
    ),
    "header-only": (TRADES.splitlines()[0].encode() + b"\n", "The file has a header but no data rows."),
    "only-blank-lines": (b"\n\n \n\n", "The file holds only blank lines."),
}


@pytest.mark.parametrize("case", sorted(WORKER_FAILURES))
def test_a_file_the_reader_cannot_use_fails_with_a_message_naming_the_problem(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, case: str
) -> None:
    data, message = WORKER_FAILURES[case]
    response = post(client, user, f"{case}.csv", data, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    run_jobs()
    status = client.get(f"/api/uploads/{response.json()['files'][0]['id']}", **bearer(user)).json()
    assert status["status"] == "FAILED"
    assert status["error"].startswith(message), status["error"]
    assert not StagedRow.objects.exists()


def test_a_file_whose_rows_are_all_summaries_fails_saying_every_row_was_skipped(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = TRADES.splitlines()[0] + "\n" + "Total,,,,,,,\n"
    response = post(client, user, "totals.csv", text.encode(), django_capture_on_commit_callbacks)
    run_jobs()
    file = ImportFile.objects.get(pk=response.json()["files"][0]["id"])
    assert file.status == "FAILED"
    assert file.error.startswith(("The file has no data rows (every row was skipped", "The file has a header but"))


def test_limits_inside_a_file_fail_it_with_the_line(
    client: Client, settings: Any, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_COLUMNS": 20, "MAX_FIELD_CHARS": 200}
    wide = TRADES + ",".join(["x"] * 30) + "\n"
    long_field = TRADES + '2024-03-05 10:00:00,"' + "A" * 500 + '",Buy,1,1,0,USD,X\n'
    ids = [
        post(client, user, name, text.encode(), django_capture_on_commit_callbacks).json()["files"][0]["id"]
        for name, text in (("wide.csv", wide), ("long.csv", long_field))
    ]
    run_jobs()
    wide_file, long_file = (ImportFile.objects.get(pk=pk) for pk in ids)
    assert wide_file.status == "FAILED" and wide_file.error == "Line 5 has 30 fields; at most 20 are allowed."
    assert long_file.status == "FAILED" and "Line 5" in long_file.error and "200" in long_file.error


def test_the_column_limit_holds_below_the_rows_the_layout_detection_reads(
    client: Client, settings: Any, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_COLUMNS": 20}
    header, first = TRADES.splitlines()[:2]
    text = "\n".join([header, *[first] * 400, ",".join(["x"] * 30)]) + "\n"  # line 402: 30 fields
    file_id = post(client, user, "wide-late.csv", text.encode(), django_capture_on_commit_callbacks).json()["files"][0][
        "id"
    ]
    run_jobs()
    file = ImportFile.objects.get(pk=file_id)
    assert file.status == "FAILED" and file.error == "Line 402 has 30 fields; at most 20 are allowed."
    assert not StagedRow.objects.filter(file=file).exists()


# --------------------------------------------------------------------------------------------------
# Names: stored under a generated name inside MEDIA_ROOT; the original is sanitised for display only.

NAMES = {
    "traversal": ("../../etc/x.csv", "x.csv"),
    "absolute": ("/etc/passwd.csv", "passwd.csv"),
    "windows": ("..\\..\\boot.csv", "boot.csv"),
    "rtl-override": ("invoice\u202ecod.csv", "invoicecod.csv"),
    "control-chars": ("a\x07b\x1bc.csv", "abc.csv"),
    "dotfile": (".htaccess.csv", "htaccess.csv"),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_a_hostile_file_name_is_sanitised_for_display_and_never_used_for_storage(
    client: Client, settings: Any, user: Any, case: str
) -> None:
    name, shown = NAMES[case]
    response = post(client, user, name, TRADES.encode())
    assert response.status_code == 202, response.content
    assert response.json()["files"][0]["name"] == shown
    file = ImportFile.objects.get()
    assert file.original_name == shown
    path = Path(settings.MEDIA_ROOT, file.stored_name).resolve()
    assert path.is_file() and path.is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    # The stored name is generated (32 random hex digits), whatever the original: checked by its shape, not by
    # the shown name's absence (random hex ending in 'abc' once made that assertion fail by chance).
    assert re.fullmatch(r"[0-9a-f]{32}\.csv", path.name), path.name
    folders = Path(file.stored_name).parent.parts
    assert all(re.fullmatch(r"[0-9a-z_-]+", part) for part in folders), folders


def test_a_300_character_name_is_shortened_keeping_its_extension(client: Client, user: Any) -> None:
    response = post(client, user, "A" * 300 + ".csv", TRADES.encode())
    name = response.json()["files"][0]["name"]
    # Django's UploadedFile already cuts names to 255 characters keeping the extension; we keep that bound.
    assert len(name) <= 255 and name.endswith(".csv") and name.startswith("AAAA")
    assert len(ImportFile.objects.get().original_name) <= 255
    from imports.storage import sanitize_display_name

    assert sanitize_display_name("B" * 300 + ".csv").endswith("….csv")  # storage-independent bound
    assert len(sanitize_display_name("B" * 300 + ".csv")) == 255


def test_a_nul_in_the_name_does_not_reach_storage_or_the_database(client: Client, user: Any) -> None:
    from imports.storage import sanitize_display_name

    assert sanitize_display_name("evil\x00.csv") == "evil.csv"
    response = post(client, user, "evil\x00name.csv", TRADES.encode())
    assert response.status_code == 202
    assert "\x00" not in ImportFile.objects.get().original_name


def test_a_hostile_name_is_escaped_in_the_pages(client: Client, user: Any) -> None:
    post(client, user, "<img src=x onerror=alert(1)>.csv", TRADES.encode())
    client.force_login(user)
    page = client.get("/imports/").content
    assert b"<img src=x" not in page and b"&lt;img src=x onerror=alert(1)&gt;.csv" in page


def test_the_binary_sniff_lets_utf16_exports_through(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """UTF-16 files are full of NUL bytes by design: the upload sniff must not take them for binary."""
    data = TRADES.encode("utf-16")  # with BOM, as Excel's "Unicode text" export
    response = post(client, user, "excel-unicode.csv", data, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    run_jobs()
    file = ImportFile.objects.get()
    assert file.status == "PENDING_APPROVAL" and file.rows_total == 3, file.error
