"""One reader interface for every kind of upload: CSV text, workbooks (.xlsx/.xlsm, .xls, .ods), JSON.

`detect_layout`, `iter_records` and `sample_records` take and give what the CSV reader's do
(imports/reading.py): a `FileLayout`, then `Record`s and `Skipped`s. The kind is found from the content
(imports/sheets/sniff.py) and kept on the layout (`layout.kind`, absent = csv), so the pipeline, the
preview and the re-staging read every kind the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from copy import copy
from dataclasses import replace
from itertools import islice
from typing import Any

from config.errors import UnreadableFile
from imports import reading
from imports.reading import FileLayout, ReaderOptions, Record, Skipped
from imports.reading.ledger import LedgerSpec, detect_ledger, join_legs, ledger_possible
from imports.sheets import jsonfile, ods, xls, xlsx
from imports.sheets.containers import ContainerLimits
from imports.sheets.sniff import CSV, JSON, sniff_kind
from imports.sheets.workbook import SheetLimits, detect_book_layout, iter_book_records

WORKBOOK_KINDS = ("xlsx", "xls", "ods")
OPENERS = {"xlsx": xlsx.XlsxBook, "xls": xls.XlsBook, "ods": ods.OdsBook}


def sheet_limits(airlock: dict[str, Any]) -> SheetLimits:
    """The reading limits configured in settings.AIRLOCK."""
    return SheetLimits(
        max_columns=airlock.get("MAX_COLUMNS", SheetLimits.max_columns),
        max_field_chars=airlock.get("MAX_FIELD_CHARS", SheetLimits.max_field_chars),
        max_sheets=airlock.get("MAX_SHEETS", SheetLimits.max_sheets),
        container=ContainerLimits.from_settings(airlock),
    )


def kind_of(layout: FileLayout) -> str:
    return getattr(layout, "kind", CSV)


LEDGER_SAMPLE_ROWS = 300  # records read to decide whether a table is a ledger (imports/reading/ledger.py)


def detect_layout(
    path: str | os.PathLike, options: ReaderOptions | None = None, *, limits: SheetLimits | None = None
) -> FileLayout:
    """Work out what the file is and how its table is written (see the module docstring); a ledger's
    balance movements are read as one row per trade (`layout.ledger`, `layout.columns` the joined ones)."""
    limits = limits or SheetLimits()
    layout = _detect_table(path, options, limits)
    if not ledger_possible(layout.columns):
        return layout  # a price column: no sample to read for the ledger test
    items = _table_records(path, layout, limits)
    try:
        sample = [item.cells for item in islice((i for i in items if isinstance(i, Record)), LEDGER_SAMPLE_ROWS)]
    except UnreadableFile:
        return layout  # a broken row further down: reading the file reports it, with its line, as before
    finally:
        getattr(items, "close", lambda: None)()
    spec = detect_ledger(layout.columns, sample)
    if spec is not None:
        layout.ledger = spec.as_dict()
        layout.columns = spec.joined_columns
    return layout


def _detect_table(path: str | os.PathLike, options: ReaderOptions | None, limits: SheetLimits) -> FileLayout:
    with open(path, "rb") as handle:
        kind = sniff_kind(handle, limits=limits.container)
    if kind == CSV:
        return reading.detect_layout(
            path, options, max_columns=limits.max_columns, max_field_chars=limits.max_field_chars
        )
    if kind == JSON:
        json_options = replace(options, header_line=None) if options else None  # a CSV twin's pin means nothing here
        return jsonfile.detect_json_layout(path, json_options, _json_limits(limits))
    book = OPENERS[kind](path, limits)
    try:
        layout = detect_book_layout(book, options)
        layout.rows = book.row_estimate(next(s for s in book.sheets if s.name == layout.section))
        return layout
    finally:
        book.close()


def iter_records(
    path: str | os.PathLike, layout: FileLayout, *, limits: SheetLimits | None = None
) -> Iterator[Record | Skipped]:
    """Stream the records of the layout's table, skipping what is not data (with why); a ledger's rows
    joined into one record per trade."""
    limits = limits or SheetLimits()
    if not layout.ledger:
        return _table_records(path, layout, limits)
    spec = LedgerSpec.from_dict(layout.ledger)
    table = copy(layout)
    table.columns, table.ledger = list(spec.columns), None
    return join_legs(_table_records(path, table, limits), spec, Record, Skipped)


def _table_records(path: str | os.PathLike, layout: FileLayout, limits: SheetLimits) -> Iterator[Record | Skipped]:
    kind = kind_of(layout)
    if kind == CSV:
        return reading.iter_records(
            path, layout, max_field_chars=limits.max_field_chars, max_columns=limits.max_columns
        )
    if kind in (JSON, "ndjson"):
        return jsonfile.iter_json_records(path, layout, _json_limits(limits))
    return _book_records(path, layout, limits)


def _book_records(path: str | os.PathLike, layout: FileLayout, limits: SheetLimits) -> Iterator[Record | Skipped]:
    book = OPENERS[kind_of(layout)](path, limits)
    try:
        yield from iter_book_records(book, layout)  # type: ignore[arg-type]
    finally:
        book.close()


def sample_records(
    path: str | os.PathLike, layout: FileLayout, n: int = 20, *, limits: SheetLimits | None = None
) -> list[Record]:
    """The first `n` records (skipped rows left out)."""
    items = iter_records(path, layout, limits=limits)
    try:
        return list(islice((item for item in items if isinstance(item, Record)), n))
    finally:
        items.close()  # type: ignore[attr-defined]


def fingerprint_section(layout: FileLayout) -> str | None:
    """The section that is part of a format's identity: a CSV statement's section. A sheet's name or a
    JSON array's path is not (exports name their sheets by date; 'Sheet1' and 'Trades' hold the same
    table), so a workbook and a CSV with the same header are the same format."""
    return layout.section if kind_of(layout) == CSV else None


def _json_limits(limits: SheetLimits) -> jsonfile.JsonLimits:
    return jsonfile.JsonLimits(max_columns=limits.max_columns, max_field_chars=limits.max_field_chars)
