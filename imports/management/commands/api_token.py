from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from config.errors import AppError
from imports.services.tokens import api_token_create

# Approve/reject and roll back, and the view permission of the admin list that holds the rollback action.
REVIEW_PERMISSIONS = [
    ("formats", "approve_csvformat"),
    ("imports", "rollback_importfile"),
    ("imports", "view_importfile"),
]


class Command(BaseCommand):
    help = (
        "Make USERNAME an API token and print it, this once (Authorization: Bearer <token>): only its hash is "
        "stored. --rotate replaces an existing token (the old one stops working)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="Create the user if missing.")
        parser.add_argument(
            "--approver",
            action="store_true",
            help="Grant the approve/reject (and rollback) permissions and admin access.",
        )
        parser.add_argument(
            "--rotate", action="store_true", help="Replace the user's existing token with a new one and print it."
        )

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        username = str(options["username"])
        # One transaction: a refusal (the user already has a token) leaves no half-made user or grant behind.
        with transaction.atomic():
            user = User.objects.filter(username=username).first()
            if user is None:
                if not options["create"]:
                    raise CommandError(f"No user {username!r}; pass --create to make one.")
                user = User.objects.create_user(username=username)
                user.set_unusable_password()
                user.save()
            if options["approver"]:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
                for app_label, codename in REVIEW_PERMISSIONS:
                    user.user_permissions.add(
                        Permission.objects.get(content_type__app_label=app_label, codename=codename)
                    )
            try:
                _, key = api_token_create(user=user, replace=bool(options["rotate"]))
            except AppError as exc:
                raise CommandError(f"{exc.message} Pass --rotate to do so.") from exc
        self.stdout.write(key)
