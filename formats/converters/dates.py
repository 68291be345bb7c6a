"""Dates and times: strptime formats (with a fast regex path for numeric ones), ISO, epochs, timezones."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.errors import ConversionError, MappingError
from formats.converters.numbers import parse_decimal
from formats.converters.types import TextCleaner

SPECIAL_FORMATS = ("iso", "epoch_s", "epoch_ms")
# 'Jan. 28, 2022' (Bitstamp) and 'Sept. 5': month abbreviations with a dot, read by %b without it.
_MONTH_DOT = re.compile(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.", re.IGNORECASE)
_SEPT = re.compile(r"\bSept\b", re.IGNORECASE)
_SPACE_RUN = re.compile(r"\s+")
MAX_FORMAT_LENGTH = 64


def _parse_iso(text: str) -> datetime:
    """datetime.fromisoformat, also accepting a trailing ' UTC' (Coinbase: '2025-01-17 16:57:02 UTC')."""
    if text[-4:] in (" UTC", " GMT"):
        text = text[:-4] + "+00:00"
    return datetime.fromisoformat(text)


# Time-zone abbreviations exports append to their times ('03/15/2024 09:31:02 EDT', Webull, US brokers'
# order histories): the fixed offset each stands for. Ambiguous ones (IST, CST in China) are not listed.
ZONE_ABBREVIATIONS = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "BST": 1, "CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "EET": 2,
    "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AEST": 10, "AEDT": 11,
    "ACST": 9.5, "AWST": 8, "NZST": 12, "NZDT": 13,
}  # fmt: skip
_ZONES: dict[str, Any] = {name: timezone(timedelta(hours=hours), name) for name, hours in ZONE_ABBREVIATIONS.items()}
# Generic US zone names (moomoo: 'Mar 15 2024 09:31:02 ET'): the zone with its daylight saving time.
_ZONES.update(
    {
        name: ZoneInfo(zone)
        for name, zone in (
            ("ET", "America/New_York"),
            ("CT", "America/Chicago"),
            ("MT", "America/Denver"),
            ("PT", "America/Los_Angeles"),
        )
    }
)


def date_parser(fmt: str) -> Callable[[str], datetime]:
    """A function parsing text with one format (naive or aware datetime), raising ValueError. A value ending in
    a time-zone abbreviation (' EDT', ' CET') is parsed without it and carries that zone's offset."""
    parse = _format_parser(fmt)
    if fmt in SPECIAL_FORMATS or "%Z" in fmt or "%z" in fmt:
        return parse

    def parse_zoned(text: str) -> datetime:
        if text and "A" <= text[-1] <= "Z":
            head, _, zone = text.rpartition(" ")
            found = _ZONES.get(zone)
            if found is not None and head:
                return parse(head.rstrip()).replace(tzinfo=found)
        return parse(text)

    return parse_zoned


def _format_parser(fmt: str) -> Callable[[str], datetime]:
    if fmt == "iso":
        return _parse_iso
    if fmt == "epoch_s":
        return lambda text: datetime.fromtimestamp(float(parse_decimal(text)), tz=UTC)
    if fmt == "epoch_ms":
        return lambda text: datetime.fromtimestamp(float(parse_decimal(text)) / 1000, tz=UTC)
    fast = _fast_parser(fmt)
    if fast is not None:
        return fast
    if "%b" in fmt:
        fmt = fmt.replace("%b.", "%b")

        def parse_month(text: str) -> datetime:
            return datetime.strptime(_SEPT.sub("Sep", _MONTH_DOT.sub(r"\1", text)), fmt)

        return parse_month
    strptime = datetime.strptime
    return lambda text: strptime(text, fmt)


# Numeric-only formats (the vast majority) are parsed with one regex instead of strptime, ~4x faster.
_FAST_DIRECTIVES = {
    "%Y": ("year", r"(\d{4})"),
    "%m": ("month", r"(\d{1,2})"),
    "%d": ("day", r"(\d{1,2})"),
    "%H": ("hour", r"(\d{1,2})"),
    "%M": ("minute", r"(\d{1,2})"),
    "%S": ("second", r"(\d{1,2})"),
    "%f": ("microsecond", r"(\d{1,6})"),
}


def _fast_parser(fmt: str) -> Callable[[str], datetime] | None:
    """A regex parser equivalent to strptime for formats made of %Y %m %d %H %M %S %f; else None."""
    pattern, names = [], []
    for token in re.split(r"(%.)", fmt):
        if token.startswith("%"):
            if token not in _FAST_DIRECTIVES or _FAST_DIRECTIVES[token][0] in names:
                return None
            name, regex = _FAST_DIRECTIVES[token]
            names.append(name)
            pattern.append(regex)
        elif token:
            # A run of spaces matches any run of whitespace, as in strptime; one \s+ per run, never
            # adjacent \s+ (which backtrack polynomially on a long run of spaces).
            pieces = _SPACE_RUN.split(token)
            pattern.append(r"\s+".join(re.escape(part) for part in pieces))
    if not {"year", "month", "day"} <= set(names):
        return None
    matcher = re.compile("".join(pattern)).fullmatch
    fields = ("year", "month", "day", "hour", "minute", "second", "microsecond")
    order = [names.index(name) if name in names else None for name in fields]
    present = [index for index in order if index is not None]
    if "microsecond" not in names and order[: len(present)] == present and len(present) > 1:
        # Fast path: year, month, day[, hour, minute[, second]] with nothing missing in between.
        pick = operator.itemgetter(*present)

        def parse_simple(text: str) -> datetime:
            match = matcher(text)
            if match is None:
                raise ValueError(f"{text!r} does not match {fmt!r}")
            return datetime(*map(int, pick(match.groups())))

        return parse_simple

    def parse(text: str) -> datetime:
        match = matcher(text)
        if match is None:
            raise ValueError(f"{text!r} does not match {fmt!r}")
        groups = match.groups()
        parts = [0 if index is None else groups[index] for index in order]
        if order[6] is not None:
            parts[6] = parts[6].ljust(6, "0")  # '.62' is 620000 microseconds, as in strptime
        return datetime(*map(int, parts))

    return parse


# strftime directives in words, for the messages users read ('%m/%d/%Y' -> 'month/day/year').
_DIRECTIVE_WORDS = {
    "%Y": "year",
    "%y": "year",
    "%m": "month",
    "%d": "day",
    "%e": "day",
    "%H": "hour",
    "%I": "hour",
    "%M": "minute",
    "%S": "second",
    "%f": "fraction",
    "%b": "month name",
    "%B": "month name",
    "%a": "weekday",
    "%A": "weekday",
    "%p": "AM/PM",
    "%z": "offset",
    "%Z": "time zone",
    "%j": "day of year",
    "%%": "%",
}
_EXAMPLE = datetime(2023, 3, 14, 9, 30, 0, tzinfo=UTC)


def describe_date_format(fmt: str) -> str:
    """A date format in words with an example: '%m/%d/%Y' -> 'month/day/year like 03/14/2023'."""
    if fmt == "iso":
        return "a date like 2023-03-14 or 2023-03-14 09:30:00"
    if fmt == "epoch_s":
        return f"seconds since 1970 like {int(_EXAMPLE.timestamp())}"
    if fmt == "epoch_ms":
        return f"milliseconds since 1970 like {int(_EXAMPLE.timestamp()) * 1000}"
    words = "".join(_DIRECTIVE_WORDS.get(token, token) for token in re.split(r"(%.)", fmt) if token)
    try:
        example = _EXAMPLE.strftime(fmt.replace("%b.", "%b"))
    except ValueError:
        return words
    return f"{words} like {example}"


def datetime_builder(options: dict[str, Any], *, date_only: bool = False) -> TextCleaner:
    """Timezone-aware datetimes (in UTC) from the first format that parses the value."""
    formats = options.get("formats", ["iso"])
    zone = timezone_named(options.get("tz", "UTC"))
    parsers = [date_parser(fmt) for fmt in formats]
    shown = ", ".join(formats)
    expected = "; or ".join(describe_date_format(fmt) for fmt in formats)

    if len(parsers) == 1 and zone.key == "UTC" and not date_only:
        only = parsers[0]

        def convert_utc(text: str) -> datetime:
            try:
                value = only(text)
            except (ValueError, OverflowError, ConversionError, OSError):
                raise ConversionError(
                    f"'{text}' does not match the date format {shown}",
                    plain=f"'{text}' is not a valid date; expected {expected}",
                ) from None
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)

        return convert_utc

    def convert(text: str) -> datetime:
        for parse in parsers:
            try:
                value = parse(text)
            except (ValueError, OverflowError, ConversionError, OSError):
                continue
            break
        else:
            raise ConversionError(
                f"'{text}' does not match the date format(s) {shown}",
                plain=f"'{text}' is not a valid date; expected {expected}",
            )
        if date_only:
            value = value.replace(hour=0, minute=0, second=0, microsecond=0)
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)  # an explicit offset in the value wins over the tz option
        return value.astimezone(UTC)

    return convert


def check_formats(formats: Any) -> None:
    """Every format must be a special name or a strptime format that reads back what it writes."""
    if not isinstance(formats, list) or not formats:
        raise MappingError("Option 'formats' must be a non-empty list of date formats.")
    sample = datetime(2001, 2, 3, 4, 5, 6, 789000)
    for fmt in formats:
        if fmt in SPECIAL_FORMATS:
            continue
        if not isinstance(fmt, str) or "%" not in fmt:
            raise MappingError(
                f"Date format {fmt!r} is not a strptime format (like '%m/%d/%Y') "
                f"nor one of {', '.join(SPECIAL_FORMATS)}."
            )
        if len(fmt) > MAX_FORMAT_LENGTH:
            raise MappingError(
                f"Date format {fmt[:20]!r}... is {len(fmt)} characters long; "
                f"a date format has at most {MAX_FORMAT_LENGTH}.",
                details={"format": fmt[:MAX_FORMAT_LENGTH]},
            )
        try:
            # A format that cannot read back what it writes has a bad or unsupported directive.
            datetime.strptime(sample.strftime(fmt), fmt)
        except ValueError as exc:
            raise MappingError(f"Date format {fmt!r} is invalid: {exc}.", details={"format": fmt}) from None


def timezone_named(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; MappingError for unknown names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise MappingError(
            f"Unknown timezone {name!r}; use an IANA name such as 'Europe/Amsterdam'.", details={"tz": name}
        ) from None
