"""API tokens are stored hashed, shown once, and the approver made with them can reach the rollback action."""

from __future__ import annotations

import hashlib
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from imports.models import ApiToken
from imports.services.uploads import upload_batch_create
from tests.conftest import csv_upload
from tests.imports.pipeline.test_pipeline import TRADES

pytestmark = pytest.mark.django_db

BEFORE = [("imports", "0007_no_trades_verdict")]
AFTER = [("imports", "0008_api_token_hashed")]


def make_token(username: str, *flags: str) -> str:
    out = StringIO()
    call_command("api_token", username, *flags, stdout=out)
    return out.getvalue().strip()


def authenticates(key: str) -> bool:
    response = Client().get("/api/orders", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


def every_stored_value() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM imports_apitoken")
        return repr(cursor.fetchall())


def test_the_key_is_printed_once_and_only_its_sha256_is_stored() -> None:
    key = make_token("script", "--create")
    assert len(key) >= 40 and authenticates(key)
    token = ApiToken.objects.get(user__username="script")
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:8]
    assert key not in every_stored_value() and key[8:] not in every_stored_value()
    assert not authenticates(token.key_hash), "the stored hash is not itself a token"


def test_asking_again_is_refused_and_changes_nothing_rotate_replaces_the_token() -> None:
    first = make_token("script", "--create")
    stored = ApiToken.objects.get(user__username="script").key_hash
    out = StringIO()
    with pytest.raises(CommandError, match=r"already has an API token \(.{8}….*cannot be shown again.*--rotate"):
        call_command("api_token", "script", "--approver", stdout=out)
    assert out.getvalue() == "", "no key is printed"
    script = get_user_model().objects.get(username="script")
    assert not script.is_staff and not script.user_permissions.exists(), "the refused call granted nothing"
    assert ApiToken.objects.get(user=script).key_hash == stored and authenticates(first)
    second = make_token("script", "--rotate")
    assert second != first and authenticates(second) and not authenticates(first)


def test_the_admin_shows_only_the_prefix(client: Client, django_user_model: Any) -> None:
    key = make_token("script", "--create")
    admin = django_user_model.objects.create_superuser(username="root", password="pw-root-1")
    client.force_login(admin)
    token = ApiToken.objects.get(user__username="script")
    pages = [
        client.get("/admin/imports/apitoken/").content.decode(),
        client.get(f"/admin/imports/apitoken/{token.pk}/change/").content.decode(),
    ]
    for page in pages:
        assert f"{key[:8]}…" in page
        assert key not in page and token.key_hash not in page
    assert client.get("/admin/imports/apitoken/add/").status_code == 403, "tokens are made by the command"


def test_an_approver_made_by_the_command_can_open_the_list_with_the_rollback_action(
    client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        upload_batch_create(owner=user, files=[csv_upload("t.csv", TRADES)])
    make_token("checker", "--create", "--approver")
    client.force_login(get_user_model().objects.get(username="checker"))
    page = client.get("/admin/imports/importfile/")
    assert page.status_code == 200
    assert 'value="rollback_selected"' in page.content.decode()


def test_whoever_may_roll_back_may_open_the_list_however_the_permission_was_granted(
    client: Client, django_user_model: Any
) -> None:
    staff = django_user_model.objects.create_user(username="ops", password="pw-ops-1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="rollback_importfile"))
    client.force_login(staff)
    assert client.get("/admin/imports/importfile/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_migration_hashes_existing_tokens_and_their_clients_keep_working(django_user_model: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old_apps = executor.loader.project_state(BEFORE).apps
        user = django_user_model.objects.create_user(username="legacy-script")
        legacy_key = "0123456789abcdef0123456789abcdef01234567"  # a key as the old code made them (hex)
        old_apps.get_model("imports", "ApiToken").objects.create(user_id=user.pk, key=legacy_key)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    token = ApiToken.objects.get(user__username="legacy-script")
    assert token.key_hash == hashlib.sha256(legacy_key.encode()).hexdigest() and token.prefix == "01234567"
    assert legacy_key not in every_stored_value()
    assert authenticates(legacy_key)
