"""Readable format names: the platform when the header says so, else the target and the columns it reads."""

from __future__ import annotations

from typing import Any

import pytest

from formats.models import CsvFormat
from formats.naming import platform_of, readable_format_name
from formats.suggest import suggest_mapping
from tests.imports.pipeline.test_pipeline import upload

HEADER = ["Trade Date", "Ticker", "Buy or Sell", "Shares", "Fill Price", "Fee", "Ccy", "Ref"]
ROWS = [["2024-03-01 09:30:00", "AAPL", "Buy", "10", "171.25", "1.00", "USD", "T-1"]]


def test_an_unknown_broker_is_named_by_the_target_and_the_key_columns_its_mapping_reads() -> None:
    mapping = suggest_mapping(target="orders", columns=HEADER, sample_rows=ROWS)
    name = readable_format_name(target="orders", header=HEADER, mapping=mapping)
    assert name == "Orders: Trade Date, Ticker, Buy or Sell, Shares, Fill Price"


@pytest.mark.parametrize(
    ("header", "platform"),
    [
        (["Action", "Time", "ISIN", "Ticker", "Name", "No. of shares", "Price / share", "ID"], "Trading 212"),
        (["DataDiscriminator", "Asset Category", "Currency", "Symbol", "Quantity"], "Interactive Brokers"),
        (["Date", "Action", "Symbol", "Description", "Quantity", "Price", "Fees & Comm", "Amount"], "Charles Schwab"),
        (["User_ID", "UTC_Time", "Account", "Operation", "Coin", "Change", "Remark"], "Binance"),
        (["Date", "Symbol", "Action", "Quantity", "Price"], None),  # nothing distinctive: no guess
    ],
)
def test_a_platform_is_named_only_when_its_distinctive_columns_are_all_there(
    header: list[str], platform: str | None
) -> None:
    assert platform_of(header) == platform


def test_a_platforms_name_carries_the_section_and_the_column_count() -> None:
    header = ["DataDiscriminator", "Asset Category", "Currency", "Symbol", "Quantity"]
    name = readable_format_name(target="orders", header=header, mapping={}, section="Trades")
    assert name == "Interactive Brokers orders [Trades] (5 columns)"


@pytest.mark.parametrize(
    ("context", "platform"),
    [
        ([["Trading 212 - Account statement"], ["Period", "2024"]], "Trading 212"),
        ([["IBKR activity statement"]], "Interactive Brokers"),
        ([["Export from degiro.nl"]], None),  # 'degiro.nl' is a word of its own, not the name
        ([["Account", "DEGIRO"]], "DEGIRO"),
        ([["Statement", "Saxophone club"]], None),  # not a whole word
        ([], None),
    ],
)
def test_a_platform_named_above_the_table_names_the_format(context: list[list[str]], platform: str | None) -> None:
    mapping = suggest_mapping(target="orders", columns=HEADER, sample_rows=ROWS)
    name = readable_format_name(target="orders", header=HEADER, mapping=mapping, context=context)
    if platform:
        assert name == f"{platform} orders ({len(HEADER)} columns)"
    else:
        assert name == "Orders: Trade Date, Ticker, Buy or Sell, Shares, Fill Price"


@pytest.mark.django_db
def test_a_file_whose_first_line_names_the_platform_gets_a_format_named_after_it(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = "Broker,Trading 212\n" + ",".join(HEADER) + "\n" + ",".join(ROWS[0]) + "\n"
    file = upload(user, text=text, name="export.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert CsvFormat.objects.get(pk=file.format_id).name == f"Trading 212 orders ({len(HEADER)} columns)"


@pytest.mark.django_db
def test_a_new_format_gets_its_readable_name_and_keeps_the_first_file_name_apart(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(
        user, name="tuxedeg-transactions-en.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks
    )
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.name == "Orders: Trade Date, Ticker, Buy or Sell, Shares, Fill Price"
    assert fmt.first_seen_file_name == "tuxedeg-transactions-en.csv"
