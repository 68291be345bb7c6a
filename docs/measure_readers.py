"""Measure .xlsx readers on the same file: rows/s and peak memory (how the spreadsheet reader was chosen).

Usage (from the repository root):

    # 1. the bench's trades as a workbook (the project's own venv):
    .venv/bin/python docs/measure_readers.py make var/readers-1m.xlsx 1000000
    # 2. a scratch venv with the candidates (they are not project dependencies):
    python3 -m venv /tmp/readers && /tmp/readers/bin/pip install python-calamine openpyxl pandas
    # 3. each reader in its own process, over every row, every cell turned into text:
    /tmp/readers/bin/python docs/measure_readers.py run var/readers-1m.xlsx calamine openpyxl pandas-calamine \\
        pandas-openpyxl airlock

`airlock` is imports/sheets/xlsx.py (stdlib only, so any venv runs it). Peak memory is the child's
maximum resident set size (ru_maxrss), its interpreter and libraries included.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make(path: str, rows: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from imports.bench import data

    size = data.write_trades_xlsx(Path(path), rows, seed=1, id_offset=0, invalid_every=0)
    print(f"{path}: {rows:,} rows, {size / 2**20:.1f} MB")


def measure(which: str, path: str) -> None:
    """Read every row of the first sheet, each cell to text; print one line of figures."""
    sys.path.insert(0, str(ROOT))
    from imports.sheets.cells import value_text

    started_cpu, started = time.process_time(), time.perf_counter()
    rows = 0
    if which == "airlock":
        from imports.sheets.xlsx import open_book

        book = open_book(path)
        for _ in book.rows(book.sheets[0]):
            rows += 1
    elif which == "calamine":
        import python_calamine

        workbook = python_calamine.load_workbook(path)
        for row in workbook.get_sheet_by_index(0).iter_rows():
            [value_text(v) for v in row]
            rows += 1
    elif which == "openpyxl":
        import openpyxl

        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        for row in workbook.worksheets[0].iter_rows(values_only=True):
            [value_text(v) for v in row]
            rows += 1
    elif which.startswith("pandas-"):
        import pandas

        frame = pandas.read_excel(path, engine=which.removeprefix("pandas-"), header=None, dtype=object)
        for row in frame.itertuples(index=False, name=None):
            [value_text(None if v != v else v) for v in row]
            rows += 1
    else:
        raise SystemExit(f"unknown reader {which}")
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{which:16} {rows:>10,} rows  {seconds:7.1f} s  {rows / seconds:>9,.0f} rows/s  "
        f"(CPU {cpu:6.1f} s, {rows / cpu:>9,.0f} rows/CPU-s)  peak RSS {peak:6.0f} MB",
        flush=True,
    )


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif command == "one":
        measure(sys.argv[2], sys.argv[3])
    elif command == "run":
        path, readers = sys.argv[2], sys.argv[3:]
        for which in readers:
            subprocess.run([sys.executable, __file__, "one", which, path], check=False)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
