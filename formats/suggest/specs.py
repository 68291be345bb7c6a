"""The field entries of a suggested mapping: how one is written, and when one is still empty."""

from __future__ import annotations

from typing import Any


def field_spec(
    columns: list[str], converter: str, options: dict[str, Any], confidence: float, reason: str
) -> dict[str, Any]:
    """One field entry of the mapping JSON, its confidence clamped to [0, 1] and rounded."""
    return {
        "columns": columns,
        "converter": converter,
        "options": options,
        "confidence": round(max(0.0, min(1.0, confidence)), 2),
        "reason": reason,
    }


def unfilled(spec: Any) -> bool:
    """No column and no constant: the reviewer would have to fill this field."""
    return not isinstance(spec, dict) or (not spec.get("columns") and spec.get("converter") != "constant")
