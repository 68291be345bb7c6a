"""Approval policies: chains of distinct approvers, a mapping change that resets the chain, risk, expiry and
escalation, the emergency override, bulk approval, and the API's answer — real Postgres, Redis and RQ."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from config.errors import Conflict, MappingError, PermissionDenied
from formats.approval import chain_state, formats_escalate, policy_current
from formats.models import ApprovalStep, CsvFormat, FormatStatus, StepKind, UserTier
from imports.models import FileStatus, ImportFile, Order
from imports.services.rollback import format_policy_revoke
from imports.services.uploads import approval_invalid_rate, review_approve, review_override, review_reject
from tests.conftest import api_key_for
from tests.imports.pipeline.test_pipeline import upload

pytestmark = pytest.mark.django_db


def make_reviewer(django_user_model: Any, name: str, *codenames: str) -> Any:
    person = django_user_model.objects.create_user(username=name, password=f"pw-{name}-1", is_staff=True,
                                                   email=f"{name}@example.com")  # fmt: skip
    person.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="formats", codename__in=["approve_csvformat", *codenames])
    )
    return django_user_model.objects.get(pk=person.pk)


def two_approvers() -> None:
    policy = policy_current()
    policy.approvers_required = policy.risky_approvers_required = 2
    policy.save()


def test_a_two_approver_chain_refuses_the_uploader_needs_two_people_and_imports_once_complete(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    two_approvers()
    second = make_reviewer(django_user_model, "second")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    user.user_permissions.add(Permission.objects.get(codename="approve_csvformat"))
    uploader = django_user_model.objects.get(pk=user.pk)
    with pytest.raises(PermissionDenied, match="Segregation of duties"):
        review_approve(format_id=file.format_id, actor=uploader)
    with django_capture_on_commit_callbacks(execute=True):
        first = review_approve(format_id=file.format_id, actor=reviewer, comment="columns checked")
        review_approve(format_id=file.format_id, actor=reviewer)  # the same person again does not count twice
    run_jobs()
    assert first.status == FormatStatus.PENDING
    assert (first.approval_chain.approvers, first.approval_chain.missing) == (["reviewer"], 1)
    assert Order.objects.count() == 0 and ImportFile.objects.get(pk=file.pk).status == FileStatus.PENDING_APPROVAL
    assert ApprovalStep.objects.filter(format_id=file.format_id).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        done = review_approve(format_id=file.format_id, actor=second)
    run_jobs()
    assert done.status == FormatStatus.APPROVED and done.approved_by == second
    assert ImportFile.objects.get(pk=file.pk).status in (FileStatus.IMPORTED, FileStatus.PARTIAL)
    assert Order.objects.count() == 2  # the third row has quantity 0 and fails
    steps = list(ApprovalStep.objects.filter(format_id=file.format_id).values_list("approver__username", "comment"))
    assert steps == [("reviewer", "columns checked"), ("second", "")]
    approved = AuditEvent.objects.get(action="format.approved", object_id=str(file.format_id))
    assert approved.details["chain"]["approvers"] == ["reviewer", "second"]
    assert AuditEvent.objects.filter(action="format.approval_step").count() == 1


def test_a_mapping_change_between_two_approvals_starts_the_chain_again(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    two_approvers()
    second = make_reviewer(django_user_model, "second")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    review_approve(format_id=file.format_id, actor=reviewer)
    changed = CsvFormat.objects.get(pk=file.format_id).mapping
    changed["fields"]["commission"]["options"] = {**changed["fields"]["commission"]["options"], "default": "2"}
    after = review_approve(format_id=file.format_id, actor=second, mapping=changed)
    # The second approver changed the mapping: their approval is the first of the new chain.
    assert after.status == FormatStatus.PENDING and after.approval_chain.approvers == ["second"]
    reset = AuditEvent.objects.get(action="format.approval_chain_reset")
    assert reset.details["before"] != reset.details["after"] and "second changed the mapping" in reset.summary
    assert ApprovalStep.objects.get(approver=reviewer).reset_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        done = review_approve(format_id=file.format_id, actor=reviewer)
    assert done.status == FormatStatus.APPROVED
    assert done.mapping["fields"]["commission"]["options"]["default"] == "2"


def test_rejection_by_anyone_in_the_chain_rejects(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    two_approvers()
    second = make_reviewer(django_user_model, "second")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    review_approve(format_id=file.format_id, actor=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        review_reject(format_id=file.format_id, actor=second, reason="not our broker")
    assert CsvFormat.objects.get(pk=file.format_id).status == FormatStatus.REJECTED
    assert ImportFile.objects.get(pk=file.pk).status == FileStatus.REJECTED


def test_a_risky_format_needs_the_risky_number_of_approvers(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    policy = policy_current()
    policy.risky_approvers_required = 2
    policy.risky_invalid_rate = 0.2  # one of the three rows (quantity 0) would fail: 33% > 20%
    policy.save()
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    first = review_approve(format_id=file.format_id, actor=reviewer)
    assert first.status == FormatStatus.PENDING
    assert (
        first.approval_chain.required == 2 and "33% of its staged rows would be invalid" in first.approval_chain.risk[0]
    )
    policy.risky_invalid_rate = 0.5
    policy.save()
    second = make_reviewer(django_user_model, "second")
    with django_capture_on_commit_callbacks(execute=True):
        done = review_approve(format_id=file.format_id, actor=second)
    assert done.status == FormatStatus.APPROVED  # under the new limit one approver was enough; two approved


def test_an_expired_step_no_longer_counts_and_must_be_given_again(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    two_approvers()
    second = make_reviewer(django_user_model, "second")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    review_approve(format_id=file.format_id, actor=reviewer)
    ApprovalStep.objects.filter(approver=reviewer).update(created_at=timezone.now() - timedelta(hours=73))
    state = review_approve(format_id=file.format_id, actor=second).approval_chain
    assert (state.approvers, state.expired, state.missing) == (["second"], 1, 1)
    with django_capture_on_commit_callbacks(execute=True):
        done = review_approve(format_id=file.format_id, actor=reviewer)  # given again
    assert done.status == FormatStatus.APPROVED


def test_a_format_waiting_too_long_is_escalated_once_to_the_approvers(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    make_reviewer(django_user_model, "second")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert formats_escalate() == []  # not waited long enough
    CsvFormat.objects.filter(pk=file.format_id).update(created_at=timezone.now() - timedelta(hours=25))
    with django_capture_on_commit_callbacks(execute=True):
        assert formats_escalate() == [file.format_id]
        assert formats_escalate() == []  # once
    event = AuditEvent.objects.get(action="format.escalated")
    assert "has waited 25 h for approval: 0 of 1 approvals" in event.summary
    [email] = mail.outbox
    assert "second@example.com" in email.to and "Waiting for approval for 25 h" in email.subject


def test_the_emergency_override_needs_its_permission_and_a_reason_and_tells_every_approver(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    two_approvers()
    boss = make_reviewer(django_user_model, "boss", "override_approval")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with pytest.raises(PermissionDenied, match="permission to override"):
        review_override(format_id=file.format_id, actor=reviewer, reason="urgent")
    with pytest.raises(MappingError, match="reason is required"):
        review_override(format_id=file.format_id, actor=boss, reason="  ")
    assert CsvFormat.objects.get(pk=file.format_id).status == FormatStatus.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        fmt = review_override(format_id=file.format_id, actor=boss, reason="month-end close cannot wait")
    run_jobs()
    assert fmt.status == FormatStatus.APPROVED and Order.objects.count() == 2
    assert ApprovalStep.objects.get(format=fmt).kind == StepKind.OVERRIDE
    event = AuditEvent.objects.get(action="format.approval_override")
    assert "EMERGENCY OVERRIDE" in event.summary and event.details["reason"] == "month-end close cannot wait"
    override_mail = [m for m in mail.outbox if "Emergency override" in m.subject]
    assert override_mail and {"boss@example.com"} <= set(override_mail[0].to)


def test_the_override_bypasses_segregation_for_its_holder(
    user: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=["approve_csvformat", "override_approval"]))
    uploader = django_user_model.objects.get(pk=user.pk)
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        fmt = review_override(format_id=file.format_id, actor=uploader, reason="sole admin on call")
    assert fmt.status == FormatStatus.APPROVED


def test_the_admins_bulk_approval_is_one_step_of_each_chain(
    admin_client: Any, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    two_approvers()
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/formats/csvformat/",
            {"action": "approve_selected", "_selected_action": [file.format_id]},
            follow=True,
        )
    assert "1 more needed" in response.content.decode()
    assert CsvFormat.objects.get(pk=file.format_id).status == FormatStatus.PENDING
    assert Order.objects.count() == 0


def test_the_api_records_a_step_and_answers_whether_the_format_is_approved(
    client: Any, user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    two_approvers()
    second = make_reviewer(django_user_model, "second")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    url = f"/api/admin/formats/{file.format_id}/approve"
    first = client.post(url, {"comment": "ok"}, content_type="application/json",
                        HTTP_AUTHORIZATION=f"Bearer {api_key_for(reviewer)}")  # fmt: skip
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["approved"] is False and body["status"] == "PENDING"
    assert (body["approval"]["approvals"], body["approval"]["required"], body["approval"]["missing"]) == (1, 2, 1)
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {api_key_for(second)}")  # fmt: skip
    assert done.status_code == 202 and done.json()["approved"] is True
    assert done.json()["approval"]["approvers"] == ["reviewer", "second"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_last_approvals_approve_once_and_migrate_once(
    user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    two_approvers()
    second = make_reviewer(django_user_model, "second")
    third = make_reviewer(django_user_model, "third")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    review_approve(format_id=file.format_id, actor=reviewer)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def approve(actor: Any) -> None:
        try:
            barrier.wait()
            results.append(review_approve(format_id=file.format_id, actor=actor).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(person,)) for person in (second, third)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_jobs()
    # Both completed the chain under the format's row lock in turn: the second found it approved already
    # (an approval again, not a second approval), and the rows were migrated once.
    assert sorted(results) == ["APPROVED", "APPROVED"]
    assert AuditEvent.objects.filter(action="format.approved", object_id=str(file.format_id)).count() == 1
    assert Order.objects.filter(source_file_id=file.pk).count() == 2
    assert chain_state(CsvFormat.objects.get(pk=file.format_id)).complete


def test_by_default_one_approver_suffices_and_no_rows_are_scanned_for_risk(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert approval_invalid_rate(file.format_id) is None  # risky approvers = approvers: the rule is off
    with django_capture_on_commit_callbacks(execute=True):
        fmt = review_approve(format_id=file.format_id, actor=reviewer)
    assert fmt.status == FormatStatus.APPROVED and fmt.approval_chain.required == 1


def test_the_review_screen_shows_the_chain_and_who_still_has_to_decide(
    client: Any, user: Any, reviewer: Any, django_user_model: Any, run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    two_approvers()
    second = make_reviewer(django_user_model, "second")
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    review_approve(format_id=file.format_id, actor=reviewer, comment="dates checked")
    client.force_login(second)
    page = client.get(f"/admin/formats/csvformat/{file.format_id}/change/").content.decode()
    assert "1 of 2</strong> approvals of this mapping: 1 more needed" in page
    assert "dates checked" in page and ">reviewer<" in page
    assert "emergency override" not in page  # second has no override permission


GOOD = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
"""


def auto_policy(**thresholds: Any) -> None:
    policy = policy_current()
    policy.auto_approve = True
    for name, value in thresholds.items():
        setattr(policy, name, value)
    policy.save()


def test_the_quality_score_is_kept_with_its_parts_in_words(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.quality is not None and 0 < fmt.quality < 100  # one of three rows would fail, nothing alike
    assert fmt.quality_parts[1] == "preview: 2 of 3 rows would import, 1 fail, 0 skipped"
    assert fmt.quality_parts[0].startswith("required fields: mean confidence ")
    assert fmt.quality_parts[2] == "no approved format has similar columns"


def test_auto_approval_is_taken_when_every_threshold_passes(
    user: Any, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    make_reviewer(django_user_model, "second")
    auto_policy(auto_min_quality=70, auto_min_confidence=0.7, auto_max_invalid_rate=0.0)
    with django_capture_on_commit_callbacks(execute=True):  # the migration the job queues on commit
        file = upload(user, text=GOOD, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    run_jobs()
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.status == FormatStatus.APPROVED and fmt.approved_by_policy and fmt.approved_by is None
    assert ImportFile.objects.get(pk=file.pk).status == FileStatus.IMPORTED and Order.objects.count() == 2
    step = ApprovalStep.objects.get(format=fmt)
    assert step.kind == StepKind.POLICY and step.approver is None and "quality" in step.comment
    event = AuditEvent.objects.get(action="format.approved_by_policy")
    assert event.details["quality"] == fmt.quality and event.details["invalid_rate"] == 0.0
    assert any("Approved by policy" in m.subject and "second@example.com" in m.to for m in mail.outbox)


def test_auto_approval_is_refused_at_each_threshold_and_the_format_waits(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # The three-row file has one row that would fail (quantity 0): 33% over a 10% limit.
    auto_policy(auto_min_quality=0, auto_min_confidence=0.0, auto_max_invalid_rate=0.1)
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert CsvFormat.objects.get(pk=file.format_id).status == FormatStatus.PENDING
    refused = AuditEvent.objects.get(action="format.auto_approval_refused")
    assert refused.details["refused"] == ["33.3% of the rows would be invalid (limit 10.0%)"]
    # A quality threshold above the score refuses too.
    auto_policy(auto_min_quality=100, auto_min_confidence=0.0, auto_max_invalid_rate=1.0)
    other = upload(user, text=GOOD.replace("Ref", "Reference"), run_jobs=run_jobs,
                   capture=django_capture_on_commit_callbacks)  # fmt: skip
    assert CsvFormat.objects.get(pk=other.format_id).status == FormatStatus.PENDING
    last = AuditEvent.objects.filter(action="format.auto_approval_refused").order_by("-pk").first()
    assert last.details["refused"][0].startswith("quality ") and last.details["refused"][0].endswith("< 100")


def test_auto_approval_is_off_by_default(user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> None:
    file = upload(user, text=GOOD, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert CsvFormat.objects.get(pk=file.format_id).status == FormatStatus.PENDING
    assert not AuditEvent.objects.filter(action__startswith="format.auto_approval").exists()


def test_a_trusted_tier_gets_auto_approval_and_a_staging_tier_does_not(
    user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    policy = policy_current()  # auto-approval off for everyone else; thresholds the good file passes
    policy.auto_min_quality, policy.auto_min_confidence = 70, 0.7
    policy.save()
    trusted, careful = Group.objects.create(name="desk"), Group.objects.create(name="interns")
    UserTier.objects.create(group=trusted, staging_required=False)
    UserTier.objects.create(group=careful, staging_required=True)
    user.groups.add(trusted)
    other_user.groups.add(careful)
    with django_capture_on_commit_callbacks(execute=True):
        mine = upload(user, text=GOOD, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    run_jobs()
    assert CsvFormat.objects.get(pk=mine.format_id).status == FormatStatus.APPROVED
    theirs = upload(other_user, text=GOOD.replace("Ccy", "Currency"), run_jobs=run_jobs,
                    capture=django_capture_on_commit_callbacks)  # fmt: skip
    assert CsvFormat.objects.get(pk=theirs.format_id).status == FormatStatus.PENDING
    # Not refused at a threshold: a staging tier is not considered for auto-approval at all.
    assert not AuditEvent.objects.filter(action="format.auto_approval_refused").exists()


def test_an_approval_by_policy_is_revoked_by_rolling_back_its_files_and_rejecting(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    auto_policy(auto_min_quality=70, auto_min_confidence=0.7, auto_max_invalid_rate=0.0)
    with django_capture_on_commit_callbacks(execute=True):
        file = upload(user, text=GOOD, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    run_jobs()
    assert Order.objects.count() == 2
    with pytest.raises(MappingError, match="reason is required"):
        format_policy_revoke(format_id=file.format_id, actor=reviewer, reason="")
    assert Order.objects.count() == 2 and CsvFormat.objects.get(pk=file.format_id).status == FormatStatus.APPROVED
    done = format_policy_revoke(format_id=file.format_id, actor=reviewer, reason="wrong side mapping")
    assert done == {"files": 1, "deleted": 2}
    assert Order.objects.count() == 0
    assert ImportFile.objects.get(pk=file.pk).status == FileStatus.ROLLED_BACK
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.status == FormatStatus.REJECTED and "wrong side mapping" in fmt.rejection_reason
    assert AuditEvent.objects.filter(action="format.policy_approval_revoked").count() == 1
    # A format a person approved is not revoked this way (roll back its files instead).
    policy = policy_current()
    policy.auto_approve = False
    policy.save()
    other = upload(user, text=GOOD.replace("Ref", "Reference"), run_jobs=run_jobs,
                   capture=django_capture_on_commit_callbacks)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=other.format_id, actor=reviewer)
    with pytest.raises(Conflict, match="approved by policy"):
        format_policy_revoke(format_id=other.format_id, actor=reviewer, reason="x")
