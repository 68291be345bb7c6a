"""Template filters for the user's pages."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()


@register.filter
def plain_decimal(value: Any) -> str:
    """A decimal without trailing zeros or exponent, with thousands separators: 170.5, 1,250, 0.0001."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = f"{number.normalize():,f}"
    return text
