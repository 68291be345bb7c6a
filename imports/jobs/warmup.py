"""Load, once in the RQ worker's parent process, what every job needs, so forked work horses inherit it.

Each job runs in a fresh fork of the worker. Without this, every horse imported the pipeline modules and
built the URLconf (notifications reverse() URLs) on its own: ~0.4 s per job, which dominated the time of
a 300-file upload of small files. Nothing here opens a database connection.

It also sets the garbage collector for the work: everything loaded so far is frozen (never scanned again, and
not written to by the collector, so the forks keep sharing its pages), and the youngest generation is collected
after 100,000 new objects instead of 700. An import keeps a chunk's 20,000 rows of cells alive while it reads the
next, and at 700 the collector ran every few rows, scanning them over and over: a third of the time of reading a
CSV row (3.5 -> 2.3 us), ~5% of a 200,000-row import. Our code makes few reference cycles; what it frees, it
frees by reference counting.
"""

from __future__ import annotations

import gc
import importlib

MODULES = (
    "imports.jobs.enqueue",
    "imports.pipeline.process",
    "imports.pipeline.fastpath",
    "imports.reading",
    "imports.services.uploads",
    "imports.services.notifications",
    "staging.services",
    "formats.services",
    "formats.suggest",
    "audit.services",
)

GC_THRESHOLDS = (100_000, 50, 50)


def warm_up() -> None:
    """Import the job modules, build the URLconf, freeze what is loaded and collect garbage less often."""
    from django.urls import get_resolver

    for name in MODULES:
        importlib.import_module(name)
    resolver = get_resolver()
    resolver.reverse_dict  # noqa: B018 - building the reverse lookup tables is the point
    _storage_client()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _storage_client() -> None:
    """With uploads in a bucket, build the S3 client here: botocore loads its service models (~0.3 s) once in
    the parent instead of in every horse. Building it makes no request, so no socket is shared by the forks."""
    from django.core.files.storage import default_storage

    warm = getattr(default_storage, "warm_up", None)
    if warm is not None:
        warm()
