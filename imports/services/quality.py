"""The quality score of a pending format (0-100), its parts in words, and the numbers the approval policy reads
(the share of staged rows that would be invalid, the lowest confidence of a required field).

Score = 40 × mean confidence of the required fields + 40 × share of the previewed rows that would import
(of those not skipped) + 20 × similarity to an approved format (1: the same columns in another order; 0.5: one
column added, removed or renamed; 0: none alike). The preview reads the first RISK_SCAN_ROWS staged rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.errors import AppError
from formats.models import CsvFormat, FormatStatus
from formats.targets import get_target
from imports.pipeline.preview import preview

# The rows the policy's numbers are read from: enough to judge a format, cheap enough for every approval.
RISK_SCAN_ROWS = 5000


@dataclass
class Quality:
    """A format's quality score with its parts in words and the raw numbers behind them."""

    score: int
    parts: list[str] = field(default_factory=list)
    invalid_rate: float | None = None  # None: nothing staged, or a mapping that does not compile
    would_import: int = 0
    lowest_confidence: float = 0.0


def format_invalid_rate(fmt: CsvFormat) -> float | None:
    """The share of the format's staged rows (the first RISK_SCAN_ROWS) that would be invalid with its mapping."""
    summary = _summary(fmt)
    return summary["would_be_invalid"] / summary["total"] if summary and summary["total"] else None


def _summary(fmt: CsvFormat) -> dict[str, Any] | None:
    try:
        return preview(fmt=fmt, limit=0, scan_limit=RISK_SCAN_ROWS)
    except AppError:
        return None


def _confidences(fmt: CsvFormat) -> dict[str, float]:
    """The suggested confidence of each required field (a field a reviewer edited has none: 0)."""
    fields = (fmt.mapping or {}).get("fields") or {}
    required = [f.name for f in get_target(fmt.target).fields if f.required]
    return {name: float((fields.get(name) or {}).get("confidence") or 0.0) for name in required}


def _similarity(fmt: CsvFormat) -> tuple[float, str]:
    columns = {c.casefold() for c in fmt.header or [] if c}
    best, why = 0.0, "no approved format has similar columns"
    approved = CsvFormat.objects.filter(target=fmt.target, status=FormatStatus.APPROVED).exclude(pk=fmt.pk)
    for name, header in approved.values_list("name", "header"):
        other = {c.casefold() for c in header or [] if c}
        if other == columns:
            return 1.0, f"the same columns as the approved format '{name}'"
        if len(columns ^ other) <= 2 and abs(len(columns) - len(other)) <= 1 and best < 0.5:
            best, why = 0.5, f"one column away from the approved format '{name}'"
    return best, why


def format_quality(fmt: CsvFormat) -> Quality:
    """The quality score of a format's current mapping over its staged rows, with its parts in words."""
    confidences = _confidences(fmt)
    mean = sum(confidences.values()) / len(confidences) if confidences else 0.0
    weakest = min(confidences, key=lambda name: confidences[name]) if confidences else ""
    lowest = confidences.get(weakest, 0.0)
    summary = _summary(fmt)
    similarity, similar_why = _similarity(fmt)
    parts = [f"required fields: mean confidence {mean:.2f}, lowest {lowest:.2f} ({weakest})"]
    if summary is None:
        imported_share, invalid_rate = 0.0, None
        parts.append("preview: the mapping does not compile")
    else:
        judged = summary["would_import"] + summary["would_be_invalid"]
        imported_share = summary["would_import"] / judged if judged else 0.0
        invalid_rate = summary["would_be_invalid"] / summary["total"] if summary["total"] else None
        parts.append(
            f"preview: {summary['would_import']} of {summary['total']} rows would import, "
            f"{summary['would_be_invalid']} fail, {summary['would_skip']} skipped"
        )
    parts.append(similar_why)
    score = round(100 * (0.4 * mean + 0.4 * imported_share + 0.2 * similarity))
    return Quality(
        score=score,
        parts=parts,
        invalid_rate=invalid_rate,
        would_import=summary["would_import"] if summary else 0,
        lowest_confidence=lowest,
    )


def format_quality_store(fmt: CsvFormat) -> Quality:
    """Compute the quality and keep it on the format (shown in the admin's list)."""
    quality = format_quality(fmt)
    CsvFormat.objects.filter(pk=fmt.pk).update(quality=quality.score, quality_parts=quality.parts)
    return quality
