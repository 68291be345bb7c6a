"""What approval would write: the first staged rows converted with a mapping, and a summary over all of them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from formats.models import CsvFormat
from imports.pipeline.convert import CompiledFormat
from staging.models import StagedRow, StagedStatus


def _error_kind(error: dict[str, Any]) -> str:
    """'price: '…' is not a number': the quoted value left out, so one mistake counts as one error kind."""
    message, value = error["message"], str(error.get("value") or "").strip()
    if value:
        message = message.replace(f"'{value}'", "'…'")
    return f"{error.get('field') or 'row'}: {message}"


def preview(
    *, fmt: CsvFormat, mapping: dict[str, Any] | None = None, limit: int = 20, scan_limit: int | None = None
) -> dict[str, Any]:
    """What approval would write: the first rows converted, and a validation summary over staged rows."""
    compiled = CompiledFormat.for_format(fmt, mapping)
    rows = StagedRow.objects.filter(format=fmt).exclude(status=StagedStatus.REJECTED).order_by("file_id", "line")
    if scan_limit:
        rows = rows[:scan_limit]
    first: list[dict[str, Any]] = []
    counts: Counter = Counter()
    error_counts: Counter = Counter()
    skip_counts: Counter = Counter()
    examples: dict[str, dict[str, Any]] = {}
    for file_id, line, raw in rows.values_list("file_id", "line", "raw").iterator(chunk_size=2000):
        verdict, values, errors = compiled.convert(raw)
        counts[verdict] += 1
        if verdict == "skipped":
            skip_counts[errors[0]["message"].removeprefix("skipped: ")] += 1
        for error in errors if verdict == "invalid" else []:
            key = _error_kind(error)
            error_counts[key] += 1
            examples.setdefault(key, {"file": file_id, "line": line, "value": error.get("value", "")})
        if len(first) < limit:
            first.append({"file": file_id, "line": line, "verdict": verdict, "values": values, "errors": errors})
    return {
        "rows": first,
        "total": sum(counts.values()),
        "would_import": counts["valid"],
        "would_be_invalid": counts["invalid"],
        "would_skip": counts["skipped"],
        "top_errors": [{"error": key, "count": n, "example": examples[key]} for key, n in error_counts.most_common(10)],
        "top_skips": [{"reason": key, "count": n} for key, n in skip_counts.most_common(10)],
    }
