from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser

from imports.models import ApiToken

REVIEW_PERMISSIONS = [("formats", "approve_csvformat"), ("imports", "rollback_importfile")]


class Command(BaseCommand):
    help = "Print USERNAME's API token (Authorization: Bearer <token>)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="Create the user if missing.")
        parser.add_argument(
            "--approver",
            action="store_true",
            help="Grant the approve/reject (and rollback) permissions and admin access.",
        )

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        username = str(options["username"])
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
                user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        token, _ = ApiToken.objects.get_or_create(user=user)
        self.stdout.write(token.key)
