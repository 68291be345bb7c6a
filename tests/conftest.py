"""Shared fixtures: users with and without review rights, a clean Redis, CSV helpers, the S3 bucket."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from imports.models import ApiToken

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True, scope="session")
def _static_files() -> None:
    """collectstatic once: pages name the hashed files of its manifest, and WhiteNoise serves them."""
    from django.core.management import call_command

    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(autouse=True, scope="session")
def _no_session_left(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Before the test database is dropped (django_db_setup's teardown, after this one's): a connection that only
    garbage still holds is collected, and any other session still on the database is named on stderr and ended,
    so the drop does not fail with "being accessed by other users" (seen in CI, its holder not yet found)."""
    yield
    import gc
    import sys

    from django.db import connection

    gc.collect()
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, backend_start, state, left(query, 200) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        others = cursor.fetchall()
        for pid, application, started, state, query in others:
            sys.__stderr__.write(
                f"tests: session {pid} ({application or 'no application name'}, since {started}, {state}) is still "
                f"on the test database at the end, last query: {query!r}; ended so the database can be dropped\n"
            )
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    connection.close()


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    """Every test stores uploads in its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _session_threads() -> Iterator[None]:
    """Session threads a test started (a group of files in two sessions) are closed after it: their open sessions
    would outlive the test database's last test and keep it from being dropped."""
    yield
    from imports.pipeline.sessions import session_threads_close

    session_threads_close()


@pytest.fixture
def redis_clean() -> Any:
    """The test Redis database, emptied before the test."""
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="uploader", password="pw-uploader-1", email="u@example.com")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="someone-else", password="pw-other-1")


@pytest.fixture
def reviewer(django_user_model: Any) -> Any:
    reviewer = django_user_model.objects.create_user(username="reviewer", password="pw-reviewer-1", is_staff=True)
    reviewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="formats", codename="approve_csvformat"),
        Permission.objects.get(content_type__app_label="imports", codename="rollback_importfile"),
        *Permission.objects.filter(
            content_type__app_label__in=["formats", "imports", "staging"], codename__startswith="view_"
        ),
    )
    return django_user_model.objects.get(pk=reviewer.pk)  # fresh permission cache


def api_key_for(user: Any) -> str:
    """The user's API token key in tests: a fixed key per user, so every call gives the same one (the product
    stores only its hash and shows a key once, imports/services/tokens.py)."""
    key = f"test-key-{user.pk}-{user.username}"
    ApiToken.objects.get_or_create(user=user, defaults={"key_hash": ApiToken.hash_key(key), "prefix": key[:8]})
    return key


def csv_upload(name: str, text: str | bytes) -> SimpleUploadedFile:
    """An uploaded file as Django's request parsing would give it."""
    data = text.encode() if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type="text/csv")


def corpus_file(relative: str) -> Path:
    """A file of the shared corpus, or skip the test saying why."""
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"corpus file {relative} not found: ../shared/corpus is absent in this checkout")
    return path


@pytest.fixture
def run_jobs(redis_clean: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Run what was enqueued: on-commit enqueues fire, then an in-process RQ worker drains the queues.

    Real Redis and real RQ; SimpleWorker (no fork) so jobs see the test's transaction.
    """
    from rq import SimpleWorker

    def run(callbacks_context: Any = None) -> int:
        queues = [django_rq.get_queue(name) for name in ("high", "default", "bulk")]
        worker = SimpleWorker(queues, connection=queues[0].connection)
        worker.work(burst=True)
        failed = sum(len(q.failed_job_registry) for q in queues)
        assert failed == 0, _failures(queues)
        return failed

    return run


def _failures(queues: list[Any]) -> str:
    from rq.job import Job

    messages = []
    for queue in queues:
        for job_id in queue.failed_job_registry.get_job_ids():
            job = Job.fetch(job_id, connection=queue.connection)
            messages.append(f"{job.func_name}: {job.latest_result().exc_string if job.latest_result() else '?'}")
    return "jobs failed:\n" + "\n".join(messages)


# -- object storage (S3) ---------------------------------------------------------------------------


def _test_s3_server() -> Any:
    """AIRLOCK_TEST_S3_URL (http[s]://KEY:SECRET@host:port[?region=R]) or the project-local SeaweedFS."""
    from urllib.parse import parse_qs, unquote, urlsplit

    from config import localstack

    url = os.environ.get("AIRLOCK_TEST_S3_URL", "")
    if url:
        parts = urlsplit(url)
        region = parse_qs(parts.query).get("region", [localstack.S3_REGION])[-1]
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        return localstack.S3Server(
            endpoint_url=f"{parts.scheme}://{netloc}{f':{parts.port}' if parts.port else ''}",
            access_key=unquote(parts.username or ""),
            secret_key=unquote(parts.password or ""),
            region=region,
        ), False
    return localstack.ensure_s3_started()


@dataclass
class S3Bucket:
    """The test session's bucket on the S3 server, and a plain boto3 client to look inside it."""

    server: Any
    name: str
    client: Any

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` (the storage's AIRLOCK_S3_PREFIX of a test)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def environ(self, prefix: str) -> dict[str, str]:
        return {**self.server.environ(bucket=self.name, prefix=prefix), "AIRLOCK_S3_MAX_ATTEMPTS": "2"}


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[S3Bucket]:
    """A real S3-compatible server (started under var/ unless AIRLOCK_TEST_S3_URL names one) and a bucket.

    One bucket per test database name, so side-by-side test sessions (AIRLOCK_TEST_DB) do not mix.
    """
    import boto3
    from botocore.config import Config

    server, started = _test_s3_server()
    name = "airlock-" + re.sub(r"[^a-z0-9-]+", "-", os.environ.get("AIRLOCK_TEST_DB", "test_airlock").lower())[:50]
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    try:
        client.head_bucket(Bucket=name)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=name)
    yield S3Bucket(server=server, name=name, client=client)
    if started:
        from config import localstack

        localstack.stop_s3()


@dataclass
class S3Uploads:
    """A test's view of the bucket: its own key prefix, the settings pointing the product at it."""

    bucket: S3Bucket
    prefix: str

    def keys(self) -> list[str]:
        return self.bucket.keys(self.prefix + "/")

    def key(self, stored_name: str) -> str:
        return f"{self.prefix}/{stored_name}"

    def environ(self) -> dict[str, str]:
        """The variables that give a web server or worker process this same storage."""
        return self.bucket.environ(self.prefix)


@pytest.fixture
def s3(s3_bucket: S3Bucket, settings: Any) -> S3Uploads:
    """Uploads of this test go to the S3 bucket, under a prefix of their own."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    server = s3_bucket.server
    settings.AIRLOCK_S3 = {
        **settings.AIRLOCK_S3,
        "BUCKET": s3_bucket.name,
        "ENDPOINT_URL": server.endpoint_url,
        "PUBLIC_ENDPOINT_URL": "",
        "REGION": server.region,
        "ACCESS_KEY_ID": server.access_key,
        "SECRET_ACCESS_KEY": server.secret_key,
        "ADDRESSING_STYLE": "path",
        "PREFIX": prefix,
        "MAX_ATTEMPTS": 2,
    }
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "imports.objectstore.S3UploadStorage"}}
    settings.AIRLOCK = {**settings.AIRLOCK, "DIRECT_UPLOADS": True}
    return S3Uploads(bucket=s3_bucket, prefix=prefix)
