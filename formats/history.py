"""Readable differences between two versions of a format's mapping, for the admin's history page."""

from __future__ import annotations

from typing import Any

# Informational keys set by the suggestion; a change in them is not a change in what gets written.
_INFORMATIONAL = ("confidence", "reason")


def show(value: Any) -> str:
    """A compact, human-readable rendering of a JSON value: `{abs: true}`, `Date + Time`, `none`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {show(item)}" for key, item in value.items()) + "}"
    return str(value)


def _columns(columns: Any) -> str:
    return " + ".join(str(column) for column in columns) if columns else "(none)"


def _rule(rule: Any) -> str:
    if not isinstance(rule, dict):
        return show(rule)
    op = rule.get("op", "in")
    values = rule.get("values") or ([rule["value"]] if "value" in rule else [])
    tail = f" {', '.join(str(v) for v in values)}" if values else ""
    return f"{rule.get('column')} {op}{tail}"


def _field_spec(spec: dict[str, Any]) -> str:
    options = spec.get("options") or {}
    return f"columns {_columns(spec.get('columns'))}, converter {spec.get('converter')}" + (
        f", options {show(options)}" if options else ""
    )


def mapping_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """One line per changed target field / filters / reader setting, e.g.

    "quantity: columns Shares → Qty; options {} → {abs: true}". Empty when nothing that affects the
    written rows changed (confidence and reason are informational and ignored).
    """
    old, new = old or {}, new or {}
    lines: list[str] = []
    old_fields: dict[str, Any] = old.get("fields") or {}
    new_fields: dict[str, Any] = new.get("fields") or {}
    for name in [*old_fields, *[n for n in new_fields if n not in old_fields]]:
        before, after = old_fields.get(name), new_fields.get(name)
        if before is None:
            lines.append(f"{name}: added ({_field_spec(after)})")
        elif after is None:
            lines.append(f"{name}: removed (was {_field_spec(before)})")
        else:
            parts = []
            if list(before.get("columns") or []) != list(after.get("columns") or []):
                parts.append(f"columns {_columns(before.get('columns'))} → {_columns(after.get('columns'))}")
            if before.get("converter") != after.get("converter"):
                parts.append(f"converter {before.get('converter')} → {after.get('converter')}")
            if (before.get("options") or {}) != (after.get("options") or {}):
                parts.append(f"options {show(before.get('options') or {})} → {show(after.get('options') or {})}")
            extra = sorted((set(before) | set(after)) - {"columns", "converter", "options", *_INFORMATIONAL})
            for key in extra:
                if before.get(key) != after.get(key):
                    parts.append(f"{key} {show(before.get(key))} → {show(after.get(key))}")
            if parts:
                lines.append(f"{name}: " + "; ".join(parts))
    old_filters, new_filters = old.get("filters") or [], new.get("filters") or []
    if old_filters != new_filters:
        before = "; ".join(_rule(r) for r in old_filters) or "(none)"
        after = "; ".join(_rule(r) for r in new_filters) or "(none)"
        lines.append(f"filters: {before} → {after}")
    old_reader, new_reader = old.get("reader") or {}, new.get("reader") or {}
    for key in sorted(set(old_reader) | set(new_reader)):
        if old_reader.get(key) != new_reader.get(key):
            lines.append(f"reader {key}: {show(old_reader.get(key))} → {show(new_reader.get(key))}")
    return lines


def format_versions(records: list[Any]) -> list[dict[str, Any]]:
    """History records (newest first) with, for each, what changed since the version before it."""
    versions: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        previous = records[index + 1] if index + 1 < len(records) else None
        changes: list[str] = []
        if previous is None:
            builtin = getattr(record, "builtin", False)
            changes.append("created from the built-in definition" if builtin else "created with the suggested mapping")
        else:
            if previous.status != record.status:
                changes.append(f"status {previous.status} → {record.status}")
            if previous.name != record.name:
                changes.append(f"name {previous.name!r} → {record.name!r}")
        versions.append(
            {
                "record": record,
                "changes": changes,
                "mapping_changes": mapping_diff(previous.mapping, record.mapping) if previous else [],
            }
        )
    return versions
