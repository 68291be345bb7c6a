import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from config.settings import VAR_DIR


class Command(BaseCommand):
    help = "Create the demo superuser on first run and print its login (kept in var/demo-admin.txt)."

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        username = settings.AIRLOCK["DEMO_ADMIN_USERNAME"]
        saved = VAR_DIR / "demo-admin.txt"
        if User.objects.filter(username=username).exists():
            if saved.exists():
                self.stdout.write(f"Demo admin login: {saved.read_text().strip()}")
            else:
                self.stdout.write(f"Demo admin '{username}' exists (password set earlier).")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="admin@localhost", password=password)
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        saved.write_text(f"{username} / {password}\n")
        saved.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Created demo admin. Login: {username} / {password}"))
