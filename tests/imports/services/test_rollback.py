"""Rolling back a migrated import: exact, re-runnable, refused mid-work, honest about changed orders."""

from __future__ import annotations

import contextlib
import html
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from audit.models import AuditEvent
from config.errors import Conflict
from imports.models import FileStatus, ImportFile, Order
from imports.pipeline.locks import file_lock, rollback_lock
from imports.services.rollback import duplicates_reimport, file_rollback
from tests.e2e.test_faults import trades_csv
from tests.imports.services.test_idempotency import approved_import

pytestmark = pytest.mark.django_db


def html_text(response: Any) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def imported(user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Two imports of the same user: (the one to roll back, another one)."""

    def make(data: bytes) -> ImportFile:
        return approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, data)

    return make(trades_csv(120)), make(trades_csv(30, start=5000))


def test_it_removes_exactly_the_orders_of_one_file_and_marks_it_rolled_back(imported: Any, reviewer: Any) -> None:
    target, other = imported
    result = file_rollback(file_id=target.pk, actor=reviewer)
    assert result.deleted == 120 and result.kept_changed == []
    assert Order.objects.filter(source_file=target).count() == 0
    assert Order.objects.filter(source_file=other).count() == 30
    target.refresh_from_db()
    assert target.status == FileStatus.ROLLED_BACK
    event = AuditEvent.objects.get(action="file.rolled_back", object_id=str(target.pk))
    assert event.actor == reviewer and event.details["deleted"] == 120
    assert event.details["previous_status"] == "IMPORTED"


def test_it_deletes_in_batches_and_running_it_twice_is_harmless(imported: Any, reviewer: Any, monkeypatch: Any) -> None:
    import imports.services.rollback

    monkeypatch.setattr(imports.services.rollback, "_BATCH", 50)  # 120 orders: three transactions
    target, _ = imported
    assert file_rollback(file_id=target.pk, actor=reviewer).deleted == 120
    again = file_rollback(file_id=target.pk, actor=reviewer)
    assert again.already_rolled_back and again.deleted == 0
    assert AuditEvent.objects.filter(action="file.rolled_back", object_id=str(target.pk)).count() == 1


@pytest.mark.parametrize("status", [FileStatus.MIGRATING, FileStatus.PROCESSING, FileStatus.UPLOADED])
def test_it_is_refused_while_the_file_is_still_being_worked_on(imported: Any, reviewer: Any, status: str) -> None:
    target, _ = imported
    ImportFile.objects.filter(pk=target.pk).update(status=status)
    with pytest.raises(Conflict) as refused:
        file_rollback(file_id=target.pk, actor=reviewer)
    assert refused.value.code == "rollback_refused"
    assert Order.objects.filter(source_file=target).count() == 120


def test_changed_orders_are_reported_not_silently_deleted(imported: Any, reviewer: Any) -> None:
    target, _ = imported
    edited = Order.objects.filter(source_file=target).order_by("source_line").first()
    edited.price = Decimal("1.23")
    edited.save()  # a later correction through the ORM (bumps updated_at)
    with pytest.raises(Conflict) as refused:
        file_rollback(file_id=target.pk, actor=reviewer)
    assert refused.value.code == "rollback_changed_orders"
    assert refused.value.details["changed_orders"] == [edited.pk]
    assert Order.objects.filter(source_file=target).count() == 120, "nothing deleted"
    assert ImportFile.objects.get(pk=target.pk).status == FileStatus.IMPORTED

    kept = file_rollback(file_id=target.pk, actor=reviewer, keep_changed=True)
    assert kept.deleted == 119 and kept.kept_changed == [edited.pk]
    assert list(Order.objects.filter(source_file=target).values_list("pk", flat=True)) == [edited.pk]
    assert "1 changed orders were kept" in ImportFile.objects.get(pk=target.pk).error


def test_it_names_the_other_files_whose_duplicates_pointed_at_the_removed_orders(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(20))
    overlap = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(20, start=10))
    assert overlap.rows_duplicate == 10
    result = file_rollback(file_id=first.pk, actor=reviewer)
    assert result.duplicates_in_other_files == {overlap.pk: 10}


def test_after_a_rollback_the_rows_other_files_skipped_as_its_duplicates_are_imported_again(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(20))
    overlap = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(20, start=10))
    assert (overlap.rows_imported, overlap.rows_duplicate) == (10, 10)
    file_rollback(file_id=first.pk, actor=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        again = duplicates_reimport(rolled_back_file_id=first.pk, actor=reviewer)
    assert again == {overlap.pk: 10}
    run_jobs()
    done = ImportFile.objects.get(pk=overlap.pk)
    assert (done.status, done.rows_imported, done.rows_duplicate) == (FileStatus.IMPORTED, 20, 0)
    assert Order.objects.filter(source_file=overlap).count() == 20
    assert AuditEvent.objects.filter(action="rows.duplicates_reimported", object_id=str(overlap.pk)).count() == 1
    # Asked again: nothing left pointing at the rolled-back file, nothing changes.
    assert duplicates_reimport(rolled_back_file_id=first.pk, actor=reviewer) == {}


def test_the_admin_action_needs_the_rollback_permission_and_calls_the_service(
    imported: Any, reviewer: Any, client: Client
) -> None:
    target, _ = imported
    reviewer.user_permissions.remove(Permission.objects.get(codename="rollback_importfile"))
    client.force_login(type(reviewer).objects.get(pk=reviewer.pk))
    denied = client.post("/admin/imports/importfile/", {"action": "rollback_selected", "_selected_action": [target.pk]})
    assert denied.status_code in (200, 302, 403)
    assert Order.objects.filter(source_file=target).count() == 120, "no permission, nothing rolled back"

    reviewer.user_permissions.add(Permission.objects.get(codename="rollback_importfile"))
    client.force_login(type(reviewer).objects.get(pk=reviewer.pk))
    action = {"action": "rollback_selected", "_selected_action": [target.pk]}
    response = client.post("/admin/imports/importfile/", {**action, "confirm": "yes", "reason": "Wrong account"})
    assert response.status_code == 302
    assert ImportFile.objects.get(pk=target.pk).status == FileStatus.ROLLED_BACK
    assert "120 orders deleted" in client.get(response.url).content.decode()
    event = AuditEvent.objects.get(action="file.rolled_back", object_id=str(target.pk))
    assert event.details["reason"] == "Wrong account" and event.actor_label == reviewer.username


def test_the_admin_rollback_first_shows_a_confirmation_page_and_changes_nothing(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, client: Client
) -> None:
    first = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(20))
    overlap = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(20, start=10))
    ImportFile.objects.filter(pk=overlap.pk).update(original_name="march-overlap.csv")
    client.force_login(reviewer)
    action = {"action": "rollback_selected", "_selected_action": [first.pk]}

    page = client.post("/admin/imports/importfile/", action)
    html = page.content.decode()
    assert page.status_code == 200 and 'id="rollback-confirmation"' in html
    assert "20 orders will be deleted" in html
    # The other file whose rows were skipped as duplicates of these orders: by name, with a link.
    assert "march-overlap.csv" in html and f"/admin/imports/importfile/{overlap.pk}/change/" in html
    assert "10 rows were duplicates" in html and "no longer in production" in html
    assert Order.objects.filter(source_file=first).count() == 20, "showing the page deletes nothing"

    # Confirmed without a reason: the page again, asking for one; still nothing deleted.
    again = client.post("/admin/imports/importfile/", {**action, "confirm": "yes", "reason": "  "})
    assert again.status_code == 200 and 'id="reason-missing"' in again.content.decode()
    assert ImportFile.objects.get(pk=first.pk).status == FileStatus.IMPORTED

    done = client.post("/admin/imports/importfile/", {**action, "confirm": "yes", "reason": "Test upload"}, follow=True)
    assert ImportFile.objects.get(pk=first.pk).status == FileStatus.ROLLED_BACK
    assert "'march-overlap.csv' had been skipped as duplicates" in html_text(done)


def test_the_confirmation_page_says_a_file_with_changed_orders_will_be_refused(
    imported: Any, reviewer: Any, client: Client
) -> None:
    target, _ = imported
    order = Order.objects.filter(source_file=target).first()
    order.commission = Decimal("9")
    order.save()
    client.force_login(reviewer)
    html = client.post(
        "/admin/imports/importfile/", {"action": "rollback_selected", "_selected_action": [target.pk]}
    ).content.decode()
    assert "0 orders will be deleted" in html and "1 of its orders were changed since the import" in html
    kept = client.post(
        "/admin/imports/importfile/", {"action": "rollback_keeping_changed", "_selected_action": [target.pk]}
    ).content.decode()
    assert "119 orders will be deleted" in kept


def test_a_late_job_for_a_rolled_back_file_changes_nothing(imported: Any, reviewer: Any) -> None:
    from imports.pipeline.migrate import file_migrate
    from imports.pipeline.process import file_process

    target, _ = imported
    file_rollback(file_id=target.pk, actor=reviewer)
    assert file_migrate(file_id=target.pk) == FileStatus.ROLLED_BACK
    assert file_process(file_id=target.pk) == FileStatus.ROLLED_BACK
    assert ImportFile.objects.get(pk=target.pk).status == FileStatus.ROLLED_BACK
    assert Order.objects.filter(source_file=target).count() == 0
    assert AuditEvent.objects.filter(action="migration.finished", object_id=str(target.pk)).count() == 1


def test_the_rollback_service_itself_refuses_a_user_without_the_permission(other_user: Any) -> None:
    from config.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="roll back"):
        file_rollback(file_id=1, actor=other_user)


def _hold_in_another_session(*locks: Any) -> tuple[threading.Event, threading.Thread]:
    """Another session (a thread has its own database connection) holds the given file locks until released."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with contextlib.ExitStack() as stack:
                assert all(stack.enter_context(lock) for lock in locks)
                taken.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(30)
    return release, thread


def test_a_rollback_blocked_by_another_running_rollback_says_so(imported: Any, reviewer: Any) -> None:
    target, _ = imported
    # What a running rollback holds: the rollback's lock and the file's lock (imports/services/rollback.py).
    release, thread = _hold_in_another_session(rollback_lock(target.pk), file_lock(target.pk))
    try:
        with pytest.raises(Conflict) as refused:
            file_rollback(file_id=target.pk, actor=reviewer)
    finally:
        release.set()
        thread.join()
    assert refused.value.code == "rollback_running"
    assert refused.value.message.startswith("Another rollback of this file is running right now")
    assert "worker" not in refused.value.message
    assert Order.objects.filter(source_file=target).count() == 120
    assert file_rollback(file_id=target.pk, actor=reviewer).deleted == 120, "once it is done, a rollback runs"


def test_a_rollback_blocked_by_a_worker_says_a_worker_is_processing_the_file(imported: Any, reviewer: Any) -> None:
    target, _ = imported
    release, thread = _hold_in_another_session(file_lock(target.pk))  # what file_process holds
    try:
        with pytest.raises(Conflict) as refused:
            file_rollback(file_id=target.pk, actor=reviewer)
    finally:
        release.set()
        thread.join()
    assert refused.value.code == "file_busy" and "A worker is processing this file" in refused.value.message
