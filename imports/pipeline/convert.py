"""Converting a row: a format's mapping compiled once against its columns, and what a batch of rows came to.

The one conversion path: the admin's preview, the migration of staged rows, the rows the SQL fast path declines
and re-runs after a mapping fix all call `CompiledFormat.convert`, so what the admin sees is what gets written.
A row is *valid* (to be written: it becomes *imported* or *duplicate*), *invalid* or *skipped*.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from formats.converters import compile_mapping
from formats.filters import compile_filters
from formats.models import CsvFormat
from imports.targets import writer_for
from imports.targets.base import TargetWriter
from staging.models import StagedStatus

RowVerdict = Literal["valid", "invalid", "skipped"]
# (staged row id, its new status, its errors or None): how a batch marks the rows that did not become records.
Mark = tuple[int, str, list[dict[str, Any]] | None]


@dataclass
class BatchOutcome:
    """What one batch (or chunk) of rows came to, in the results vocabulary, and why rows were skipped."""

    imported: int = 0
    invalid: int = 0
    skipped: int = 0
    duplicate: int = 0
    skip_reasons: Counter = field(default_factory=Counter)

    def route(
        self,
        row_id: int,
        verdict: RowVerdict,
        errors: list[dict[str, Any]],
        marks: list[Mark],
    ) -> bool:
        """Count and mark a skipped or invalid row; True when the row is valid and still to be written."""
        if verdict == "skipped":
            self.skipped += 1
            self.skip_reasons[errors[0]["message"].removeprefix("skipped: ")[:200]] += 1
            marks.append((row_id, StagedStatus.SKIPPED, errors))
            return False
        if verdict == "invalid":
            self.invalid += 1
            marks.append((row_id, StagedStatus.INVALID, errors))
            return False
        return True


@dataclass
class CompiledFormat:
    """A format's mapping compiled against its columns: the one conversion path."""

    mapping: Any
    row_filter: Any
    width: int
    writer: TargetWriter

    @classmethod
    def for_format(cls, fmt: CsvFormat, mapping: dict[str, Any] | None = None) -> CompiledFormat:
        mapping = mapping or fmt.mapping
        return cls(
            mapping=compile_mapping(mapping.get("fields") or {}, fmt.columns),
            row_filter=compile_filters(mapping.get("filters") or [], fmt.columns),
            width=len(fmt.columns),
            writer=writer_for(fmt.target),
        )

    def convert(self, cells: list[str]) -> tuple[RowVerdict, dict[str, Any], list[dict[str, Any]]]:
        """('skipped', {}, [reason]) | ('invalid', values, errors) | ('valid', values, [])."""
        reason = self.row_filter(cells)
        if reason:
            return "skipped", {}, [{"field": None, "value": "", "message": f"skipped: {reason}"}]
        errors: list[dict[str, Any]] = []
        if len(cells) > self.width and any(cell.strip() for cell in cells[self.width :]):
            errors.append(
                {"field": None, "value": "", "message": f"row has {len(cells)} fields but the header has {self.width}"}
            )
        values, conversion_errors = self.mapping.apply(cells)
        errors.extend(conversion_errors)
        if not conversion_errors:
            errors.extend(self.writer.validate(values))
        return ("invalid" if errors else "valid"), values, errors
