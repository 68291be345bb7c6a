"""Template filters for the user's pages."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

from formats.converters import plain_decimal as decimal_text

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
    # The API's and the downloads' text (formats.converters.plain_decimal), with thousands separators added.
    whole, dot, fraction = decimal_text(number).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}{dot}{fraction}"
