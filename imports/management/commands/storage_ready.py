"""Make the upload storage ready: create the S3 bucket when it is missing, and say where uploads go."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from config.errors import StorageUnavailable


class Command(BaseCommand):
    help = "Create the S3 bucket named by AIRLOCK_S3_BUCKET when it does not exist (a no-op on local disk)."

    def handle(self, *args: Any, **options: Any) -> None:
        ensure = getattr(default_storage, "ensure_bucket", None)
        if ensure is None:
            self.stdout.write(f"uploads are stored on local disk ({default_storage.location}): nothing to do")
            return
        try:
            created = ensure()
        except StorageUnavailable as exc:
            raise CommandError(exc.message) from exc
        where = default_storage.endpoint_url or "AWS S3"
        verb = "created" if created else "exists"
        self.stdout.write(f"bucket '{default_storage.bucket_name}' at {where}: {verb}")
