"""Load, once in the RQ worker's parent process, what every job needs, so forked work horses inherit it.

Each job runs in a fresh fork of the worker. Without this, every horse imported the pipeline modules and
built the URLconf (notifications reverse() URLs) on its own: ~0.4 s per job, which dominated the time of
a 300-file upload of small files. Nothing here opens a database connection.
"""

from __future__ import annotations

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


def warm_up() -> None:
    """Import the job modules and build the URLconf."""
    from django.urls import get_resolver

    for name in MODULES:
        importlib.import_module(name)
    resolver = get_resolver()
    resolver.reverse_dict  # noqa: B018 - building the reverse lookup tables is the point
    _storage_client()


def _storage_client() -> None:
    """With uploads in a bucket, build the S3 client here: botocore loads its service models (~0.3 s) once in
    the parent instead of in every horse. Building it makes no request, so no socket is shared by the forks."""
    from django.core.files.storage import default_storage

    warm = getattr(default_storage, "warm_up", None)
    if warm is not None:
        warm()
