"""The SQL fast path of the migration gives exactly what the per-row Python converters give."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.db import connection

from formats.models import CsvFormat, FormatStatus
from imports.bench.data import HEADER, MAPPING
from imports.models import FileStatus, ImportBatch, ImportFile, Order
from imports.pipeline import fastpath
from imports.pipeline.migrate import OPEN_ROW_STATUSES, file_migrate
from imports.targets.orders import order_digest, order_identity
from staging.models import StagedRow, StagedStatus
from staging.services import staged_rows_write

pytestmark = pytest.mark.django_db


def row() -> list[str]:
    base = {
        "Account": "U1000001",
        "Symbol": "aapl",
        "Side": "Buy",
        "Quantity": "10",
        "Price": "101.5",
        "Commission": "1.25",
        "Currency": "USD",
        "Trade Time": "2024-03-01 09:30:00",
        "Trade ID": "T1",
        "Exchange": "NASDAQ",
        "Order Type": "LMT",
        "Description": "Limit",
    }
    return [base[column] for column in HEADER]


def tricky_rows() -> list[list[str]]:
    """Rows each path must agree on: edge cases of every converter and of the target's checks."""
    values = [
        {},
        {"Quantity": "+5"},
        {"Quantity": "007"},
        {"Quantity": " 12 "},
        {"Quantity": "1,234.5"},
        {"Quantity": "(5)"},
        {"Quantity": "-3"},
        {"Quantity": "0"},
        {"Quantity": "-0"},
        {"Quantity": "12x"},
        {"Quantity": ""},
        {"Quantity": "n/a"},
        {"Quantity": "1000000000000000000"},
        {"Quantity": "1e3"},
        {"Price": "-0"},
        {"Price": "-1"},
        {"Price": "0.123456789012345"},
        {"Price": "€12.50"},
        {"Commission": ""},
        {"Commission": "-"},
        {"Commission": "-2.5"},
        {"Commission": "n/a"},
        {"Side": "BOT"},
        {"Side": "buy to open"},
        {"Side": "Market buy"},
        {"Side": "Köp"},
        {"Side": "hold"},
        {"Side": "null"},
        {"Side": " Sell "},
        {"Side": "S"},
        {"Currency": "eur"},
        {"Currency": "CAN"},
        {"Currency": "$"},
        {"Currency": "EURO"},
        {"Currency": "-"},
        {"Currency": "USDT"},
        {"Currency": "btc"},
        {"Currency": "XYZ"},
        {"Currency": "ALL"},
        {"Trade Time": "1850-06-01 10:00:00"},
        {"Trade Time": "1899-12-31 23:59:59"},
        {"Trade Time": "1900-01-01 00:00:00"},
        {"Trade Time": "2099-01-05 09:30:00"},
        {"Symbol": '"><svg onload=alert(1)>'},
        {"Symbol": "A{B}"},
        {"Symbol": "BRK.B"},
        {"Trade Time": "2024-02-30 10:00:00"},
        {"Trade Time": "2023-02-29 10:00:00"},
        {"Trade Time": "2024-02-29 10:00:00"},
        {"Trade Time": "2024-13-01 10:00:00"},
        {"Trade Time": "2024-01-05 24:00:00"},
        {"Trade Time": "2024-1-5 9:3:7"},
        {"Trade Time": "2024-01-05  09:30:00"},
        {"Trade Time": "2024-01-05T09:30:00"},
        # The zero-padded shape's length and separators with something else where a digit goes: the shape's
        # test refuses them, the pattern reads the first (one or more spaces) and refuses the others.
        {"Trade Time": "2024-01-05  9:30:00"},
        {"Trade Time": "2024-1 -05 09:30:00"},
        {"Trade Time": "2024-01-0- 09:30:00"},
        {"Trade Time": "2024-01-05 09:3::00"},
        {"Trade Time": "2024-01-05 09:30:0x"},
        {"Trade Time": "+024-01-05 09:30:00"},
        {"Trade Time": "２０２４-01-05 09:30:00"},
        {"Trade Time": "0000-01-01 00:00:00"},
        {"Trade Time": "2024-01-05 09:30:60"},
        {"Trade Time": ""},
        {"Symbol": "ß-corp"},
        {"Symbol": "x" * 65},
        {"Symbol": "null"},
        {"Symbol": " msft "},
        {"Symbol": ""},
        {"Account": ""},
        {"Account": "--"},
        {"Account": "ü1"},
        {"Account": "u1000001"},
        {"Trade ID": ""},
        {"Trade ID": ""},
        {"Trade ID": "T1"},
        {"Trade ID": "T-dup"},
        {"Trade ID": "T-dup"},
        {"Trade ID": "T-earlier"},
        {"Trade ID": " T2 "},
        {"Trade ID": "y" * 129},
    ]
    rows = []
    for n, change in enumerate(values):
        cells = row()
        for column, value in change.items():
            cells[HEADER.index(column)] = value
        if "Trade ID" not in change:
            cells[HEADER.index("Trade ID")] = f"T{n:04d}"
        rows.append(cells)
    rows.append([*row(), "extra"])  # wider than the header
    rows.append([*row(), ""])  # wider, but only with an empty cell
    rows.append(row()[:8])  # shorter: the missing cells are empty
    return rows


def approved_bench_format(fingerprint: str) -> CsvFormat:
    """The bench mapping as an approved format with this fingerprint."""
    fmt, _ = CsvFormat.objects.get_or_create(
        target="orders",
        fingerprint=fingerprint,
        defaults={
            "name": f"bench {fingerprint[:8]}",
            "header": HEADER,
            "columns": HEADER,
            "status": FormatStatus.APPROVED,
            "mapping": copy.deepcopy(MAPPING),
        },
    )
    return fmt


def written_by(file: ImportFile, earlier: ImportFile) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The file's orders and its staged rows (line, status, errors, raw), file ids in messages made local."""
    orders = sorted(
        (
            o["source_line"],
            o["account"],
            o["symbol"],
            o["side"],
            o["quantity"],
            o["price"],
            o["commission"],
            o["currency"],
            o["executed_at"],
            o["broker_trade_id"],
            o["dedupe_key"],
        )
        for o in Order.objects.filter(source_file=file).values()
    )
    staged = []
    for line, row_status, errors, raw in (
        StagedRow.objects.filter(file=file).order_by("line").values_list("line", "status", "errors", "raw")
    ):
        for error in errors or []:
            if "duplicate_of_file" in error:
                error["duplicate_of_file"] = "this" if error["duplicate_of_file"] == file.pk else "earlier"
                error["message"] = (
                    error["message"]
                    .replace(f"file {file.pk}", "file <this>")
                    .replace(f"file {earlier.pk}", "file <earlier>")
                )
        staged.append((line, row_status, errors, raw))
    return orders, staged


def file_of(fmt: CsvFormat, owner: Any, batch: ImportBatch, name: str, **fields: Any) -> ImportFile:
    """A file of this format in this batch (its stored name and checksum unique), with these fields."""
    return ImportFile.objects.create(
        batch=batch,
        owner=owner,
        original_name=name,
        stored_name=uuid.uuid4().hex,
        sha256=uuid.uuid4().hex,
        size=1,
        format=fmt,
        **fields,
    )


def owner_with_an_earlier_order(django_user_model: Any, fingerprint: str) -> tuple[CsvFormat, Any, ImportFile]:
    """The approved bench format, a fresh owner, and that owner's earlier import holding the same fill
    as the tricky rows' 'T-earlier' row."""
    owner = django_user_model.objects.create_user(username=f"owner-{uuid.uuid4().hex[:8]}")
    fmt = approved_bench_format(fingerprint)
    batch = ImportBatch.objects.create(owner=owner)
    earlier = file_of(fmt, owner, batch, "earlier.csv", status=FileStatus.IMPORTED)
    earlier_values = {
        "account": "U1000001",
        "broker_trade_id": "T-earlier",
        "quantity": Decimal("10"),
        "executed_at": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
    }
    Order.objects.create(
        owner=owner,
        symbol="AAPL",
        side="BUY",
        price=1,
        currency="USD",
        **earlier_values,
        source_file=earlier,
        source_line=2,
        dedupe_key=order_digest(earlier_values, order_identity(earlier_values)),
    )
    return fmt, owner, earlier


def assert_same_outcome(fast: dict[str, Any], python: dict[str, Any]) -> None:
    """The two paths' file counters, orders (with their dedupe keys) and staged rows are identical."""
    assert fast["counters"] == python["counters"]
    assert fast["orders"] == python["orders"]
    assert fast["staged"] == python["staged"]


def file_with_staged_rows(
    fmt: CsvFormat, owner: Any, batch: ImportBatch, rows: list[list[str]], *, dedupe: bool, status: str
) -> ImportFile:
    """A migrating file of this format whose rows (lines 2...) are staged with this status."""
    file = file_of(
        fmt,
        owner,
        batch,
        "tricky.csv",
        status=FileStatus.MIGRATING,
        dedupe=dedupe,
        rows_total=len(rows),
        rows_staged=len(rows),
    )
    staged_rows_write(file_id=file.pk, format_id=fmt.pk, rows=[(n + 2, cells) for n, cells in enumerate(rows)])
    StagedRow.objects.filter(file=file).update(status=status)
    return file


def migrate_with(
    django_user_model: Any,
    *,
    fast: bool,
    settings: Any,
    dedupe: bool = True,
    filters: list[dict[str, Any]] | None = None,
    mapping: dict[str, Any] | None = None,
    rows: list[list[str]] | None = None,
    header: list[str] | None = None,
) -> dict[str, Any]:
    """Stage the tricky rows (or these rows) for a fresh owner and migrate them with or without the fast
    path, with the bench format or a format of this mapping and header."""
    settings.AIRLOCK = {**settings.AIRLOCK, "FAST_PATH": fast, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7}
    fmt, owner, earlier = owner_with_an_earlier_order(django_user_model, "bench-fastpath")
    if mapping is not None:
        fingerprint = hashlib.sha256(orjson.dumps([mapping, header or HEADER])).hexdigest()
        fmt, _ = CsvFormat.objects.get_or_create(
            target="orders",
            fingerprint=fingerprint,
            defaults={
                "name": f"features {fingerprint[:8]}",
                "header": header or HEADER,
                "columns": header or HEADER,
                "status": FormatStatus.APPROVED,
                "mapping": mapping,
            },
        )
    if filters is not None:
        CsvFormat.objects.filter(pk=fmt.pk).update(mapping={**fmt.mapping, "filters": filters})
        fmt.refresh_from_db()
    rows = tricky_rows() if rows is None else rows
    file = file_with_staged_rows(fmt, owner, earlier.batch, rows, dedupe=dedupe, status=StagedStatus.APPROVED)
    plan = fastpath.plan_for(fmt.mapping, fmt.columns, dedupe=dedupe)
    accepted = fastpath.accepted_lines(plan=plan, file_id=file.pk, statuses=OPEN_ROW_STATUSES) if plan else []
    status = file_migrate(file_id=file.pk)
    file.refresh_from_db()

    orders, staged_rows = written_by(file, earlier)
    staged = [(line, row_status, errors) for line, row_status, errors, _ in staged_rows]
    counters = {
        name: getattr(file, name)
        for name in (
            "status",
            "rows_imported",
            "rows_invalid",
            "rows_skipped",
            "rows_duplicate",
            "rows_staged",
            "progress",
        )
    }
    return {"status": status, "orders": orders, "staged": staged, "counters": counters, "accepted": accepted}


def test_the_fast_path_is_used_for_the_benchmark_mapping() -> None:
    assert fastpath.plan_for(MAPPING, HEADER, dedupe=True) is not None
    assert fastpath.plan_for(MAPPING, HEADER, dedupe=False) is not None


def test_it_leaves_mappings_outside_its_exact_subset_to_python() -> None:
    side_word = {**MAPPING, "filters": [{"column": "Description", "op": "side_word"}]}
    bad_default = copy.deepcopy(MAPPING)
    bad_default["fields"]["quantity"]["options"]["default"] = "0"  # validate_order refuses a 0 quantity
    new_york = copy.deepcopy(MAPPING)  # a local time of day can fall in a DST gap
    new_york["fields"]["executed_at"]["options"]["tz"] = "America/New_York"
    tokyo_dates = copy.deepcopy(MAPPING)
    tokyo_dates["fields"]["executed_at"]["options"] = {"formats": ["%Y-%m-%d"], "tz": "Asia/Tokyo"}
    compact_time = copy.deepcopy(MAPPING)  # adjacent numbers beyond 8 + 6 digits: split differently
    compact_time["fields"]["executed_at"]["options"]["formats"] = ["%Y%m%d%H%M%S"]
    odd_side = copy.deepcopy(MAPPING)  # a side the target refuses
    odd_side["fields"]["side"]["options"] = {"map": {"Köp": "HOLD"}}
    for mapping in (side_word, bad_default, new_york, tokyo_dates, compact_time, odd_side):
        assert fastpath.plan_for(mapping, HEADER, dedupe=True) is None
    # New York dates: the dedupe key holds the time converted to UTC, which SQL computes the same way.
    new_york_dates = copy.deepcopy(MAPPING)
    new_york_dates["fields"]["executed_at"]["options"] = {"formats": ["%Y-%m-%d"], "tz": "America/New_York"}
    assert fastpath.plan_for(new_york_dates, HEADER, dedupe=True) is not None
    assert fastpath.plan_for(new_york_dates, HEADER, dedupe=False) is not None


def test_new_york_dates_with_trade_ids_get_the_same_keys_as_in_python(django_user_model: Any, settings: Any) -> None:
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["executed_at"]["options"] = {"formats": ["%Y-%m-%d"], "tz": "America/New_York"}
    when = HEADER.index("Trade Time")
    rows = [[*cells[:when], cells[when][:10], *cells[when + 1 :]] for cells in tricky_rows()]
    rows += [[*row()[:when], day, *row()[when + 1 :]] for day in ("2024-03-10", "2024-11-03", "2024-07-04")]
    python = migrate_with(django_user_model, fast=False, settings=settings, mapping=mapping, rows=rows)
    fast = migrate_with(django_user_model, fast=True, settings=settings, mapping=mapping, rows=rows)

    assert_same_outcome(fast, python)
    assert len(fast["accepted"]) >= 15


@pytest.mark.parametrize("dedupe", [True, False])
def test_the_fast_path_writes_and_reports_exactly_what_the_python_path_does(
    django_user_model: Any, settings: Any, dedupe: bool
) -> None:
    python = migrate_with(django_user_model, fast=False, settings=settings, dedupe=dedupe)
    fast = migrate_with(django_user_model, fast=True, settings=settings, dedupe=dedupe)

    assert_same_outcome(fast, python)
    assert fast["status"] == python["status"] == FileStatus.PARTIAL
    # SQL converted the plain rows itself and left every tricky one to Python.
    accepted = set(fast["accepted"])
    assert 2 in accepted and 3 in accepted and 4 in accepted  # plain, '+5', '007'
    assert not accepted & {5, 6, 11, 12}  # ' 12 ', '1,234.5', '12x', ''
    assert len(accepted) >= 15
    # The tricky rows really do exercise all outcomes.
    statuses = {status for _, status, _ in python["staged"]}
    assert StagedStatus.INVALID in statuses and python["orders"]
    # An imported row lives on as its order only: no staged copy is kept, on either path.
    assert StagedStatus.MIGRATED not in statuses | {status for _, status, _ in fast["staged"]}
    if dedupe:
        assert StagedStatus.DUPLICATE in statuses


def filtered_rows() -> list[list[str]]:
    """Rows whose filter cells test the SQL filters against Python's: case, spaces, tabs, accents, blanks."""
    variants = [
        {"Order Type": "LMT", "Exchange": "NASDAQ"},
        {"Order Type": " lmt ", "Exchange": "nasdaq"},
        {"Order Type": "MKT", "Exchange": ""},
        {"Order Type": "Lmt\t", "Exchange": "   "},
        {"Order Type": "LİMİT", "Exchange": "NYSE"},  # dotted capital I: lower() and casefold() differ
        {"Order Type": "straße", "Exchange": "XETRA"},
        {"Order Type": "STRASSE", "Exchange": "XETRA"},
        {"Order Type": "CASH", "Exchange": "-"},
        {"Order Type": "", "Exchange": "LSE"},
    ]
    rows = []
    for n, variant in enumerate(variants):
        cells = dict(zip(HEADER, row(), strict=True))
        cells.update(variant)
        cells["Trade ID"] = f"F-{n}"
        rows.append([cells[column] for column in HEADER])
    return rows


@pytest.mark.parametrize(
    "rule",
    [
        {"column": "Order Type", "op": "in", "values": ["LMT", "Straße"]},
        {"column": "Order Type", "op": "not_in", "values": ["cash", "MKT "]},
        {"column": "Exchange", "op": "not_empty"},
        {"column": "Exchange", "op": "empty"},
        {"column": "Order Type", "op": "startswith", "values": ["lm", "STR"]},
        {"column": "Order Type", "op": "in", "values": []},
    ],
    ids=["in", "not_in", "not_empty", "empty", "startswith", "in-nothing"],
)
def test_row_filters_in_sql_keep_and_skip_exactly_the_rows_python_does(
    django_user_model: Any, settings: Any, rule: dict[str, Any]
) -> None:
    rows = filtered_rows()
    python = migrate_with(django_user_model, fast=False, settings=settings, filters=[rule], rows=rows)
    fast = migrate_with(django_user_model, fast=True, settings=settings, filters=[rule], rows=rows)
    assert_same_outcome(fast, python)
    assert fastpath.plan_for({**MAPPING, "filters": [rule]}, HEADER, dedupe=True) is not None
    # SQL took only rows it keeps for sure; every row it left went through Python's filter.
    kept_by_python = {o[0] for o in python["orders"]}
    assert set(fast["accepted"]) <= kept_by_python
    if rule["op"] == "in" and rule["values"]:
        assert {2, 3} <= set(fast["accepted"])  # 'LMT' and ' lmt ' are plain ASCII


# ------------------------------------------------------------------------------------------------------
# Files of an approved format imported straight from the file (no staged row per order)


def fail_the_job_at_chunk(file_id: int, chunk: int, monkeypatch: Any) -> None:
    """Process the file with an unexpected error in that chunk's prepare; RQ's failure callback fails it."""
    from imports.jobs import enqueue, failures
    from imports.pipeline.process import file_process

    calls = {"n": 0}
    # A chunk is prepared from its rows' cells (chunk_prepare) or, plain lines, by Postgres (block_prepare).
    reals = {name: getattr(fastpath, name) for name in ("chunk_prepare", "block_prepare")}

    def failing(name: str) -> Callable[..., Any]:
        def prepare(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == chunk:
                raise RuntimeError("disk on fire")
            return reals[name](*args, **kwargs)

        return prepare

    for name in reals:
        monkeypatch.setattr(f"imports.pipeline.fastpath.{name}", failing(name))
    with pytest.raises(RuntimeError):
        file_process(file_id=file_id)
    for name, real in reals.items():
        monkeypatch.setattr(f"imports.pipeline.fastpath.{name}", real)
    assert failures.files_fail_for_job(job_id=enqueue.file_job_id(file_id), reason="disk on fire") == [file_id]


def import_file_with(
    django_user_model: Any,
    *,
    direct: bool,
    settings: Any,
    dedupe: bool = True,
    stop_after_chunks: int | None = None,
    fail_at_chunk: int | None = None,
    monkeypatch: Any = None,
    filters: list[dict[str, Any]] | None = None,
    rows: list[list[str]] | None = None,
) -> dict[str, Any]:
    """Upload the tricky rows (or these `rows`) as a CSV file of the approved bench format and process it (chunks
    of 7)."""
    from formats.fingerprint import fingerprint
    from imports.pipeline.process import file_process
    from imports.services.uploads import upload_batch_create
    from tests.conftest import csv_upload

    settings.AIRLOCK = {**settings.AIRLOCK, "DIRECT_IMPORT": direct, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7}
    fmt, owner, earlier = owner_with_an_earlier_order(django_user_model, fingerprint(HEADER))
    if filters is not None:
        CsvFormat.objects.filter(pk=fmt.pk).update(mapping={**fmt.mapping, "filters": filters})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    for n, cells in enumerate(tricky_rows() if rows is None else rows):
        writer.writerow(cells)
        if n == 20 and rows is None:
            writer.writerow([])  # a blank line the reader skips, counted apart
    _, files = upload_batch_create(owner=owner, files=[csv_upload("tricky.csv", text.getvalue())], dedupe=dedupe)
    file_id = files[0].pk
    runs = 0
    if stop_after_chunks is not None:
        chunks = {"n": 0}

        def stop() -> bool:
            chunks["n"] += 1
            return chunks["n"] % stop_after_chunks == 0

        monkeypatch.setattr("config.worker.stop_requested", stop)
    if fail_at_chunk is not None:
        # The job dies on an unexpected error in that chunk, an admin retries it and the next job runs
        # without the fault.
        from imports.services import retry

        fail_the_job_at_chunk(file_id, fail_at_chunk, monkeypatch)
        assert Order.objects.filter(source_file_id=file_id).exists(), "the chunks before the fault are committed"
        admin = django_user_model.objects.create_superuser(username=f"admin-{uuid.uuid4().hex[:8]}")
        retry.file_retry(file_id=file_id, actor=admin)
    status = ImportFile.objects.get(pk=file_id).status
    while status in (FileStatus.UPLOADED, FileStatus.PROCESSING, FileStatus.MIGRATING) and runs < 50:
        status = file_process(file_id=file_id)
        runs += 1
    file = ImportFile.objects.get(pk=file_id)
    orders, staged = written_by(file, earlier)
    not_imported = [row for row in staged if row[1] != StagedStatus.MIGRATED]
    counters = {
        name: getattr(file, name)
        for name in (
            "status",
            "rows_total",
            "rows_imported",
            "rows_invalid",
            "rows_skipped",
            "rows_duplicate",
            "rows_staged",
            "progress",
            "skip_reasons",
        )
    }
    return {
        "orders": orders,
        "not_imported": not_imported,
        "counters": counters,
        "runs": runs,
        "migrated_staged": sum(1 for row in staged if row[1] == StagedStatus.MIGRATED),
    }


@pytest.mark.parametrize("dedupe", [True, False])
def test_a_file_of_an_approved_format_imported_straight_from_the_file_matches_the_staged_path(
    django_user_model: Any, settings: Any, dedupe: bool
) -> None:
    staged = import_file_with(django_user_model, direct=False, settings=settings, dedupe=dedupe)
    direct = import_file_with(django_user_model, direct=True, settings=settings, dedupe=dedupe)

    assert direct["counters"] == staged["counters"]
    assert direct["counters"]["status"] == FileStatus.PARTIAL and direct["counters"]["rows_skipped"] == 1
    assert direct["orders"] == staged["orders"] and len(direct["orders"]) >= 20
    # Every row that did not become an order is staged with its raw cells and errors, as before...
    assert direct["not_imported"] == staged["not_imported"]
    assert {status for _, status, _, _ in direct["not_imported"]} >= (
        {StagedStatus.INVALID, StagedStatus.DUPLICATE} if dedupe else {StagedStatus.INVALID}
    )
    # ...but the rows that did are not kept in the staged table (read straight, or deleted as migrated).
    assert direct["migrated_staged"] == staged["migrated_staged"] == 0


def test_a_direct_import_with_a_row_filter_matches_the_staged_path(django_user_model: Any, settings: Any) -> None:
    rule = [{"column": "Side", "op": "in", "values": ["buy", "SELL"]}]  # the tricky rows' odd sides are skipped
    staged = import_file_with(django_user_model, direct=False, settings=settings, filters=rule)
    direct = import_file_with(django_user_model, direct=True, settings=settings, filters=rule)
    assert direct["counters"] == staged["counters"] and direct["counters"]["rows_skipped"] >= 2
    assert direct["orders"] == staged["orders"] and len(direct["orders"]) >= 15
    assert direct["not_imported"] == staged["not_imported"]
    assert direct["migrated_staged"] == 0


@pytest.mark.parametrize(
    "rules",
    [
        [{"column": "Order Type", "op": "in", "values": ["LMT", "Straße"]}],
        [{"column": "Order Type", "op": "not_in", "values": ["cash", "MKT "]}],
        [{"column": "Exchange", "op": "not_empty"}],
        [{"column": "Exchange", "op": "empty"}],
        [{"column": "Order Type", "op": "startswith", "values": ["lm", "STR"]}],
        [{"column": "Order Type", "op": "not_in", "values": ["mkt"]}, {"column": "Exchange", "op": "not_empty"}],
    ],
    ids=["in", "not_in", "not_empty", "empty", "startswith", "two-filters"],
)
def test_a_file_read_in_blocks_with_row_filters_matches_the_staged_path(
    django_user_model: Any, settings: Any, monkeypatch: Any, rules: list[dict[str, Any]]
) -> None:
    # The filtered rows without the cells the reader would trim (a block refuses those): tabs, accents and
    # blanks stay, and a quote in a skipped cell; two trade ids each, so that a few rows are duplicates (of an
    # earlier line, and one of the owner's earlier file: 'T-earlier'). Compared with the Python path.
    kind, trade = HEADER.index("Order Type"), HEADER.index("Trade ID")
    rows = [cells for cells in filtered_rows() if all(cell == cell.strip(" ") for cell in cells)]
    quoted = list(rows[0])
    quoted[kind], quoted[trade] = "CA'SH", "F-Q"
    rows.append(quoted)
    rows += [[*cells[:trade], cells[trade] + "-2", *cells[trade + 1 :]] for cells in rows] + rows[:2]
    earlier = dict(zip(HEADER, row(), strict=True))
    rows.append([{**earlier, "Trade ID": "T-earlier"}[column] for column in HEADER])
    settings.AIRLOCK = {**settings.AIRLOCK, "FAST_PATH": False}
    staged = import_file_with(django_user_model, direct=False, settings=settings, filters=rules, rows=rows)
    settings.AIRLOCK = {**settings.AIRLOCK, "FAST_PATH": True}
    blocks: list[int] = []
    block_prepare = fastpath.block_prepare
    monkeypatch.setattr(
        fastpath, "block_prepare", lambda block, **kw: blocks.append(block.rows) or block_prepare(block, **kw)
    )
    direct = import_file_with(django_user_model, direct=True, settings=settings, filters=rules, rows=rows)

    assert sum(blocks) == len(rows)  # every line went to Postgres in blocks
    assert direct["counters"] == staged["counters"]  # skip_reasons included
    assert direct["orders"] == staged["orders"]
    assert direct["not_imported"] == staged["not_imported"]  # the skipped rows' cells and reasons included
    assert staged["counters"]["rows_skipped"] >= 2 and direct["counters"]["rows_duplicate"] >= 1


def test_a_direct_import_stopped_between_chunks_resumes_without_loss_or_duplicates(
    django_user_model: Any, settings: Any, monkeypatch: Any
) -> None:
    whole = import_file_with(django_user_model, direct=True, settings=settings)
    resumed = import_file_with(
        django_user_model, direct=True, settings=settings, stop_after_chunks=1, monkeypatch=monkeypatch
    )

    assert resumed["runs"] > 5  # stopped after every chunk and resumed from where it was
    assert resumed["counters"] == whole["counters"]
    assert resumed["orders"] == whole["orders"]
    assert resumed["not_imported"] == whole["not_imported"]


def test_an_admin_retry_of_a_direct_import_that_failed_midway_imports_the_rest_exactly_once(
    django_user_model: Any, settings: Any, monkeypatch: Any
) -> None:
    whole = import_file_with(django_user_model, direct=True, settings=settings)
    retried = import_file_with(
        django_user_model, direct=True, settings=settings, fail_at_chunk=3, monkeypatch=monkeypatch
    )

    assert retried["counters"] == whole["counters"]
    assert retried["orders"] == whole["orders"]
    assert retried["not_imported"] == whole["not_imported"]


def test_a_file_never_read_gets_its_format_and_layout_with_its_first_chunk_and_a_job_dying_before_it_changes_nothing(
    django_user_model: Any, settings: Any, monkeypatch: Any
) -> None:
    # A file of an approved format read for the first time is not reset first (there is nothing to reset): the first
    # chunk's transaction gives it its format and layout. A job that dies before that chunk commits leaves the file
    # as the upload did, and the retry imports exactly what an uninterrupted run imports.
    from formats.fingerprint import fingerprint
    from imports.services import retry
    from imports.services.uploads import upload_batch_create
    from tests.conftest import csv_upload

    whole = import_file_with(django_user_model, direct=True, settings=settings)
    fmt, owner, earlier = owner_with_an_earlier_order(django_user_model, fingerprint(HEADER))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    for n, cells in enumerate(tricky_rows()):
        writer.writerow(cells)
        if n == 20:
            writer.writerow([])
    _, files = upload_batch_create(owner=owner, files=[csv_upload("tricky.csv", text.getvalue())], dedupe=True)
    file_id = files[0].pk

    fail_the_job_at_chunk(file_id, 1, monkeypatch)  # (the first chunk: nothing of the file committed)

    failed = ImportFile.objects.get(pk=file_id)
    assert failed.status == FileStatus.FAILED and failed.layout == {} and failed.format_id is None
    assert (failed.rows_total, failed.rows_imported, failed.rows_invalid, failed.rows_skipped) == (0, 0, 0, 0)
    assert not Order.objects.filter(source_file_id=file_id).exists()
    assert not StagedRow.objects.filter(file_id=file_id).exists()
    admin = django_user_model.objects.create_superuser(username=f"admin-{uuid.uuid4().hex[:8]}")
    assert retry.file_retry(file_id=file_id, actor=admin) == FileStatus.UPLOADED  # read from the start again
    from imports.pipeline.process import file_process

    file_process(file_id=file_id)

    file = ImportFile.objects.get(pk=file_id)
    assert file.format_id == fmt.pk
    assert file.layout["header"] == HEADER and file.layout["delimiter"] == ","
    assert file.layout["direct"] == {"format": fmt.pk, "through_line": len(tricky_rows()) + 2, "complete": True}
    orders, staged = written_by(file, earlier)
    assert orders == whole["orders"]
    assert [row for row in staged if row[1] != StagedStatus.MIGRATED] == whole["not_imported"]
    assert {name: getattr(file, name) for name in whole["counters"]} == whole["counters"]


def import_a_file_broken_at_line_402(owner: Any, settings: Any) -> ImportFile:
    """An approved-format file whose line 402 has too many fields, processed in chunks of 100 rows."""
    from formats.fingerprint import fingerprint
    from imports.pipeline.process import file_process
    from imports.services.uploads import upload_batch_create
    from tests.conftest import csv_upload

    settings.AIRLOCK = {**settings.AIRLOCK, "BATCH_SIZE": 100, "FAST_BATCH_SIZE": 100, "MAX_COLUMNS": 20}
    approved_bench_format(fingerprint(HEADER))
    lines = [",".join(HEADER)]
    for n in range(400):  # more than the layout detection samples, so the reader meets line 402 later
        cells = row()
        cells[HEADER.index("Trade ID")] = f"T{n}"
        lines.append(",".join(cells))
    lines.append(",".join(["x"] * 25))  # line 402: more fields than allowed
    _, files = upload_batch_create(owner=owner, files=[csv_upload("broken.csv", "\n".join(lines) + "\n")])

    assert file_process(file_id=files[0].pk) == FileStatus.FAILED
    return ImportFile.objects.get(pk=files[0].pk)


def test_a_broken_line_further_down_refuses_the_whole_file_and_removes_its_earlier_chunks(
    user: Any, settings: Any
) -> None:
    file = import_a_file_broken_at_line_402(user, settings)

    assert "Line 402 has 25 fields" in file.error and "the 400 rows read before that line were removed" in file.error
    assert not Order.objects.filter(source_file=file).exists()
    assert not StagedRow.objects.filter(file=file).exists()


def test_a_mapping_fix_after_a_direct_import_re_processes_its_failed_rows(
    user: Any, reviewer: Any, settings: Any
) -> None:
    from formats.fingerprint import fingerprint
    from imports.pipeline.migrate import format_migrate
    from imports.pipeline.process import file_process
    from imports.services.uploads import review_approve, upload_batch_create
    from tests.conftest import csv_upload

    fmt = approved_bench_format(fingerprint(HEADER))
    rows = []
    for n, side in enumerate(["Buy", "hold", "Sell", "hold"]):
        cells = row()
        cells[HEADER.index("Side")] = side
        cells[HEADER.index("Trade ID")] = f"T{n}"
        rows.append(",".join(cells))
    text = ",".join(HEADER) + "\n" + "\n".join(rows) + "\n"
    _, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", text)])
    assert file_process(file_id=files[0].pk) == FileStatus.PARTIAL
    file = ImportFile.objects.get(pk=files[0].pk)
    assert (file.rows_imported, file.rows_invalid) == (2, 2)
    assert list(StagedRow.objects.filter(file=file).order_by("line").values_list("line", "status")) == [
        (3, StagedStatus.INVALID),
        (5, StagedStatus.INVALID),
    ]

    mapping = copy.deepcopy(fmt.mapping)
    mapping["fields"]["side"]["options"] = {"map": {"hold": "BUY"}}
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    format_migrate(format_id=fmt.pk)

    file.refresh_from_db()
    assert (file.status, file.rows_imported, file.rows_invalid) == (FileStatus.IMPORTED, 4, 0)
    assert sorted(Order.objects.filter(source_file=file).values_list("source_line", "side")) == [
        (2, "BUY"),
        (3, "BUY"),
        (4, "SELL"),
        (5, "BUY"),
    ]


def test_a_mapping_fix_while_a_direct_import_is_part_way_still_reads_the_rest_of_the_file(
    user: Any, reviewer: Any, settings: Any, monkeypatch: Any
) -> None:
    from formats.fingerprint import fingerprint
    from imports.pipeline.migrate import format_migrate
    from imports.pipeline.process import file_process
    from imports.services.uploads import review_approve, upload_batch_create
    from tests.conftest import csv_upload

    settings.AIRLOCK = {**settings.AIRLOCK, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7}
    fmt = approved_bench_format(fingerprint(HEADER))
    rows = []
    for n in range(20):
        cells = row()
        cells[HEADER.index("Side")] = "hold" if n % 3 == 0 else "Sell"
        cells[HEADER.index("Trade ID")] = f"T{n}"
        rows.append(",".join(cells))
    text = ",".join(HEADER) + "\n" + "\n".join(rows) + "\n"
    _, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", text)])
    monkeypatch.setattr("config.worker.stop_requested", lambda: True)  # the worker stops after one chunk
    assert file_process(file_id=files[0].pk) == FileStatus.PROCESSING
    assert StagedRow.objects.filter(file_id=files[0].pk, status=StagedStatus.INVALID).exists()

    # The admin fixes the mapping while the rest of the file is still to be read.
    mapping = copy.deepcopy(fmt.mapping)
    mapping["fields"]["side"]["options"] = {"map": {"hold": "BUY"}}
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    format_migrate(format_id=fmt.pk)
    monkeypatch.setattr("config.worker.stop_requested", lambda: False)
    # The resumed job reads the rest and migrates the re-opened rows in the same run.
    assert file_process(file_id=files[0].pk) == FileStatus.IMPORTED

    file = ImportFile.objects.get(pk=files[0].pk)
    assert (file.status, file.rows_total, file.rows_imported, file.rows_invalid) == (FileStatus.IMPORTED, 20, 20, 0)
    assert Order.objects.filter(source_file=file).count() == 20
    assert Order.objects.filter(source_file=file, side="BUY").count() == 7


# ------------------------------------------------------------------------------------------------------
# Mappings with row filters, defaults, joined columns and split_on/part: SQL covers them, Python referees


def _with_rows(changes: list[dict[str, str]], base: Any = None) -> list[list[str]]:
    """The tricky rows, then one row per change (each with its own trade id), all passed through `base`."""
    rows = tricky_rows()
    for n, change in enumerate(changes):
        cells = row()
        cells[HEADER.index("Trade ID")] = f"F{n:04d}"
        for column, value in change.items():
            cells[HEADER.index(column)] = value
        rows.append(cells)
    return [base(cells) if base else cells for cells in rows]


def _date_and_time_columns(cells: list[str]) -> list[str]:
    """'2024-03-01 09:30:00' as a date column (Trade Time) and a time column (Description)."""
    cells = list(cells)
    when = HEADER.index("Trade Time")
    if HEADER.index("Description") < len(cells) and " " in cells[when].strip():
        date, _, time = cells[when].partition(" ")
        cells[when], cells[HEADER.index("Description")] = date, time
    return cells


def _as_of(cells: list[str]) -> list[str]:
    cells = list(cells)
    when = HEADER.index("Trade Time")
    if when < len(cells) and cells[when].startswith("20"):
        cells[when] = f"{cells[when]} as of 1999-01-01 00:00:00"
    return cells


def _as_of_on_an_exchange(cells: list[str]) -> list[str]:
    cells = _as_of(cells)
    symbol = HEADER.index("Symbol")
    if cells[symbol] == "aapl":
        cells[symbol] = "NASDAQ:aapl"
    return cells


def _feature_cases() -> dict[str, tuple[dict[str, Any], list[list[str]]]]:
    filters = copy.deepcopy(MAPPING)
    filters["filters"] = [
        {"column": "Order Type", "op": "in", "values": ["lmt", " MKT ", "Straße", "100%"]},
        {"column": "Exchange", "op": "not_in", "values": ["otc", "", "Börse"]},
        {"column": "Description", "op": "startswith", "values": ["lim", "MAR", "ß"]},
    ]
    filter_rows = _with_rows(
        [
            {"Order Type": value}
            for value in ("LMT", "lmt", "Lmt", " LMT ", "LMT\t", "mkt", "STRASSE", "straße", "100%", "100", "", "-")
        ]
        + [{"Exchange": value} for value in ("OTC", "otc ", "", "börse", "BÖRSE", "NYSE", "n/a", "Otc-x")]
        + [
            {"Description": value}
            for value in ("LIMIT", "limited", "Market order", "ssuper", "Stop", "", " lim", "Lim\u00e9", "li")
        ]
    )
    blanks = copy.deepcopy(MAPPING)
    blanks["filters"] = [
        {"column": "Exchange", "op": "not_empty"},
        {"column": "Order Type", "op": "empty"},
    ]
    blank_rows = [
        [*cells[: HEADER.index("Order Type")], order_type, *cells[HEADER.index("Order Type") + 1 :]]
        for cells, order_type in zip(
            _with_rows([{"Exchange": value} for value in ("", " ", "\t", "-", "\u00a0", "x", " y ", "é")]),
            ["", " ", "\t", "LMT", "\u00a0", "", "-", "  "] * 20,
            strict=False,
        )
    ]
    defaults = copy.deepcopy(MAPPING)
    defaults["fields"]["commission"]["options"]["default"] = "0.50"
    defaults["fields"]["account"]["options"] = {"default": "ACC-1"}
    defaults["fields"]["symbol"]["options"]["default"] = "unknown"
    defaults["fields"]["price"]["options"] = {"default": 7}
    default_rows = _with_rows(
        [{"Commission": value} for value in ("", " ", "-", "n/a", "NULL", "1.5", "\u2014")]
        + [{"Account": value} for value in ("", "--", " ", "acc-2")]
        + [{"Symbol": value} for value in ("", " ", "—", "msft")]
        + [{"Price": value} for value in ("", "-", "3")]
    )
    date_time = copy.deepcopy(MAPPING)
    date_time["fields"]["executed_at"]["columns"] = ["Trade Time", "Description"]
    date_time_rows = _with_rows(
        [
            {"Trade Time": date, "Description": time}
            for date, time in (
                ("2024-03-01", "09:30:00"),
                (" 2024-03-01", "09:30:00 "),
                ("2024-03-01", ""),
                ("2024-03-01", "-"),
                ("", "2024-03-01 09:30:00"),
                ("2024-03-01 09:30:00", "n/a"),
                ("2024-03-01", "09:30"),
                ("2024-03-01", "\u00a009:30:00"),
                ("2024-03-01", "0\u0669:30:00"),
                ("2024-03-01  ", " 09:30:00"),
            )
        ],
        base=_date_and_time_columns,
    )
    split = copy.deepcopy(MAPPING)
    split["fields"]["executed_at"]["options"].update({"split_on": "as of", "part": 0})
    quirky_as_of = [
        {"Trade Time": value}
        for value in (
            "2024-03-01 09:30:00as of",
            "as of 2024-03-01 09:30:00",
            "2024-03-01 09:30:00 AS OF 2024-01-01 00:00:00",
            "2024-03-01 09:30:00 as of as of",
            "  2024-03-01 09:30:00\tas of x",
            "2024-03-01 09:30:00\u00a0as of x",
            "-as of 2024-03-01 09:30:00",
        )
    ]
    split_rows = _with_rows(quirky_as_of, base=_as_of)
    last = copy.deepcopy(MAPPING)
    last["fields"]["executed_at"]["options"].update({"split_on": "as of", "part": -1})
    second = copy.deepcopy(MAPPING)
    second["fields"]["executed_at"]["options"].update({"split_on": "as of", "part": 1})
    second["fields"]["symbol"]["options"].update({"split_on": ":", "part": 1})
    second_rows = _with_rows(
        [{"Symbol": value} for value in ("NASDAQ:aapl", "aapl", "X: msft ", "a:b:c", ":", "é:x")] + quirky_as_of,
        base=_as_of_on_an_exchange,
    )
    percent = copy.deepcopy(MAPPING)  # '%' in the mapping's texts (psycopg's placeholder character)
    percent["fields"]["symbol"]["options"].update({"split_on": "%", "part": 0, "default": "X%Y"})
    percent["fields"]["account"] = {"columns": [], "converter": "constant", "options": {"value": "A%1"}}
    percent_rows = _with_rows([{"Symbol": value} for value in ("aapl%x", "%", "ms%ft", "100%", "%%", " %b", "a%%")])
    return {
        "percent signs": (percent, percent_rows),
        "filters": (filters, filter_rows),
        "empty filters": (blanks, blank_rows),
        "defaults": (defaults, default_rows),
        "date + time": (date_time, date_time_rows),
        "split_on part 0": (split, split_rows),
        "split_on part -1": (last, split_rows),
        "split_on part 1": (second, second_rows),
    }


@pytest.mark.parametrize("dedupe", [True, False])
@pytest.mark.parametrize("case", list(_feature_cases()))
def test_filters_defaults_joined_columns_and_split_parts_give_exactly_what_python_gives(
    django_user_model: Any, settings: Any, dedupe: bool, case: str
) -> None:
    mapping, rows = _feature_cases()[case]
    assert fastpath.plan_for(mapping, HEADER, dedupe=dedupe) is not None
    python = migrate_with(django_user_model, fast=False, settings=settings, dedupe=dedupe, mapping=mapping, rows=rows)
    fast = migrate_with(django_user_model, fast=True, settings=settings, dedupe=dedupe, mapping=mapping, rows=rows)

    assert_same_outcome(fast, python)
    assert len(fast["accepted"]) >= 10  # SQL converted the plain rows itself
    assert len(python["orders"]) >= 10


SCHWAB_COLUMNS = ["Date", "Action", "Symbol", "Description", "Quantity", "Price", "Fees & Comm", "Amount"]


def schwab_rows() -> list[list[str]]:
    """Rows as Schwab writes them, with the quirks the parity must hold on."""
    plain = ["02/15/2024 as of 02/14/2024", "Buy", "aapl", "APPLE INC", "1,000", "$182.50", "$0.65", "-$182,500.65"]
    changes: list[dict[int, str]] = [
        {},
        {1: "Sell"},
        {1: "Reinvest Shares"},
        {1: "reinvest shares"},
        {1: "BUY TO OPEN"},
        {1: " Sell to Close "},
        {1: "Qualified Dividend"},
        {1: "Journal"},
        {1: ""},
        {0: "Transactions Total", 1: "", 2: "", 4: "", 5: "", 6: "", 7: "$-1,000.00"},
        {0: "02/15/2024"},
        {0: "2/5/2024 as of 2/4/2024"},
        {0: "02/30/2024"},
        {0: "12/31/1969"},
        {0: "01/01/1970"},
        {0: "03/10/2024"},
        {0: "11/03/2024 as of 11/01/2024"},
        {0: "as of 02/14/2024"},
        {0: "02/15/2024as of"},
        {4: "500,135"},
        {4: "1,23"},
        {4: "1234.5"},
        {4: "-10"},
        {4: ""},
        {5: "$1,234,567.891"},
        {5: "182.5"},
        {5: "$ 182.50"},
        {5: "-$1.00"},
        {5: "\uff04182.50"},
        {5: "$182."},
        {5: "$.50"},
        {5: "$$1"},
        {5: "0182.50"},
        {5: "1e3"},
        {6: "$0"},
        {6: ""},
        {6: "-"},
        {6: "$1,234.56"},
        {6: "-$0.65"},
        {6: " "},
        {2: "BRK.B"},
        {2: ""},
        {2: "Ünilever"},
        {1: "Sell", 2: "aapl"},
        {},
        {},
    ]
    rows = []
    for change in changes:
        cells = list(plain)
        for index, value in change.items():
            cells[index] = value
        rows.append(cells)
    return rows


def test_the_built_in_schwab_format_without_de_duplication_gives_exactly_what_python_gives(
    django_user_model: Any, settings: Any
) -> None:
    schwab = orjson.loads((Path(__file__).parents[3] / "formats/builtin/schwab-transactions.json").read_bytes())
    mapping = schwab["mapping"]
    assert fastpath.plan_for(mapping, SCHWAB_COLUMNS, dedupe=False) is not None
    arguments = {"dedupe": False, "mapping": mapping, "rows": schwab_rows(), "header": SCHWAB_COLUMNS}
    python = migrate_with(django_user_model, fast=False, settings=settings, **arguments)
    fast = migrate_with(django_user_model, fast=True, settings=settings, **arguments)

    assert_same_outcome(fast, python)
    assert python["counters"]["rows_skipped"] >= 4 and python["counters"]["rows_invalid"] >= 5
    assert len(fast["accepted"]) >= 20


def test_the_built_in_schwab_format_with_fingerprint_keys_gives_exactly_what_python_gives(
    django_user_model: Any, settings: Any
) -> None:
    # No trade id: every key is the fill's fingerprint with an occurrence counter, the time's isoformat
    # carrying New York's offset of that day (-05:00 or -04:00): SQL computes the digest, the counters are
    # added in line order across batches of 7 rows, mixed with the rows Python converts.
    schwab = orjson.loads((Path(__file__).parents[3] / "formats/builtin/schwab-transactions.json").read_bytes())
    mapping = schwab["mapping"]
    plan = fastpath.plan_for(mapping, SCHWAB_COLUMNS, dedupe=True)
    assert plan is not None and plan.dedupe_by_fingerprint and not plan.dedupe_by_trade_id
    rows = schwab_rows()
    rows += [rows[0], rows[0], rows[1], rows[0]]  # the same fills again: occurrences #2, #3...
    arguments = {"dedupe": True, "mapping": mapping, "rows": rows, "header": SCHWAB_COLUMNS}
    python = migrate_with(django_user_model, fast=False, settings=settings, **arguments)
    fast = migrate_with(django_user_model, fast=True, settings=settings, **arguments)

    assert_same_outcome(fast, python)
    keys = [order[-1] for order in fast["orders"]]
    assert all("#" in key for key in keys) and any(key.endswith("#3") for key in keys)
    assert len(fast["accepted"]) >= 20


def test_fingerprint_keys_of_the_tricky_rows_are_the_same_as_pythons(django_user_model: Any, settings: Any) -> None:
    # The bench mapping without its trade id: identical fills (' Sell ' converted by Python, 'S' by SQL, an
    # account in lower case) must get their occurrence numbers in line order whichever path converts them.
    mapping = copy.deepcopy(MAPPING)
    del mapping["fields"]["broker_trade_id"]
    plan = fastpath.plan_for(mapping, HEADER, dedupe=True)
    assert plan is not None and plan.dedupe_by_fingerprint
    rows = tricky_rows() + [row() for _ in range(9)]
    python = migrate_with(django_user_model, fast=False, settings=settings, mapping=mapping, rows=rows)
    fast = migrate_with(django_user_model, fast=True, settings=settings, mapping=mapping, rows=rows)

    assert_same_outcome(fast, python)
    occurrences = [int(order[-1].rpartition("#")[2]) for order in fast["orders"]]
    assert max(occurrences) >= 10
    assert len(fast["accepted"]) >= 20


def builtin_mapping(name: str) -> tuple[dict[str, Any], list[str]]:
    spec = orjson.loads((Path(__file__).parents[3] / f"formats/builtin/{name}.json").read_bytes())
    return spec["mapping"], spec.get("columns") or spec["header"]


def etrade_rows() -> list[list[str]]:
    dates = ["03/15/24", "3/5/24", "12/31/99", "02/29/23", "02/29/24", "13/01/24", "", "03/15/2024", "01/02/70"]
    kinds = ["Bought", "Sold", "Dividend", "Bought", "Sold"]
    rows = []
    for n, date in enumerate(dates * 3):
        kind = kinds[n % len(kinds)]
        quantity = ["10", "-5", "2.5", "", "1,000"][n % 5]
        rows.append([date, kind, "EQ", ["AAPL", "msft", " IBM "][n % 3], quantity, "-1725.00", "172.50", "4.95", "x"])
    return rows + [rows[0], rows[0]]  # identical fills: occurrence counters


def ibkr_flex_rows() -> list[list[str]]:
    dates = ["20240315", "2024315", "20240230", "19991231", "20991231", "2024-03-15", "", "20240229"]
    rows = []
    for n, date in enumerate(dates * 3):
        rows.append(
            [
                ["BUY", "SELL", "BUY (Ca.)"][n % 3],
                date,
                ["US0378331005", "IE00B4L5Y983", ""][n % 3],
                ["10", "-5", "0.5"][n % 3],
                "172.5",
                "1725",
                ["USD", "EUR", "usd"][n % 3],
                ["-1", "", "-0.35"][n % 3],
                "USD",
            ]
        )
    return rows + [rows[0], rows[0]]


@pytest.mark.parametrize("dedupe", [True, False])
@pytest.mark.parametrize(
    ("name", "rows"),
    [("etrade-transactions", etrade_rows), ("ibkr-flex-trades-short", ibkr_flex_rows)],
    ids=["etrade", "ibkr-flex"],
)
def test_built_in_e_trade_and_ibkr_flex_formats_give_exactly_what_python_gives(
    django_user_model: Any, settings: Any, name: str, rows: Any, dedupe: bool
) -> None:
    # Two-digit years ('%m/%d/%y') and compact dates ('%Y%m%d', 8 digits by position) in New York.
    mapping, columns = builtin_mapping(name)
    assert fastpath.plan_for(mapping, columns, dedupe=dedupe) is not None
    arguments = {"dedupe": dedupe, "mapping": mapping, "rows": rows(), "header": columns}
    python = migrate_with(django_user_model, fast=False, settings=settings, **arguments)
    fast = migrate_with(django_user_model, fast=True, settings=settings, **arguments)

    assert_same_outcome(fast, python)
    assert len(fast["accepted"]) >= 5
    assert python["counters"]["rows_invalid"] >= 3


def both_paths(
    django_user_model: Any,
    settings: Any,
    mapping: dict[str, Any],
    column: str,
    values: list[str],
    *,
    dedupe: bool = True,
    trade_ids: bool = False,
) -> dict[str, Any]:
    """Rows of the bench layout whose `column` takes each value twice (identical fills: occurrence numbers),
    migrated on the Python path and on the fast path; asserts they agree and returns the fast path's result."""
    assert fastpath.plan_for(mapping, HEADER, dedupe=dedupe) is not None
    rows = []
    for n, value in enumerate(values * 2):
        cells = row()
        cells[HEADER.index(column)] = value
        if trade_ids:
            cells[HEADER.index("Trade ID")] = f"T{n % len(values)}"
        rows.append(cells)
    arguments = {"dedupe": dedupe, "mapping": mapping, "rows": rows}
    python = migrate_with(django_user_model, fast=False, settings=settings, **arguments)
    fast = migrate_with(django_user_model, fast=True, settings=settings, **arguments)
    assert_same_outcome(fast, python)
    return fast


ISO_TIMES = [
    "2024-03-01",
    "2024-03-01 09:30",
    "2024-03-01T09:30:05",
    "2024-03-01 09:30:05.1",
    "2024-03-01 09:30:05.120",
    "2024-03-01T09:30:05.123456Z",
    "2024-03-01 09:30:05.000",
    "2024-03-01T09:30Z",
    "2024-03-01 09:30:05+00:00",
    "2024-03-01 23:59:59.999999",
    "2024-03-01 09:30:05 UTC",  # Coinbase: Python's own suffix
    "2024-03-01T09:30:05.25 GMT",
    "2024-03-01 09:30:05.1234567",  # 7 digits: Python truncates; SQL leaves it to Python
    "2024-03-01 09:30:05+02:00",  # another offset: Python
    "2024-03-01 UTC",  # a date and the suffix: Python refuses it
    "2024-03-01 09:30:05Z UTC",
    "2024-03-01 09:30:05,5",  # a decimal comma: Python
    "2024-3-1 09:30",
    "2024-02-30",
    "2024-03-01 24:00",
    "2024-03-01T09:60",
    "1899-12-31 23:59:59.5",
    "2099-01-01",
    "20240301",
    "",
    # A shape's length and separators, something else where a digit goes: the shapes' test refuses them.
    "2024-03-01 09:3 :05",
    "2024-03-01 09:30:0-",
    "2024-03-01 09:30:05.12:4",
    "2024-03-01T09:30:05.",
    "2024-03-01 09:30:05..",
    "2024-03-0109:30:05.1",
    "2024-03-01 ٠9:30:05",
]


@pytest.mark.parametrize("keys", ["trade-id", "fingerprint", "none"])
def test_iso_times_with_microseconds_give_exactly_what_python_gives(
    django_user_model: Any, settings: Any, keys: str
) -> None:
    # 'iso' is what the suggestion proposes for most exports (Trading 212, Coinbase...): SQL reads the common
    # shapes itself, microseconds included, and the keys carry the time's isoformat as Python writes it.
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["executed_at"]["options"] = {"formats": ["iso"], "tz": "UTC"}
    if keys == "fingerprint":
        del mapping["fields"]["broker_trade_id"]
    fast = both_paths(
        django_user_model, settings, mapping, "Trade Time", ISO_TIMES, dedupe=keys != "none", trade_ids=True
    )
    accepted = {line - 2 for line in fast["accepted"]}  # rows start at line 2
    assert {ISO_TIMES[n % len(ISO_TIMES)] for n in accepted} == set(ISO_TIMES[:12])  # SQL took the common shapes
    microseconds = {order[8].microsecond for order in fast["orders"]}  # executed_at
    assert {123456, 999999, 120000, 100000, 0} <= microseconds


@pytest.mark.parametrize("dedupe", [True, False])
def test_a_side_from_the_quantity_sign_gives_exactly_what_python_gives(
    django_user_model: Any, settings: Any, dedupe: bool
) -> None:
    # IBKR activity statements, DEGIRO, Hargreaves Lansdown...: no buy/sell column, a signed quantity.
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["side"] = {"columns": ["Quantity"], "converter": "side_from_sign", "options": {}}
    del mapping["fields"]["broker_trade_id"]
    quantities = ["10", "-10", "+3", "-0.5", "0", "-0", "007", "(5)", "-1,234.5", " -2 ", "", "n/a", "1e3", "-12x"]
    fast = both_paths(django_user_model, settings, mapping, "Quantity", quantities, dedupe=dedupe)
    assert {order[3] for order in fast["orders"]} == {"BUY", "SELL"}
    accepted = {quantities[(line - 2) % len(quantities)] for line in fast["accepted"]}
    assert accepted == {"10", "-10", "+3", "-0.5", "007"}  # zero and every unplain number went to Python


DATE_SHAPES = [
    "20240315;093005",
    "20240229;235959",
    "20240230;100000",
    "20240315;240000",
    "2024315;93005",
    "20240315;0930",
    "20240315",
    "2024-03-15, 09:30:05",
    "2024-03-15",
    "",
    "20240315;09300 ",
    "20240315;;93005",
    "2024031;;093005",
    "2024031x",
]


@pytest.mark.parametrize(
    "formats",
    [["%Y%m%d;%H%M%S"], ["%Y-%m-%d, %H:%M:%S", "%Y-%m-%d"], ["%Y%m%d;%H%M%S", "%Y%m%d", "iso"]],
    ids=["ibkr-flex-date-time", "ibkr-activity-two-formats", "three-formats"],
)
def test_compact_date_times_and_several_formats_give_exactly_what_python_gives(
    django_user_model: Any, settings: Any, formats: list[str]
) -> None:
    # Several formats: SQL reads the cells of the first (Python tries it first too); the rest go to Python.
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["executed_at"]["options"] = {"formats": formats, "tz": "UTC"}
    del mapping["fields"]["broker_trade_id"]  # fingerprint keys carry the time
    fast = both_paths(django_user_model, settings, mapping, "Trade Time", DATE_SHAPES)
    assert len(fast["orders"]) > len(fast["accepted"]) > 0  # both paths took part


def test_a_side_map_with_punctuation_gives_exactly_what_python_gives(django_user_model: Any, settings: Any) -> None:
    # Revolut's 'BUY - MARKET', Trading 212's 'Market buy': the map first, then the built-in words.
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["side"]["options"] = {"map": {"BUY - MARKET": "buy", " Sell - Limit ": "SELL", "Hold": "BUY"}}
    mapping["fields"]["side"]["options"]["map"]["N/A"] = "BUY"  # a placeholder: Python reads the cell as empty
    sides = ["BUY - MARKET", "buy - market", "Sell - Limit", "BUY  - MARKET", " BUY - MARKET", "hold", "Buy", "SLD",
             "SELL - STOP", "n/a", "N/A", "BUY-MARKET", "", "BUY\t- MARKET"]  # fmt: skip
    fast = both_paths(django_user_model, settings, mapping, "Side", sides)
    accepted = {sides[(line - 2) % len(sides)] for line in fast["accepted"]}
    assert {"BUY - MARKET", "buy - market", "Sell - Limit", "hold", "Buy"} <= accepted
    assert not accepted & {"n/a", "N/A", "BUY  - MARKET", " BUY - MARKET", "BUY\t- MARKET"}


LONG_NUMBERS = [
    "0000000000000000000000012.5",  # 22 integer digits, all but two of them leading zeros
    "1.0000000000000000000000001",  # 25 decimals: the order's column rounds them, the key keeps them
    "12.50000000000000000000000000000",
    "123456789012345678901",  # past the order's range: Python's message
    "1" + "0" * 60,  # longer than any number SQL reads: Python
    "-" + "0" * 40 + "7",
    "7",
]


@pytest.mark.parametrize("column", ["Quantity", "Price"])
def test_numbers_of_many_digits_give_exactly_what_python_gives(
    django_user_model: Any, settings: Any, column: str
) -> None:
    # SQL's number patterns are bounded by the cell's length, not by a count of digits per part.
    fast = both_paths(django_user_model, settings, copy.deepcopy(MAPPING), column, LONG_NUMBERS, trade_ids=True)
    accepted = {LONG_NUMBERS[(line - 2) % len(LONG_NUMBERS)] for line in fast["accepted"]}
    assert {"1.0000000000000000000000001", "12.50000000000000000000000000000", "7"} <= accepted
    assert "1" + "0" * 60 not in accepted


def test_currencies_in_any_case_give_exactly_what_python_gives(django_user_model: Any, settings: Any) -> None:
    currencies = ["USD", "usd", "Eur", "GBX", "USDT", "ÚSD", "US", "", "N/A", "BTC", "CAN", "can", "Rmb", "€"]
    fast = both_paths(django_user_model, settings, copy.deepcopy(MAPPING), "Currency", currencies, trade_ids=True)
    accepted = {currencies[(line - 2) % len(currencies)] for line in fast["accepted"]}
    assert {"USD", "usd", "Eur", "BTC", "CAN", "can", "Rmb"} <= accepted
    assert {order[7] for order in fast["orders"]} >= {"USD", "EUR", "BTC", "CAD", "CNY"}


@pytest.mark.parametrize("conflict", [False, True], ids=["clean", "a-line-repeats-a-trade-id"])
def test_a_batch_is_written_by_a_plain_insert_unless_a_row_conflicts(
    django_user_model: Any, settings: Any, conflict: bool
) -> None:
    # The plain INSERT is the fast case; a unique violation rolls back to its savepoint and the batch is written
    # again with ON CONFLICT DO NOTHING, which sorts the duplicate out: the outcome is the same either way.
    from django.test.utils import CaptureQueriesContext

    rows = []
    for n in range(5):
        cells = row()
        cells[HEADER.index("Trade ID")] = f"T{n}"
        rows.append(cells)
    if conflict:
        rows[3][HEADER.index("Trade ID")] = "T1"
        rows[3][HEADER.index("Trade Time")] = rows[1][HEADER.index("Trade Time")]
    with CaptureQueriesContext(connection) as queries:
        fast = migrate_with(django_user_model, fast=True, settings=settings, rows=rows)
    written = [q["sql"] for q in queries.captured_queries if "INSERT INTO imports_order" in q["sql"]]
    assert any("ON CONFLICT" not in sql for sql in written)
    assert any("ON CONFLICT DO NOTHING" in sql for sql in written) == conflict
    assert len(fast["orders"]) == (4 if conflict else 5)
    python = migrate_with(django_user_model, fast=False, settings=settings, rows=rows)
    assert_same_outcome(fast, python)


@pytest.mark.parametrize("path", ["staged", "direct"])
def test_lists_of_lines_and_ids_reach_postgres_as_their_columns_type(
    django_user_model: Any, settings: Any, path: str
) -> None:
    # psycopg writes a list of numbers below 32,768 as a smallint[]: Postgres compares such a list with an int or
    # bigint column element by element instead of hashing it (a batch's 20,000 duplicate lines: 1.5 s, not 8 ms).
    # The batches' lists (the lines that hit a conflict, the cells of those lines, the claimed ids of the rows
    # that come back) are cast to their column's type; the tricky rows repeat a trade of the owner's earlier file.
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        if path == "staged":
            outcome = migrate_with(django_user_model, fast=True, settings=settings)
            duplicates = outcome["counters"]["rows_duplicate"]
        else:
            outcome = import_file_with(django_user_model, direct=True, settings=settings)
            duplicates = outcome["counters"]["rows_duplicate"]
    assert duplicates >= 1  # (the lists are only sent for a batch with a conflict)
    lists = [
        match.group(0)
        for q in queries.captured_queries
        for match in re.finditer(r"= ANY\('\{[-0-9,]*\}'::int[248]\[\](::\w+\[\])?\)", q["sql"])
    ]
    assert lists, "no list of numbers was sent"
    uncast = [found for found in lists if not re.search(r"::int[248]\[\]::(int|bigint)\[\]\)$", found)]
    assert not uncast, [q["sql"][:300] for q in queries.captured_queries if any(u in q["sql"] for u in uncast)]


def test_identical_fills_are_numbered_in_line_order_across_batches(django_user_model: Any, settings: Any) -> None:
    # Without a trade id, identical fills are told apart by occurrence. SQL numbers them within a batch as it
    # converts; a fill already seen in an earlier batch (7 rows per batch here) makes the batch's plain insert
    # of its counters fail, and the batch is numbered again after the earlier ones.
    mapping = copy.deepcopy(MAPPING)
    del mapping["fields"]["broker_trade_id"]
    rows = []
    for n in range(16):
        cells = row()
        cells[HEADER.index("Quantity")] = "5" if n in (0, 3, 9, 12, 15) else str(100 + n)
        rows.append(cells)
    fast = migrate_with(django_user_model, fast=True, settings=settings, mapping=mapping, rows=rows)
    python = migrate_with(django_user_model, fast=False, settings=settings, mapping=mapping, rows=rows)
    assert_same_outcome(fast, python)
    repeated = [order for order in fast["orders"] if order[4] == Decimal("5")]
    assert [order[0] for order in repeated] == [2, 5, 11, 14, 17]  # lines: batches 1, 1, 2, 2, 3
    digest = repeated[0][10].split("#")[0]
    assert [order[10] for order in repeated] == [f"{digest}#{n}" for n in range(1, 6)]
    assert len(fast["accepted"]) == 16


def test_sides_a_row_filter_lists_are_read_by_sql_as_python_reads_them(django_user_model: Any, settings: Any) -> None:
    # Schwab's Action filter lists 'Sell Short', 'Buy to Open'...: phrases Python reads word by word (side_of).
    # SQL takes Python's verdict on each listed value; values Python refuses, and unlisted ones, are not its.
    mapping = copy.deepcopy(MAPPING)
    listed = ["Sell Short", "Buy to Open", "Reinvest Shares", "Sell", "Short Sale Exempt", "Journal", "n/a"]
    mapping["filters"] = [{"op": "in", "column": "Side", "values": listed}]
    sides = ["Sell Short", "SELL SHORT", "sell short ", "Buy to Open", "Reinvest Shares", "Sell", "Journal",
             "Short Sale Exempt", "Market buy", "n/a", ""]  # fmt: skip
    fast = both_paths(django_user_model, settings, mapping, "Side", sides, trade_ids=True)
    accepted = {sides[(line - 2) % len(sides)] for line in fast["accepted"]}
    assert {"Sell Short", "SELL SHORT", "Buy to Open", "Reinvest Shares", "Sell"} <= accepted
    assert not accepted & {"Journal", "Market buy", "n/a", "", "sell short "}
    assert {order[3] for order in fast["orders"]} == {"BUY", "SELL"}


def test_sides_with_letters_beyond_ascii_give_exactly_what_python_gives(django_user_model: Any, settings: Any) -> None:
    # Avanza's 'Köp' / 'Sälj' (the admin's map), Nordnet's 'KÖPT', Polish 'sprzedaż' (built-in words): SQL
    # compares each usual spelling exactly, whatever the database's locale; other spellings go to Python.
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["side"]["options"] = {"map": {"Köp": "BUY", "Sälj": "sell"}}
    decomposed = "Ko\u0308p"  # 'Köp' with a combining diaeresis
    kelvin = "\u212aAUF"  # 'KAUF' with the Kelvin sign, which Unicode lower-cases to an ASCII 'k'
    sides = ["Köp", "KÖP", "köp", "Sälj", "SÄLJ", "KÖPT", "Sprzedaż", "SPRZEDAŻ", "kÖp", decomposed, "ALIŞ",
             "Buy", " Köp", "Köp ", kelvin, "BUY\u00a0", "sELL", "Kauf"]  # fmt: skip
    fast = both_paths(django_user_model, settings, mapping, "Side", sides, trade_ids=True)
    accepted = {sides[(line - 2) % len(sides)] for line in fast["accepted"]}
    assert {"Köp", "KÖP", "köp", "Sälj", "SÄLJ", "KÖPT", "Sprzedaż", "SPRZEDAŻ", "Buy", "sELL", "Kauf"} <= accepted
    assert not accepted & {"kÖp", decomposed, " Köp", "Köp ", kelvin, "BUY\u00a0"}
    assert {order[3] for order in fast["orders"]} == {"BUY", "SELL"}


MONTH_DATES = ["Jan 5, 2024", "JAN 05, 2024", "jan 5, 2024", "Sept 5, 2024", "Sep. 5, 2024", "Feb 30, 2024",
               "Foo 5, 2024", "January 5, 2024", "MARCH 14, 2023", "May 31, 2024", "Jan 5 2024", "Jan  5, 2024",
               "05-Jan-2024", "5-jan-2024", "05 Jan 2024 09:30", "05 jan 2024 9:05", "Dec 31, 1899", ""]  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%b %d, %Y", {"Jan 5, 2024", "JAN 05, 2024", "jan 5, 2024", "May 31, 2024", "Jan  5, 2024"}),
        ("%B %d, %Y", {"January 5, 2024", "MARCH 14, 2023", "May 31, 2024"}),
        ("%d-%b-%Y", {"05-Jan-2024", "5-jan-2024"}),
        ("%d %b %Y %H:%M", {"05 Jan 2024 09:30", "05 jan 2024 9:05"}),
    ],
)
def test_month_names_give_exactly_what_python_gives(
    django_user_model: Any, settings: Any, fmt: str, expected: set[str]
) -> None:
    # RBC's 'January 5, 2024', Morgan Stanley's '05-Jan-2024': strptime reads month names in any case.
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["executed_at"]["options"] = {"formats": [fmt], "tz": "UTC"}
    fast = both_paths(django_user_model, settings, mapping, "Trade Time", MONTH_DATES, trade_ids=True)
    accepted = {MONTH_DATES[(line - 2) % len(MONTH_DATES)] for line in fast["accepted"]}
    assert accepted == expected


TWELVE_HOURS = ["Jan 5, 2024, 9:05:07 AM", "Jan 5, 2024, 12:00:00 AM", "Jan 5, 2024, 12:30:00 PM",
                "Jan 5, 2024, 1:30:00 pm", "Jan 5, 2024, 11:59:59 Pm", "Jan 5, 2024, 0:30:00 AM",
                "Jan 5, 2024, 13:30:00 PM", "Jan 5, 2024, 09:05:07AM", "Jan 5, 2024, 9:05:07", ""]  # fmt: skip


def test_a_twelve_hour_clock_gives_exactly_what_python_gives(django_user_model: Any, settings: Any) -> None:
    # Revolut's crypto export: 'Jan 5, 2024, 9:05:07 AM' (strptime: 12 AM is midnight, 12 PM noon).
    mapping = copy.deepcopy(MAPPING)
    mapping["fields"]["executed_at"]["options"] = {"formats": ["%b %d, %Y, %I:%M:%S %p"], "tz": "UTC"}
    fast = both_paths(django_user_model, settings, mapping, "Trade Time", TWELVE_HOURS, trade_ids=True)
    accepted = {TWELVE_HOURS[(line - 2) % len(TWELVE_HOURS)] for line in fast["accepted"]}
    assert accepted == set(TWELVE_HOURS[:5])
    hours = {order[8].hour for order in fast["orders"]}
    assert {9, 0, 12, 13, 23} <= hours


@pytest.mark.parametrize(
    ("shapes", "pattern"),
    [
        (["____-__-__ __:__:__"], r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"),
        (["__/__/__, __.__"], r"^[0-9]{2}/[0-9]{2}/[0-9]{2}, [0-9]{2}\.[0-9]{2}$"),
        (["________;______"], r"^[0-9]{8};[0-9]{6}$"),
        (["________"], r"^[0-9]{8}$"),
        (fastpath._ISO_SHAPES, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?$"),
    ],
    ids=["date-time", "two-separators-together", "compact", "digits", "iso"],
)
def test_a_shape_test_answers_what_the_regex_spelling_out_each_position_answers(
    shapes: list[str], pattern: str
) -> None:
    # Every shape filled with digits, then each with one character changed, one added or one dropped, from an
    # alphabet of digits, the shapes' own separators and a few others: the cheap test and the regex agree on all.
    import random

    rng = random.Random(16)
    alphabet = "0123456789" + "".join({ch for shape in shapes for ch in shape} - {"_"}) + "x ٠%_"
    cells = {""}
    for shape in shapes:
        for _ in range(300):
            cell = "".join(rng.choice("0123456789") if ch == "_" else ch for ch in shape)
            cells.add(cell)
            at = rng.randrange(len(cell))
            cells.add(cell[:at] + rng.choice(alphabet) + cell[at + 1 :])
            cells.add(cell[:at] + rng.choice(alphabet) + cell[at:])
            cells.add(cell[:at] + cell[at + 1 :])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c, coalesce({fastpath._shaped('c', shapes)}, false), c ~ %s FROM unnest(%s::text[]) AS c",
            [pattern, sorted(cells)],
        )
        answers = cursor.fetchall()
    disagree = [(cell, shaped, regex) for cell, shaped, regex in answers if shaped != regex]
    assert not disagree, disagree[:10]
    assert sum(regex for _, _, regex in answers) > len(shapes) * 100  # many cells had the shape
    assert sum(not regex for _, _, regex in answers) > len(shapes) * 100  # and many did not


def test_the_quick_pattern_for_us_money_takes_no_cell_the_whole_pattern_refuses() -> None:
    # '$352.68' is read by the quick pattern first: every cell it takes, the whole pattern (what Python reads)
    # takes too, so trying it first changes which cells SQL reads in no case.
    import random

    rng = random.Random(16)
    cells = {"".join(rng.choice("0123456789$,.+- x") for _ in range(rng.randint(0, 12))) for _ in range(20_000)}
    cells |= {f"${rng.randint(0, 10**6)}.{rng.randint(0, 99):02d}" for _ in range(2_000)}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c, c ~ %s, c ~ %s FROM unnest(%s::text[]) AS c",
            [fastpath._US_MONEY_PLAIN, fastpath._US_MONEY[0], sorted(cells)],
        )
        answers = cursor.fetchall()
    assert not [cell for cell, quick, whole in answers if quick and not whole]
    assert sum(quick for _, quick, _ in answers) > 2_000  # it took the plain amounts
    assert sum(whole and not quick for _, quick, whole in answers) > 10  # and left the grouped ones to the other


def _prepared_names() -> list[str]:

    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'airlock%' ORDER BY name")
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.django_db
def test_a_conversion_run_again_in_a_session_is_prepared_once_and_prepared_again_after_a_reset() -> None:

    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
        for _ in range(3):
            fastpath._execute_prepared(cursor, "SELECT 41 + 1")
            assert cursor.fetchone() == (42,)
        assert len(_prepared_names()) == 1
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does to the session
        fastpath._execute_prepared(cursor, "SELECT 41 + 1")
        assert cursor.fetchone() == (42,) and len(_prepared_names()) == 1
        for n in range(fastpath.PREPARED_PER_SESSION + 5):  # a worker meeting many formats
            fastpath._execute_prepared(cursor, f"SELECT {n}")
            assert cursor.fetchone() == (n,)
        assert 0 < len(_prepared_names()) <= fastpath.PREPARED_PER_SESSION
        cursor.execute("PREPARE not_ours AS SELECT 1")  # another's (the driver's) is left alone
        for n in range(fastpath.PREPARED_PER_SESSION + 5):
            fastpath._execute_prepared(cursor, f"SELECT {n} + 1")
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'not_ours'")
        assert cursor.fetchone() == (1,)
        cursor.execute("DEALLOCATE ALL")


def test_the_claim_looks_its_rows_up_by_id_when_the_statistics_say_no_row_is_open(django_user_model: Any) -> None:
    """Statistics taken while no staged row was open (a new installation, a cleanup just done, a file staged and
    approved at once) say there are none: planned from them, the claim read the status index, every open row of
    every file, once per batch, quadratic in the file's size. It must find its batch by the rows' ids."""
    fmt, owner, earlier = owner_with_an_earlier_order(django_user_model, "bench-fastpath")
    rows = [row() for _ in range(3000)]
    file = file_with_staged_rows(fmt, owner, earlier.batch, rows, dedupe=True, status=StagedStatus.SKIPPED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE staging_stagedrow")  # no open row: what the statistics keep until the next ANALYZE
    StagedRow.objects.filter(file=file).update(status=StagedStatus.APPROVED)
    plan = fastpath.plan_for(fmt.mapping, fmt.columns, dedupe=True)
    assert plan is not None
    ids, _ = fastpath.open_rows(plan=plan, file_id=file.pk, statuses=OPEN_ROW_STATUSES, limit=1000)
    assert len(ids) == 1000

    params, dense = fastpath.claim_params(plan, file.pk, OPEN_ROW_STATUSES, ids)
    assert dense  # (staged by one COPY: consecutive ids)
    for form in (False, True):  # a batch of scattered ids, and a dense one (one range of them)
        with connection.cursor() as cursor:
            fastpath._fresh_temp_table(cursor)
            cursor.execute("EXPLAIN " + plan.select_sql(dense=form), params)
            explained = "\n".join(line for (line,) in cursor.fetchall())
        # (A table this small may be read whole, once; a real one by its primary key. Neither takes the status.)
        conditions = [line.strip() for line in explained.splitlines() if "Index Cond" in line]
        assert not [condition for condition in conditions if "status" in condition], explained
        assert "staged_format_status" not in explained and "staged_file_status_line" not in explained, explained
        if form:  # the range is the only index condition: the ids' own test is a filter
            assert conditions and all("= ANY" not in condition for condition in conditions), explained


@pytest.mark.parametrize("files", [2, 5])
def test_a_batch_whose_ids_are_interleaved_with_other_files_rows_claims_its_own_rows_and_no_others(
    django_user_model: Any, settings: Any, files: int
) -> None:
    """Files staged at the same time have their rows' ids interleaved. A batch whose ids span a range holding other
    files' rows (dense: two files) is claimed by that range, a sparser one (five files) id by id; either way the file
    migrates exactly as one staged alone, and the other files' staged rows stay as they were."""
    alone = migrate_with(django_user_model, fast=True, settings=settings)  # (batches of 7 rows)
    fmt, owner, earlier = owner_with_an_earlier_order(django_user_model, "bench-fastpath")
    rows = tricky_rows()
    file, *others = [
        file_of(
            fmt,
            owner,
            earlier.batch,
            f"interleaved-{n}.csv",
            status=FileStatus.MIGRATING,
            dedupe=True,
            rows_total=len(rows),
            rows_staged=len(rows),
        )
        for n in range(files)
    ]
    for line, cells in enumerate(rows, start=2):
        for each in (file, *others):
            staged_rows_write(file_id=each.pk, format_id=fmt.pk, rows=[(line, cells)])
    StagedRow.objects.filter(file__in=[file, *others]).update(status=StagedStatus.APPROVED)
    before = sorted(StagedRow.objects.filter(file__in=others).values_list("id", "file_id", "line", "status", "raw"))
    plan = fastpath.plan_for(fmt.mapping, fmt.columns, dedupe=True)
    assert plan is not None
    ids, _ = fastpath.open_rows(plan=plan, file_id=file.pk, statuses=OPEN_ROW_STATUSES, limit=7)
    assert fastpath.claim_params(plan, file.pk, OPEN_ROW_STATUSES, ids)[1] is (files == 2)

    assert file_migrate(file_id=file.pk) == alone["status"]

    orders, staged_rows = written_by(file, earlier)
    assert orders == alone["orders"]
    assert [(line, row_status, errors) for line, row_status, errors, _ in staged_rows] == alone["staged"]
    after = sorted(StagedRow.objects.filter(file__in=others).values_list("id", "file_id", "line", "status", "raw"))
    assert after == before and len(after) == len(rows) * (files - 1)
    assert not Order.objects.filter(source_file__in=others).exists()
