from django.core.management.base import BaseCommand

from formats.builtin import load_builtin_formats


class Command(BaseCommand):
    help = "Create or update the built-in (approved) formats. Safe to run again."

    def handle(self, *args: object, **options: object) -> None:
        for name, outcome in load_builtin_formats():
            self.stdout.write(f"{outcome:>9}  {name}")
