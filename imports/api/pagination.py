"""Pagination for the JSON API: opaque keyset cursors and plain page numbers.

A cursor encodes the sort key of the last row of a page, so the next page is `WHERE key < last`
(an index range scan) and rows inserted meanwhile never shift or repeat a page, unlike OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
from django.core.paginator import EmptyPage, Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from config.errors import InvalidRequest

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(request: HttpRequest, default: int = DEFAULT_PAGE_SIZE) -> int:
    """?page_size, clamped to 1..500; a non-number is a 400."""
    raw = request.GET.get("page_size", "")
    if raw == "":
        return default
    try:
        return min(max(int(raw), 1), MAX_PAGE_SIZE)
    except ValueError as exc:
        raise InvalidRequest(
            "page_size must be a whole number.", code="invalid_page", details={"page_size": raw}
        ) from exc


def _encode(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, dt.datetime) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode().rstrip("=")


def _decode(cursor: str, kinds: list[type]) -> list[Any]:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("wrong shape")
        values: list[Any] = []
        for value, kind in zip(raw, kinds, strict=True):
            if kind is dt.datetime:
                values.append(dt.datetime.fromisoformat(value))
            elif kind is int:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError("not an int")
                values.append(value)
            else:
                values.append(str(value))
        return values
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidRequest(
            "The cursor is not valid: use the 'next' link of a previous page.", code="invalid_cursor"
        ) from exc


def _after(keys: list[tuple[str, bool]], values: list[Any]) -> Q:
    """Rows strictly after `values` in the (field, descending) order: a lexicographic comparison."""
    condition = Q()
    for i, (field, descending) in enumerate(keys):
        step = Q(**{f"{field}__{'lt' if descending else 'gt'}": values[i]})
        for earlier, (prev_field, _) in enumerate(keys[:i]):
            step &= Q(**{prev_field: values[earlier]})
        condition |= step
    return condition


def cursor_page(
    request: HttpRequest,
    queryset: QuerySet,
    *,
    keys: list[tuple[str, bool]],
    kinds: list[type],
    serialize: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """One page by keyset: {"results", "next" (URL or null), "page_size"}.

    `keys` is the total order as (field, descending) pairs ending with a unique field (the id).
    """
    size = page_size(request)
    ordered = queryset.order_by(*[f"-{field}" if desc else field for field, desc in keys])
    cursor = request.GET.get("cursor", "")
    if cursor:
        ordered = ordered.filter(_after(keys, _decode(cursor, kinds)))
    items = list(ordered[: size + 1])
    more = len(items) > size
    items = items[:size]
    next_url = None
    if more:
        last = items[-1]
        params = request.GET.copy()
        params["cursor"] = _encode([_attr(last, field) for field, _ in keys])
        next_url = request.build_absolute_uri(request.path) + "?" + urlencode(list(params.lists()), doseq=True)
    return {"results": [serialize(item) for item in items], "next": next_url, "page_size": size}


def _attr(obj: Any, field: str) -> Any:
    for part in field.split("__"):
        obj = getattr(obj, part)
    return obj


def number_page(request: HttpRequest, queryset: Any, serialize: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """One page by number: {"count", "page", "pages", "page_size", "results"}."""
    size = page_size(request)
    try:
        number = max(int(request.GET.get("page", 1)), 1)
    except ValueError as exc:
        raise InvalidRequest("page must be a whole number.", code="invalid_page") from exc
    paginator = Paginator(queryset, size)
    try:
        items = paginator.page(number).object_list
    except EmptyPage:
        items = []
    return {
        "count": paginator.count,
        "page": number,
        "pages": paginator.num_pages,
        "page_size": size,
        "results": [serialize(item) for item in items],
    }
