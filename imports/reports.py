"""Reads for the user's pages and the JSON API: error rows, staged rows, order filters and figures, stats.

Everything a user can see is scoped to the caller here, so another user's ids answer 404 everywhere.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import Case, Count, DecimalField, ExpressionWrapper, F, Min, QuerySet, Sum, Value, When
from django.utils import timezone

from config.errors import InvalidRequest
from formats.models import CsvFormat, FormatStatus
from formats.targets import TARGETS
from imports.models import FileStatus, ImportFile, Order, Side
from staging.models import AWAITING_APPROVAL, StagedRow, StagedStatus, counts_by_shown_status, shown_status

ERROR_ROWS_SQL = """
    SELECT s.line, e.item ->> 'field', e.item ->> 'value', e.item ->> 'message'
      FROM staging_stagedrow s
     CROSS JOIN LATERAL jsonb_array_elements(COALESCE(s.errors, '[]'::jsonb)) WITH ORDINALITY AS e(item, n)
     WHERE s.file_id = %s AND s.status = 'FAILED'
     ORDER BY s.line, e.n
"""


@dataclass(frozen=True)
class RowError:
    """One problem of one invalid row, as the user sees it."""

    row: int
    field: str | None
    value: str
    error: str

    @property
    def field_label(self) -> str:
        """The field as users know it ('Executed at', not 'executed_at')."""
        return field_label(self.field)

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "value": self.value, "error": self.error}


class ErrorList:
    """The invalid rows' problems of one file, sliceable and countable (so Django's Paginator can use it)."""

    def __init__(self, file_id: int):
        self.file_id = file_id

    def count(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({ERROR_ROWS_SQL}) t", [self.file_id])
            return cursor.fetchone()[0]

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[RowError]:
        if not isinstance(index, slice):
            raise TypeError("ErrorList only supports slices")
        start = index.start or 0
        limit = (index.stop - start) if index.stop is not None else None
        sql = ERROR_ROWS_SQL + (" LIMIT %s" if limit is not None else "") + " OFFSET %s"
        params = [self.file_id, *([limit] if limit is not None else []), start]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [
                RowError(row=line, field=fld, value=value or "", error=message or "")
                for line, fld, value, message in cursor.fetchall()
            ]


def file_header(file: ImportFile) -> list[str]:
    """The file's header cells as the user wrote them (falls back to the format's column names)."""
    header = (file.layout or {}).get("header") or (file.layout or {}).get("columns")
    if header:
        return list(header)
    return list(file.format.columns) if file.format else []


WORKBOOK_KINDS = ("xlsx", "xls", "ods")


def row_label(file: ImportFile, line: int) -> str:
    """Where a row is, as the user finds it: 'line 12' (CSV, NDJSON), "sheet 'Trades', row 12", 'record 12'."""
    layout = file.layout or {}
    kind = layout.get("kind", "csv")
    if kind in WORKBOOK_KINDS:
        return f"sheet '{layout.get('section') or ''}', row {line}"
    if kind == "json":
        return f"record {line}"
    return f"line {line}"


_FIELD_LABELS = {f.name: f.label for target in TARGETS.values() for f in target.fields}


def field_label(field: str | None) -> str:
    """A target field's label for users ('executed_at' -> 'Executed at'); 'Row' for a whole-row problem."""
    if not field:
        return "Row"
    return _FIELD_LABELS.get(field, field)


def error_text(error: dict[str, Any]) -> str:
    """One row error in the user's words: the field's label, the message, the value unless it says it."""
    message = str(error.get("message", ""))
    value = error.get("value")
    shown = f" (value {value!r})" if value and f"'{value}'" not in message else ""
    return f"{field_label(error.get('field'))}: {message}{shown}"


def error_report_rows(file: ImportFile) -> Iterator[list[str]]:
    """The invalid rows' original cells plus an 'errors' cell, in line order (streamed)."""
    width = len(file_header(file))
    rows = (
        StagedRow.objects.filter(file=file, status=StagedStatus.INVALID)
        .order_by("line")
        .values_list("line", "raw", "errors")
    )
    for line, raw, errors in rows.iterator(chunk_size=2000):
        cells = [str(cell) for cell in raw]
        cells += [""] * (width - len(cells))
        messages = "; ".join(error_text(e) for e in errors or [])
        yield [*cells, f"{row_label(file, line)}: {messages}"]


# --- staging, from the uploader's side -------------------------------------------------------------


def staged_rows_for(user: Any) -> QuerySet[StagedRow]:
    """The caller's staged rows (any status), with their file and format."""
    return StagedRow.objects.filter(file__owner=user).select_related("file", "format")


def staging_status(user: Any) -> dict[str, Any]:
    """The caller's staged rows by status and files by status, plus what waits for approval."""
    rows = counts_by_shown_status(staged_rows_for(user))
    files = dict(ImportFile.objects.filter(owner=user).order_by().values_list("status").annotate(n=Count("id")))
    waiting = StagedRow.objects.filter(AWAITING_APPROVAL, file__owner=user).aggregate(
        rows=Count("id"), files=Count("file", distinct=True)
    )
    return {
        "rows": {status: rows.get(status, 0) for status in StagedStatus.values},
        "files": {status: files.get(status, 0) for status in FileStatus.values},
        "waiting": {"rows": waiting["rows"] or 0, "files": waiting["files"] or 0},
    }


def staged_row_json(row: StagedRow) -> dict[str, Any]:
    return {
        "id": row.pk,
        "file": row.file_id,
        "file_name": row.file.original_name,
        "line": row.line,
        "status": (shown := shown_status(row.status, row.format.status)),
        "status_display": StagedStatus(shown).label,
        "cells": row.raw,
        "format": {"id": row.format_id, "name": row.format.name, "status": row.format.status},
        "errors": row.errors or [],
    }


# --- orders: filters and figures -------------------------------------------------------------------


@dataclass
class OrderFilters:
    symbol: str = ""
    side: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    source_file: int | None = None
    instrument: int | str | None = None  # an instrument's id, or "none" for orders not linked to one
    errors: dict[str, str] = field(default_factory=dict)

    def as_query(self) -> dict[str, str]:
        pairs = {
            "symbol": self.symbol,
            "side": self.side,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "source_file": str(self.source_file) if self.source_file else "",
            "instrument": str(self.instrument) if self.instrument else "",
        }
        return {key: value for key, value in pairs.items() if value}


def _parse_date(raw: str, name: str, errors: dict[str, str]) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors[name] = f"'{raw}' is not a date (use YYYY-MM-DD)."
        return None


def order_filters_parse(params: Any) -> OrderFilters:
    """Read ?symbol, side, date_from, date_to, source_file; problems are collected per field."""
    errors: dict[str, str] = {}
    side = (params.get("side") or "").strip().upper()
    if side and side not in Side.values:
        errors["side"] = f"'{side}' is not a side (use BUY or SELL)."
        side = ""
    source_raw = (params.get("source_file") or "").strip()
    source = None
    if source_raw:
        if source_raw.isdigit():
            source = int(source_raw)
        else:
            errors["source_file"] = f"'{source_raw}' is not a file id."
    instrument_raw = (params.get("instrument") or "").strip().lower()
    instrument: int | str | None = None
    if instrument_raw:
        if instrument_raw.isdigit():
            instrument = int(instrument_raw)
        elif instrument_raw == "none":
            instrument = "none"
        else:
            errors["instrument"] = f"'{instrument_raw[:40]}' is not an instrument id (or 'none' for orders not linked)."
    filters = OrderFilters(
        symbol=(params.get("symbol") or "").strip().upper()[:64],
        side=side,
        date_from=_parse_date((params.get("date_from") or "").strip(), "date_from", errors),
        date_to=_parse_date((params.get("date_to") or "").strip(), "date_to", errors),
        source_file=source,
        instrument=instrument,
        errors=errors,
    )
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        errors["date_to"] = "date_to is before date_from."
    return filters


def order_filters_strict(params: Any) -> OrderFilters:
    """Like order_filters_parse, but a bad filter is a 400 (the API never silently ignores one)."""
    filters = order_filters_parse(params)
    if filters.errors:
        raise InvalidRequest(
            "Some filters are not valid: " + " ".join(filters.errors.values()),
            code="invalid_filter",
            details=filters.errors,
        )
    return filters


def orders_filtered(user: Any, filters: OrderFilters) -> QuerySet[Order]:
    """The caller's orders (production rows only: staged rows are never orders) matching the filters."""
    orders = Order.objects.filter(owner=user).select_related("source_file", "instrument")
    if filters.instrument == "none":
        orders = orders.filter(instrument__isnull=True)
    elif filters.instrument:
        orders = orders.filter(instrument_id=filters.instrument)
    if filters.symbol:
        orders = orders.filter(symbol=filters.symbol)
    if filters.side:
        orders = orders.filter(side=filters.side)
    if filters.date_from:
        orders = orders.filter(executed_at__date__gte=filters.date_from)
    if filters.date_to:
        orders = orders.filter(executed_at__date__lte=filters.date_to)
    if filters.source_file:
        orders = orders.filter(source_file_id=filters.source_file)
    return orders


def positions(orders: QuerySet[Order], limit: int = 200) -> list[dict[str, Any]]:
    """Net quantity (bought - sold) per instrument across brokers, however each spelled it; orders not linked to an
    instrument yet are one position per symbol. Largest first by number of trades."""
    signed = Case(When(side=Side.BUY, then=F("quantity")), default=-F("quantity"))
    rows = (
        orders.order_by()
        .values("instrument", "instrument__name", "instrument__isin", "instrument__ticker")
        .annotate(
            unlinked_symbol=Case(When(instrument__isnull=True, then=F("symbol")), default=Value("")),
        )
        .values("instrument", "instrument__name", "instrument__isin", "instrument__ticker", "unlinked_symbol")
        .annotate(net=Sum(signed), trades=Count("id"), spellings=ArrayAgg("symbol", distinct=True))
        .order_by("-trades", "instrument__name", "unlinked_symbol")[:limit]
    )
    return [
        {
            "instrument": (
                {
                    "id": row["instrument"],
                    "name": row["instrument__name"],
                    "isin": row["instrument__isin"],
                    "ticker": row["instrument__ticker"],
                }
                if row["instrument"]
                else None
            ),
            "symbol": row["unlinked_symbol"] or None,
            "quantity": row["net"],
            "trades": row["trades"],
            "symbols": sorted(row["spellings"]),
        }
        for row in rows
    ]


def order_figures(orders: QuerySet[Order]) -> dict[str, Any]:
    """Number of trades and, per currency, the total bought and sold (sum of quantity * price)."""
    notional = ExpressionWrapper(
        F("quantity") * F("price"), output_field=DecimalField(max_digits=40, decimal_places=10)
    )
    per: dict[str, dict[str, Decimal]] = {}
    trades = 0
    for currency, side, total, n in (
        orders.order_by()
        .values("currency", "side")
        .annotate(total=Sum(notional), n=Count("id"))
        .values_list("currency", "side", "total", "n")
    ):
        bucket = per.setdefault(currency, {"bought": Decimal(0), "sold": Decimal(0)})
        bucket["bought" if side == Side.BUY else "sold"] += total or Decimal(0)
        trades += n
    return {
        "trades": trades,
        "by_currency": [
            {"currency": cur, "bought": _money(v["bought"]), "sold": _money(v["sold"])}
            for cur, v in sorted(per.items())
        ],
    }


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


# --- the admin's staging dashboard -----------------------------------------------------------------


def admin_staging_stats(*, now: dt.datetime | None = None, window_days: int = 7) -> dict[str, Any]:
    """Staged rows by status, oldest pending format, approvals, time to approval, throughput, error rate."""
    now = now or timezone.now()
    since = now - dt.timedelta(days=window_days)
    rows = counts_by_shown_status(StagedRow.objects.all())
    oldest = CsvFormat.objects.filter(status=FormatStatus.PENDING).aggregate(t=Min("created_at"))["t"]
    approvals = list(
        CsvFormat.objects.filter(approved_at__gte=since, builtin=False).values_list("created_at", "approved_at")
    )
    waits = [(approved - created).total_seconds() for created, approved in approvals]
    finished = ImportFile.objects.filter(finished_at__gte=since)
    totals = finished.filter(status__in=[FileStatus.IMPORTED, FileStatus.PARTIAL, FileStatus.FAILED]).aggregate(
        imported=Sum("rows_imported"),
        invalid=Sum("rows_invalid"),
        skipped=Sum("rows_skipped"),
        duplicate=Sum("rows_duplicate"),
    )
    processed = sum(v or 0 for v in totals.values())
    files_by_status = dict(finished.order_by().values_list("status").annotate(n=Count("id")))
    return {
        "window_days": window_days,
        "staged_rows": {status: rows.get(status, 0) for status in StagedStatus.values},
        "pending_formats": CsvFormat.objects.filter(status=FormatStatus.PENDING).count(),
        "oldest_pending_format_age_seconds": round((now - oldest).total_seconds()) if oldest else None,
        "approvals": {
            "count": len(waits),
            "median_seconds_to_approval": round(statistics.median(waits)) if waits else None,
        },
        "migration_throughput": _throughput(since),
        "error_rate": {
            "rows_processed": processed,
            "rows_invalid": totals["invalid"] or 0,
            "rows_failed": totals["invalid"] or 0,  # the API's older name of rows_invalid
            "rate": round((totals["invalid"] or 0) / processed, 4) if processed else None,
            "files_finished": sum(files_by_status.values()),
            "files_failed": files_by_status.get(FileStatus.FAILED, 0),
        },
    }


def _throughput(since: dt.datetime, limit: int = 50) -> dict[str, Any]:
    """Rows per second over the most recent finished migrations.

    A migration starts when its file starts processing or, for a staged file, when its format was approved
    (whichever is later), so time spent waiting for an admin does not count as migration time.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT f.rows_imported + f.rows_invalid + f.rows_skipped + f.rows_duplicate,
                   EXTRACT(EPOCH FROM f.finished_at
                                      - GREATEST(f.started_at, COALESCE(c.approved_at, f.started_at)))
              FROM imports_importfile f JOIN formats_csvformat c ON c.id = f.format_id
             WHERE f.status IN ('IMPORTED', 'PARTIAL') AND f.finished_at >= %s AND f.started_at IS NOT NULL
             ORDER BY f.finished_at DESC LIMIT %s
            """,
            [since, limit],
        )
        samples = [(rows, float(seconds)) for rows, seconds in cursor.fetchall() if seconds is not None]
    rows = sum(r for r, _ in samples)
    seconds = sum(max(s, 0.0) for _, s in samples)
    return {
        "migrations": len(samples),
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
    }


FIX_ROWS_ON_PAGE = 25


def rows_to_fix(file: ImportFile, limit: int = FIX_ROWS_ON_PAGE) -> list[dict[str, Any]]:
    """The first invalid rows of a file as the fix form shows them: each problem with its message and the
    cells of the columns its field is read from (all of the row's cells for a whole-row problem)."""
    fmt = file.format
    if fmt is None:
        return []
    columns = list(fmt.columns)
    fields = (fmt.mapping or {}).get("fields") or {}
    header = file_header(file)
    shown: list[dict[str, Any]] = []
    rows = StagedRow.objects.filter(file_id=file.pk, status=StagedStatus.INVALID).order_by("line")[:limit]
    for row in rows.values("line", "raw", "errors"):
        raw = list(row["raw"]) + [""] * max(0, len(columns) - len(row["raw"]))
        problems = []
        for error in row["errors"] or []:
            names = (fields.get(error.get("field") or "") or {}).get("columns") or columns
            inputs = [
                {
                    "column": column,
                    "label": header[columns.index(column)] if columns.index(column) < len(header) else column,
                    "name": f"cell-{row['line']}-{columns.index(column)}",
                    "value": raw[columns.index(column)],
                }
                for column in names
                if column in columns
            ]
            problems.append({"label": field_label(error.get("field")), "message": error_text(error), "inputs": inputs})
        shown.append({"line": row["line"], "label": row_label(file, row["line"]), "problems": problems})
    return shown
