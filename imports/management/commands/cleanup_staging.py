"""`python manage.py cleanup_staging [--days N] [--dry-run]`: retention cleanup (imports/services/retention.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from imports.services.retention import CleanupBusy, cleanup_staging


class Command(BaseCommand):
    help = "Delete staged rows and stored uploads of finished imports older than --days (never unfinished)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=settings.AIRLOCK["RETENTION_DAYS"],
            help="keep files touched within this many days (default: AIRLOCK_RETENTION_DAYS)",
        )
        parser.add_argument("--dry-run", action="store_true", help="only report what would be deleted")

    def handle(self, *args: Any, days: int, dry_run: bool, **options: Any) -> None:
        try:
            result = cleanup_staging(days=days, dry_run=dry_run)
        except CleanupBusy as exc:
            raise CommandError(exc.message) from exc
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"cleanup_staging (older than {days} days): {verb} {result['staged_rows']} staged rows of "
            f"{result['files']} files, {result['uploads']} stored uploads; "
            f"{'would purge' if dry_run else 'purged'} {result['purged']} failed/rejected files"
            + (
                ""
                if dry_run
                else f"; expired {result['idempotency_keys']} idempotency keys, {result['direct_uploads']} unconfirmed "
                f"direct uploads; removed {result['orphans']} stored objects no import names"
            )
        )
