"""Built-in formats shipped approved (the grandfathered ones): JSON files in formats/builtin/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import record
from formats.fingerprint import fingerprint, normalise_header
from formats.models import CsvFormat, FormatStatus
from formats.services import mapping_validate

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def builtin_definitions() -> list[dict[str, Any]]:
    """Every definition: {name, target, header, columns, section, mapping}."""
    return [json.loads(path.read_text()) for path in sorted(BUILTIN_DIR.glob("*.json"))]


def load_builtin_formats() -> list[tuple[str, str]]:
    """Create or update the built-in formats (idempotent); returns [(name, 'created'|'updated'|'unchanged')]."""
    results = []
    for definition in builtin_definitions():
        header = definition["header"]
        columns = definition.get("columns") or header
        section = (definition.get("mapping", {}).get("reader") or {}).get("section")
        target = definition.get("target", "orders")
        mapping = mapping_validate(target=target, mapping=definition["mapping"], columns=columns)
        print_ = fingerprint(header, section=section)
        with transaction.atomic():
            fmt = CsvFormat.objects.select_for_update().filter(target=target, fingerprint=print_).first()
            if fmt is None:
                fmt = CsvFormat.objects.create(
                    name=definition["name"],
                    target=target,
                    header=normalise_header(header),
                    columns=columns,
                    fingerprint=print_,
                    status=FormatStatus.APPROVED,
                    mapping=mapping,
                    suggestion=mapping,
                    confidence=1.0,
                    builtin=True,
                    approved_at=timezone.now(),
                )
                record(action="format.builtin_loaded", obj=fmt, summary=f"Built-in format '{fmt.name}' loaded")
                results.append((fmt.name, "created"))
            elif fmt.builtin and (fmt.mapping != mapping or fmt.name != definition["name"]):
                fmt.mapping, fmt.name, fmt.columns = mapping, definition["name"], columns
                fmt.status = FormatStatus.APPROVED
                fmt._change_reason = "built-in definition updated"
                fmt.save()
                results.append((fmt.name, "updated"))
            else:
                results.append((fmt.name, "unchanged"))
    return results
