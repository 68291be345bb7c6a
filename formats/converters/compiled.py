"""Compiled mappings: a mapping's fields resolved against a file's columns, applied row by row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.errors import ConversionError, MappingError
from formats.converters.registry import TWO_COLUMN_CONVERTERS, build_text_cleaner, join_cells, join_pair
from formats.converters.types import TextCleaner


@dataclass(frozen=True)
class _FieldPlan:
    """One field of a compiled mapping: source cell indexes and the cleaner."""

    name: str
    indexes: tuple[int, ...]
    clean: TextCleaner
    pair: bool = False  # a two-column converter's cells (join_pair), else join_cells (date + time)


class CompiledMapping:
    """A mapping's fields resolved against a file's columns: `apply(cells)` converts one row."""

    def __init__(self, plans: list[_FieldPlan], width: int):
        self.plans = plans
        self.width = width
        self.fields = [plan.name for plan in plans]
        self._single = [(plan.name, plan.indexes[0], plan.clean) for plan in plans if len(plan.indexes) == 1]
        self._multi = [(plan.name, plan.indexes, plan.clean, plan.pair) for plan in plans if len(plan.indexes) != 1]

    def apply(self, cells: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Converted values by field, and row errors [{field, value, message}] (value = the raw text)."""
        if len(cells) < self.width:
            cells = [*cells, *([""] * (self.width - len(cells)))]
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, index, clean in self._single:
            try:
                values[name] = clean(cells[index])
            except ConversionError as exc:
                values[name] = None
                errors.append(_error(name, cells[index], exc))
        for name, indexes, clean, pair in self._multi:
            parts = [cells[index] for index in indexes]
            text = (join_pair(parts) if pair else join_cells(parts)) if indexes else ""
            try:
                values[name] = clean(text)
            except ConversionError as exc:
                values[name] = None
                raw = " ".join(cells[index] for index in indexes)
                errors.append(_error(name, raw, exc))
        return values, errors


def _error(field: str, value: str, exc: ConversionError) -> dict[str, Any]:
    """A row error: the message in plain words when the converter has them, the technical one as `detail`."""
    if exc.plain:
        return {"field": field, "value": value, "message": exc.plain, "detail": str(exc)}
    return {"field": field, "value": value, "message": str(exc)}


def compile_mapping(fields: dict[str, Any], columns: list[str]) -> CompiledMapping:
    """Check every field spec and resolve its columns to indexes; MappingError names the fault."""
    if not isinstance(fields, dict):
        raise MappingError("'fields' must be an object: {target field: {columns, converter, options}}.")
    positions = {column: index for index, column in enumerate(columns)}
    plans = []
    for name, spec in fields.items():
        if not isinstance(spec, dict):
            raise MappingError(
                f"Field '{name}': the spec must be an object (columns, converter, options).", details={"field": name}
            )
        converter = spec.get("converter", "text")
        options = spec.get("options") or {}
        source = spec.get("columns") or []
        if not isinstance(source, list) or not all(isinstance(column, str) for column in source):
            raise MappingError(f"Field '{name}': 'columns' must be a list of column names.", details={"field": name})
        if converter != "constant" and not source:
            raise MappingError(
                f"Field '{name}': choose at least one column (or the 'constant' converter).", details={"field": name}
            )
        missing = [column for column in source if column not in positions]
        if missing:
            raise MappingError(
                f"Field '{name}': column {missing[0]!r} is not in the file. Columns: {', '.join(columns)}.",
                details={"field": name, "column": missing[0], "columns": list(columns)},
            )
        try:
            clean = build_text_cleaner(converter, options)
        except MappingError as exc:
            details = {"field": name, **exc.details}
            raise MappingError(f"Field '{name}': {exc.message}", details=details) from None
        if converter in TWO_COLUMN_CONVERTERS and len(source) != 2:
            which = "numerator, denominator" if converter == "quotient" else "money out, money in"
            raise MappingError(
                f"Field '{name}': the {converter} converter needs exactly two columns ({which}).",
                details={"field": name},
            )
        plans.append(
            _FieldPlan(name, tuple(positions[column] for column in source), clean, converter in TWO_COLUMN_CONVERTERS)
        )
    return CompiledMapping(plans, len(columns))
