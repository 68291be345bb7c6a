"""Shared fixtures: users with and without review rights, a clean Redis, CSV helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    """Every test stores uploads in its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


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
