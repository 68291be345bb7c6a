"""Built-in formats: they load idempotently, their mappings validate, and their fingerprints are those of
the headers the reader detects in real files of each format (the shared corpus, or a small file written
here from the broker's documented layout when the corpus has none)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from formats.builtin import BUILTIN_DIR, builtin_definitions, load_builtin_formats
from formats.fingerprint import fingerprint
from formats.models import CsvFormat, FormatStatus
from formats.services import mapping_validate
from imports.models import FileStatus, ImportFile, Order
from imports.reading import detect_layout
from imports.services.uploads import upload_batch_create
from tests.conftest import corpus_file, csv_upload

pytestmark = pytest.mark.django_db

DEFINITION_FILES = sorted(path.name for path in BUILTIN_DIR.glob("*.json"))

# Small files in the documented layouts of the built-ins that have no corpus file (values made up).
SCHWAB_TODAYS_TRADES = """Today's Trade Activity for ...1234 (Individual) on 9/25/24 16:05:12

Filled Orders
,,Exec Time,Spread,Side,Qty,Pos Effect,Symbol,Exp,Strike,Type,Price,Net Price,Order Type
,,9/25/24 10:31:36,STOCK,SELL,-25,TO CLOSE,ABCD,,,STOCK,4.29,4.29,STP
,,9/25/24 09:31:30,STOCK,BUY,+25,TO OPEN,ABCD,,,STOCK,4.33,4.33,LMT
"""
SCHWAB_TODAYS_TRADES_2025 = """Today's Trade Activity for ...7044 (Individual) on 10/24/25 18:45:11

Filled Orders
,,Exec Time,Spread,Side,Qty,Pos Effect,Symbol,Exp,Strike,Type,Price,Net Price,Price Improvement,Order Type
,,10/24/25 09:51:38,STOCK,SELL,-75,TO CLOSE,WXYZ,,,STOCK,8.30,8.30,-,MKT
,,10/24/25 09:40:02,STOCK,BUY,+75,TO OPEN,WXYZ,,,STOCK,8.12,8.12,.01,LMT
"""
ETRADE_TRANSACTIONS = """For Account:,####1234

TransactionDate,TransactionType,SecurityType,Symbol,Quantity,Amount,Price,Commission,Description

04/05/23,Sold,EQ,ABCD,-2,202.19,101.1,0,ABCD INC
04/05/23,Dividend,EQ,ABCD,0,1.25,0,0,ABCD INC DIVIDEND
04/03/23,Bought,EQ,EFGH,9,-280.06,31.1176,0.5,EFGH TR
"""
SYNTHETIC = {
    "schwab-todays-trade-activity.json": SCHWAB_TODAYS_TRADES,
    "schwab-todays-trade-activity-price-improvement.json": SCHWAB_TODAYS_TRADES_2025,
    "etrade-transactions.json": ETRADE_TRANSACTIONS,
}
# Corpus files of each built-in whose header (as the reader detects it) must give the built-in's fingerprint.
CORPUS_FILES = {
    "ibkr-flex-trades-full.json": ["ibkr/ghostfolio-flex-trades-all-fields.csv"],
    "ibkr-flex-trades-short.json": ["ibkr/e2g-flex-trades.csv"],
    "ibkr-activity-trades-with-account.json": [
        "ibkr/irp-activity-trades-multi-account.csv",
        "ibkr/irp-activity-trades-quoted-thousands.csv",
    ],
    "ibkr-activity-trades-single-account.json": ["ibkr/irp-activity-trades-option-assignment.csv"],
    "ibkr-activity-trades-single-account-no-exchange.json": ["ibkr/tuxedeg-activity-statement-2022-czk.csv"],
    "schwab-transactions.json": [
        "schwab/cgtcalc-transactions-2023.csv",
        "schwab/e2g-transactions.csv",
        "schwab/reds-brokerage-transactions-2023.csv",
        "schwab/bci-brokerage-transactions-2020.csv",
    ],
}
HEADER_CASES = [
    *[pytest.param(name, path, None, id=f"{name}:{path}") for name, paths in CORPUS_FILES.items() for path in paths],
    *[pytest.param(name, None, text, id=f"{name}:synthetic") for name, text in SYNTHETIC.items()],
]


def definition(name: str) -> dict[str, Any]:
    """One built-in definition by its file name."""
    return json.loads((BUILTIN_DIR / name).read_text())


def detect(path: Path) -> Any:
    """The layout the pipeline detects for a file (same limits as the pipeline)."""
    return detect_layout(
        path,
        None,
        max_columns=settings.AIRLOCK["MAX_COLUMNS"],
        max_field_chars=settings.AIRLOCK["MAX_FIELD_CHARS"],
    )


def test_every_definition_file_has_a_json_source_and_a_unique_fingerprint() -> None:
    assert DEFINITION_FILES, "no built-in format definitions"
    definitions = builtin_definitions()
    prints = [fingerprint(d["header"], section=(d["mapping"].get("reader") or {}).get("section")) for d in definitions]
    assert len(set(prints)) == len(prints), "two built-ins share a fingerprint: the second would overwrite the first"
    assert set(DEFINITION_FILES) == set(CORPUS_FILES) | set(SYNTHETIC)
    for item in definitions:
        assert item["target"] == "orders"
        assert item["source"], f"{item['name']}: cite where the header comes from"
        assert len(item["columns"]) == len(item["header"])


def test_loading_the_builtins_creates_approved_formats_and_loading_again_changes_nothing() -> None:
    first = load_builtin_formats()
    assert [outcome for _, outcome in first] == ["created"] * len(DEFINITION_FILES)
    second = load_builtin_formats()
    assert [outcome for _, outcome in second] == ["unchanged"] * len(DEFINITION_FILES)
    formats = CsvFormat.objects.filter(builtin=True)
    assert formats.count() == len(DEFINITION_FILES)
    assert set(formats.values_list("status", flat=True)) == {FormatStatus.APPROVED}


@pytest.mark.parametrize("name", DEFINITION_FILES)
def test_a_builtin_mapping_validates_against_its_columns(name: str) -> None:
    item = definition(name)
    validated = mapping_validate(target=item["target"], mapping=item["mapping"], columns=item["columns"])
    assert validated["fields"] == item["mapping"]["fields"]
    assert validated["filters"] == item["mapping"]["filters"]


@pytest.mark.parametrize(("name", "relative", "text"), HEADER_CASES)
def test_a_builtin_fingerprint_equals_the_fingerprint_of_the_header_the_reader_detects(
    name: str, relative: str | None, text: str | None, tmp_path: Path
) -> None:
    item = definition(name)
    section = (item["mapping"].get("reader") or {}).get("section")
    if relative is not None:
        path = corpus_file(relative)
    else:
        path = tmp_path / "export.csv"
        path.write_text(text)
    layout = detect(path)
    assert layout.section == section
    assert fingerprint(layout.header, section=layout.section) == fingerprint(item["header"], section=section), (
        f"reader header {layout.header} != built-in header {item['header']}"
    )
    # The mapping refers to the reader's column names: they must be the built-in's.
    assert layout.columns[: len(item["columns"])] == item["columns"]


@pytest.mark.parametrize(
    ("name", "orders"),
    [
        (
            "schwab-todays-trade-activity.json",
            [
                ("ABCD", "SELL", "25", "4.29", "2024-09-25T14:31:36+00:00"),
                ("ABCD", "BUY", "25", "4.33", "2024-09-25T13:31:30+00:00"),
            ],
        ),
        (
            "schwab-todays-trade-activity-price-improvement.json",
            [
                ("WXYZ", "SELL", "75", "8.3", "2025-10-24T13:51:38+00:00"),
                ("WXYZ", "BUY", "75", "8.12", "2025-10-24T13:40:02+00:00"),
            ],
        ),
        (
            "etrade-transactions.json",
            [
                ("ABCD", "SELL", "2", "101.1", "2023-04-05T04:00:00+00:00"),
                ("EFGH", "BUY", "9", "31.1176", "2023-04-03T04:00:00+00:00"),
            ],
        ),
    ],
)
def test_a_file_in_a_documented_builtin_layout_imports_without_review(
    name: str,
    orders: list[tuple[str, ...]],
    user: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    load_builtin_formats()
    with django_capture_on_commit_callbacks(execute=True):
        _, files = upload_batch_create(owner=user, files=[csv_upload("export.csv", SYNTHETIC[name])])
    run_jobs()
    file = ImportFile.objects.get(pk=files[0].pk)
    assert file.status == FileStatus.IMPORTED, (file.status, file.error, file.skip_reasons)
    assert file.format.name == definition(name)["name"]
    stored = [
        (
            o.symbol,
            o.side,
            format(o.quantity.normalize(), "f"),
            format(o.price.normalize(), "f"),
            o.executed_at.isoformat(),
        )
        for o in Order.objects.filter(source_file=file).order_by("source_line")
    ]
    assert stored == orders
