"""Write format definitions (name, target, header, columns, fingerprint, status, mapping) to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from formats.models import CsvFormat, FormatStatus
from formats.resources import formats_export


class Command(BaseCommand):
    help = "Export format definitions as JSON or CSV (formula-safe cells); import them with import_formats."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", help="File to write (default: standard output).")
        parser.add_argument("--file-format", choices=["json", "csv"], default="json")
        parser.add_argument("--status", choices=FormatStatus.values, help="Only formats with this status.")
        parser.add_argument(
            "--include-builtin",
            action="store_true",
            help="Also export the built-in formats (every site loads them itself).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queryset = CsvFormat.objects.order_by("target", "name", "pk")
        if options["status"]:
            queryset = queryset.filter(status=options["status"])
        if not options["include_builtin"]:
            queryset = queryset.filter(builtin=False)
        text = formats_export(queryset=queryset, file_format=options["file_format"])
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"Exported {queryset.count()} format(s) to {options['output']}.")
        else:
            self.stdout.write(text)
