"""Create or update formats from a file written by export_formats (matched on target + fingerprint)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tablib.exceptions import TablibException

from formats.resources import formats_import
from formats.services import APPROVE_PERMISSION


class Command(BaseCommand):
    help = (
        "Import format definitions exported by export_formats. Every mapping is validated; one bad row "
        "and nothing is written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--file-format", choices=["json", "csv"], help="Default: from the file name's extension.")
        parser.add_argument(
            "--as",
            dest="username",
            help="Record the import as this user (needs the approve permission); default: the system.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Check and report; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        file_format = options["file_format"] or ("csv" if path.suffix.lower() == ".csv" else "json")
        actor = None
        if options["username"]:
            actor = get_user_model().objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"No user {options['username']!r}.")
            if not actor.has_perm(APPROVE_PERMISSION):
                raise CommandError(f"{actor.get_username()} lacks the 'approve CSV formats' permission.")
        try:
            result = formats_import(text=text, file_format=file_format, actor=actor, dry_run=options["dry_run"])
        except (ValueError, csv.Error, TablibException) as exc:
            raise CommandError(f"{path} is not a valid {file_format} export: {exc}") from exc
        problems = []
        for row in result.invalid_rows:
            for field, messages in row.error_dict.items():
                problems.append(f"row {row.number}: {field}: {' '.join(str(m) for m in messages)}")
        for number, errors in result.row_errors():
            problems.extend(f"row {number}: {error.error}" for error in errors)
        if problems:
            raise CommandError("Nothing was imported:\n" + "\n".join(problems))
        totals = result.totals
        verb = "Would import" if options["dry_run"] else "Imported"
        self.stdout.write(f"{verb}: {totals['new']} new, {totals['update']} updated, {totals['skip']} unchanged.")
