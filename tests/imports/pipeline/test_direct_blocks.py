"""A direct import that hands plain lines to Postgres in blocks (imports/reading/blocks.py) writes exactly what
the same import gives when every line goes through Python's reader (AIRLOCK["CSV_BLOCKS"] off): the same orders,
the same rows staged with the same errors and cells, the same counters, also when Postgres refuses a block
half-way (the rest is read by the reader) and when the job is stopped between blocks and resumed."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest

from formats.fingerprint import fingerprint
from imports.bench.data import HEADER, trade_rows
from imports.models import FileStatus, ImportFile
from imports.pipeline import fastpath
from imports.pipeline.process import file_process
from imports.services.uploads import upload_batch_create
from staging.models import StagedStatus
from tests.conftest import csv_upload
from tests.imports.pipeline.test_fastpath import approved_bench_format, written_by

pytestmark = pytest.mark.django_db(transaction=True)

PREPARE = {name: getattr(fastpath, name) for name in ("block_prepare", "chunk_prepare")}
SYMBOL, QUANTITY, TRADE_ID, DESCRIPTION = (HEADER.index(n) for n in ("Symbol", "Quantity", "Trade ID", "Description"))


def plain_rows() -> list[list[str]]:
    """Rows as brokers write them: a description with a comma (quoted), an invalid quantity, a trade twice."""
    rows = list(trade_rows(40, seed=7, id_offset=uuid.uuid4().int % 10**9 * 100))
    rows[3][DESCRIPTION] = "Doe, John"
    rows[9][QUANTITY] = "twelve"
    rows[17] = list(rows[5])  # the same trade again: a duplicate
    return rows


def csv_text(rows: list[list[str]], *, tail: str = "", newline: str = "\n") -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows([HEADER, *rows])
    return out.getvalue() + tail


def imported(
    django_user_model: Any, settings: Any, monkeypatch: Any, text: str, *, blocks: bool, stop_every: int = 0
) -> dict[str, Any]:
    """Upload the text as a file of the approved bench format for a new owner and process it (chunks of 7)."""
    settings.AIRLOCK = {**settings.AIRLOCK, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7, "CSV_BLOCKS": blocks}
    approved_bench_format(fingerprint(HEADER))
    owner = django_user_model.objects.create_user(username=f"owner-{uuid.uuid4().hex[:8]}")
    # Chunks and rows prepared from lines Postgres parsed (blocks) and from rows Python's reader read.
    prepared = {"block_prepare": 0, "block_lines": 0, "chunk_prepare": 0, "reader_rows": 0}
    for name, real in PREPARE.items():

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            if _name == "block_prepare":
                prepared["block_prepare"] += 1
                prepared["block_lines"] += args[0].rows
            elif args[0]:  # (the last chunk may be empty: it only marks the file read)
                prepared["chunk_prepare"] += 1
                prepared["reader_rows"] += len(args[0])
            return _real(*args, **kwargs)

        monkeypatch.setattr(fastpath, name, spy)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return bool(stop_every) and calls["n"] % stop_every == 0

    monkeypatch.setattr("config.worker.stop_requested", stop)
    _, files = upload_batch_create(owner=owner, files=[csv_upload("export.csv", text)])
    status, runs = FileStatus.UPLOADED, 0
    while status in (FileStatus.UPLOADED, FileStatus.PROCESSING, FileStatus.MIGRATING) and runs < 50:
        status = file_process(file_id=files[0].pk)
        runs += 1
    file = ImportFile.objects.get(pk=files[0].pk)
    orders, staged = written_by(file, file)
    counters = {
        name: getattr(file, name)
        for name in ("status", "rows_total", "rows_imported", "rows_invalid", "rows_skipped", "rows_duplicate")
    }
    return {"orders": orders, "staged": staged, "counters": counters, "prepared": prepared, "runs": runs}


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got["counters"] == expected["counters"]
    assert got["orders"] == expected["orders"]
    assert got["staged"] == expected["staged"]


def test_a_plain_export_goes_to_postgres_in_blocks_and_gives_what_the_reader_gives(
    django_user_model: Any, settings: Any, monkeypatch: Any
) -> None:
    text = csv_text(plain_rows(), newline="\r\n")
    reader = imported(django_user_model, settings, monkeypatch, text, blocks=False)
    blocks = imported(django_user_model, settings, monkeypatch, text, blocks=True)

    assert blocks["prepared"] == {"block_prepare": 6, "block_lines": 40, "chunk_prepare": 0, "reader_rows": 0}
    assert reader["prepared"]["block_prepare"] == 0
    assert_same(blocks, reader)
    assert blocks["counters"]["status"] == FileStatus.PARTIAL
    assert {row[1] for row in blocks["staged"]} == {StagedStatus.INVALID, StagedStatus.DUPLICATE}


def test_a_block_postgres_refuses_half_way_leaves_the_rest_to_the_reader(
    django_user_model: Any, settings: Any, monkeypatch: Any
) -> None:
    rows = plain_rows()
    rows[20][SYMBOL] = ""  # an empty second cell: the reader looks at such a row twice (blank? text line?)
    rows[30][DESCRIPTION] = "two\nlines"  # a quoted line break
    text = csv_text(rows, tail='"Transactions Total",,,,,,,,,,,"12"\n\n')
    reader = imported(django_user_model, settings, monkeypatch, text, blocks=False)
    blocks = imported(django_user_model, settings, monkeypatch, text, blocks=True)

    # Lines 2-15 went to Postgres in two blocks; it refused the block holding line 22 (Symbol empty), which with
    # the rest of the file was read by the reader. (The next block may have been parsed in the other session
    # meanwhile: it rolled back with the refused one.)
    assert blocks["prepared"]["block_lines"] in (14 + 7, 14 + 7 + 7)
    assert blocks["prepared"]["reader_rows"] == 40 - 14
    assert_same(blocks, reader)
    assert blocks["counters"]["rows_skipped"] == reader["counters"]["rows_skipped"] >= 2


def test_a_job_stopped_between_blocks_resumes_where_the_last_block_ended(
    django_user_model: Any, settings: Any, monkeypatch: Any
) -> None:
    text = csv_text(plain_rows())
    whole = imported(django_user_model, settings, monkeypatch, text, blocks=True)
    resumed = imported(django_user_model, settings, monkeypatch, text, blocks=True, stop_every=2)

    assert resumed["runs"] > 2
    # Every run went on in blocks from the byte after the last committed one: no line was read by Python's reader
    # (a block parsed in the other session when the stop came rolled back and was parsed again by the next run).
    assert resumed["prepared"]["reader_rows"] == 0
    assert resumed["prepared"]["block_lines"] >= 40
    assert_same(resumed, whole)


def test_lines_the_reader_skips_after_blocks_count_once_in_the_chunk_that_reads_them() -> None:
    from collections import Counter

    from imports.pipeline.direct import _direct_chunks
    from imports.reading import FileLayout, Record, Skipped
    from imports.reading.blocks import Block

    layout = FileLayout("utf-8", ",", '"', "LF", 1, HEADER, HEADER)
    items = [
        Block(2, 3, b"x\ny\n", 10),
        Block(4, 5, b"x\ny\n", 14),
        Record(6, ["a"] * len(HEADER)),
        Skipped(7, 'summary row "Transactions Total"'),
    ]
    chunks = list(_direct_chunks(iter(items), layout, through=0, file_size=20))

    # Each chunk keeps what it read: the blocks no skipped line, the reader's last chunk the total.
    assert [(c.count, c.through_line, dict(c.skipped), c.final) for c in chunks] == [
        (2, 3, {}, False),
        (2, 5, {}, False),
        (1, 7, {'summary row "Transactions Total"': 1}, True),
    ]
    assert sum((c.skipped for c in chunks), Counter()) == Counter({'summary row "Transactions Total"': 1})


def test_the_last_block_of_a_file_is_its_final_chunk() -> None:
    """So a small file is one chunk, run in the job's own session (no second session is opened for it)."""
    from imports.pipeline.direct import _direct_chunks
    from imports.reading import FileLayout
    from imports.reading.blocks import Block

    layout = FileLayout("utf-8", ",", '"', "LF", 1, HEADER, HEADER)
    one = list(_direct_chunks(iter([Block(2, 1001, b"x\n" * 1000, 2000)]), layout, through=0, file_size=2000))
    two = list(
        _direct_chunks(iter([Block(2, 3, b"x\ny\n", 10), Block(4, 5, b"x\ny\n", 14)]), layout, through=0, file_size=14)
    )

    assert [(c.count, c.through_line, c.final, c.block is not None) for c in one] == [(1000, 1001, True, True)]
    assert [(c.count, c.through_line, c.final) for c in two] == [(2, 3, False), (2, 5, True)]
