"""The metrics only the process doing the work can measure: prometheus-client histograms in multiprocess mode.

Everything Postgres or Redis already knows (files by status, rows by outcome, the staging backlog, queues,
workers...) is read at scrape time instead (imports/monitoring/readings.py): one truth, correct whatever
the number of processes, and nothing to lose when a process restarts.

The two histograms here are observed by the RQ work horse that finished a file. With PROMETHEUS_MULTIPROC_DIR
set (config/run.py sets it for its children and empties the folder on start), each process writes its own
mmap file there and /metrics merges them all (MultiProcessCollector), so the web process reports what the
workers measured. Without it, the values live in the observing process alone (fine for a single process,
useless across web and workers): /metrics then reports only its own process.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from prometheus_client import Histogram, values


def _process_identifier() -> str:
    """Names a process's file in the shared folder: host (the container) and pid, so that the web and worker
    containers of docker-compose, each with its own pid 1, 7..., can share one volume without sharing a file."""
    return f"{socket.gethostname()}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any metric is created: the value class decides where each process writes.
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

# Seconds from the start of a file's work to its last row: reading, staging or importing, migrating.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
RATE_BUCKETS = (10, 50, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)

# Multiprocess mode: written by workers, merged at scrape time.
FILE_PROCESSING_SECONDS = Histogram(
    "airlock_file_processing_seconds",
    "Time from the start of a file's work (or its format's approval, if later) to its last row, per finished file.",
    ["path"],
    buckets=DURATION_BUCKETS,
)
# Multiprocess mode: written by workers, merged at scrape time.
FILE_ROWS_PER_SECOND = Histogram(
    "airlock_file_rows_per_second",
    "Rows handled per second (imported, invalid, skipped and duplicate), per finished file.",
    ["path"],
    buckets=RATE_BUCKETS,
)


def multiprocess_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR (or prometheus-client's older lower-case name); empty when unset."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or ""


def file_finished_observe(
    *, path: str, started_at: dt.datetime | None, approved_at: dt.datetime | None, finished_at: dt.datetime, rows: int
) -> None:
    """Record one finished file's duration and rows/s (a staged file's wait for an admin does not count)."""
    if started_at is None:
        return
    start = max(started_at, approved_at) if approved_at else started_at
    seconds = max((finished_at - start).total_seconds(), 0.0)
    FILE_PROCESSING_SECONDS.labels(path=path).observe(seconds)
    if seconds > 0:
        FILE_ROWS_PER_SECOND.labels(path=path).observe(rows / seconds)
