"""Converters: a closed registry of cleaning functions from CSV cells to typed values.

Admins pick a converter and its options per target field; nothing a user types is ever evaluated or used
as a regular expression. `compile_mapping` resolves a mapping's columns to cell indexes once and builds one
closure per field, so `CompiledMapping.apply` does the least possible work per row (it runs for every row
of every file).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.errors import ConversionError, MappingError

Cleaner = Callable[[list[str]], Any]
TextCleaner = Callable[[str], Any]

# Cells that mean "no value" in real exports (Schwab '--', eToro '-', Fidelity 'n/a').
PLACEHOLDERS = frozenset({"", "-", "--", "---", "n/a", "—", "–", "null", "#n/a"})


@dataclass(frozen=True)
class ConverterInfo:
    """What the admin UI shows about a converter: label, one-line help and option helps."""

    name: str
    label: str
    help: str
    options: dict[str, str]


COMMON_OPTIONS: dict[str, str] = {
    "default": "Value used when every source cell is empty or a placeholder (-, --, n/a).",
    "split_on": "Literal text to split the value on before converting (e.g. 'as of').",
    "part": "Which part to keep after split_on (0 = first, -1 = last); default 0.",
    "number": "'first' or 'last': keep only the first/last number in the text (e.g. 'BUY 34/42.5 @ 11.7').",
}

CONVERTERS: dict[str, ConverterInfo] = {
    info.name: info
    for info in (
        ConverterInfo(
            "text",
            "Text",
            "The text as is, trimmed.",
            {
                "upper": "Upper-case the text (true/false).",
                "drop_trailing_numbers": "Remove numbers at the end ('ACME ETF 1000' -> 'ACME ETF').",
            },
        ),
        ConverterInfo(
            "decimal",
            "Decimal number",
            "A number; thousands separators, currency signs/codes, (1.5) and 1.5- handled.",
            {
                "decimal_sep": "'.' or ','; detected per value when absent.",
                "thousands_sep": "'.', ',', ' ' or \"'\"; detected when absent; '' = none (a lone '.' "
                "or ',' is then the decimal point).",
                "abs": "Drop the sign (true/false).",
                "negate": "Flip the sign (true/false).",
                "scale": "Multiply by this factor, e.g. '0.01' for prices in pence.",
            },
        ),
        ConverterInfo(
            "integer",
            "Whole number",
            "A whole number (separators as for decimal).",
            {
                "decimal_sep": "'.' or ','; detected per value when absent.",
                "thousands_sep": "'.', ',', ' ' or \"'\"; detected when absent.",
                "abs": "Drop the sign (true/false).",
            },
        ),
        ConverterInfo(
            "datetime",
            "Date and time",
            "A timestamp; several columns (date + time) are joined with a space.",
            {
                "formats": "List of strptime formats (e.g. '%m/%d/%Y %H:%M:%S') or 'iso', 'epoch_s', "
                "'epoch_ms'; tried in order; default ['iso'].",
                "tz": "IANA timezone of values without an offset, e.g. 'Europe/Paris'; default UTC.",
            },
        ),
        ConverterInfo(
            "date",
            "Date",
            "A date, stored as midnight in the timezone.",
            {
                "formats": "List of strptime formats or 'iso', 'epoch_s', 'epoch_ms'; default iso.",
                "tz": "IANA timezone; default UTC.",
            },
        ),
        ConverterInfo(
            "side",
            "Buy / sell",
            "BUY or SELL from words such as buy, bought, sell, sold, koop, verkoop, köp, sälj...",
            {"map": "Extra values -> 'BUY' or 'SELL' (case-insensitive), e.g. {'Open': 'BUY'}."},
        ),
        ConverterInfo(
            "side_from_sign",
            "Buy / sell from the sign of a number",
            "BUY for positive numbers, SELL for negative ones (or the reverse).",
            {"negative_is": "'SELL' (default) or 'BUY'.", "decimal_sep": "'.' or ','; detected per value when absent."},
        ),
        ConverterInfo(
            "map",
            "Lookup table",
            "Replace each value by the one in the table (case-insensitive).",
            {"map": "Source value -> result, e.g. {'K': 'BUY', 'V': 'SELL'}."},
        ),
        ConverterInfo(
            "currency",
            "Currency",
            "A 3-letter code; symbols ($ € £ ¥) and amounts such as '€12.50' or '50 SEK' give one.",
            {"map": "Extra values -> ISO code, e.g. {'CAN': 'CAD'}."},
        ),
        ConverterInfo(
            "constant", "Constant", "The same value for every row (no columns).", {"value": "The value, e.g. 'USD'."}
        ),
        ConverterInfo(
            "quotient",
            "Ratio of two columns",
            "The first column divided by the second, e.g. price = net value / quantity.",
            {
                "decimal_sep": "'.' or ','; detected per value when absent.",
                "thousands_sep": "'.', ',', ' ' or \"'\"; detected when absent.",
                "abs": "Drop the sign (true/false).",
                "places": "Round to this many decimal places (default 10).",
            },
        ),
    )
}

# Option name -> (accepted Python types, description of the type for messages).
_OPTION_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "split_on": ((str,), "a text"),
    "part": ((int,), "a whole number"),
    "upper": ((bool,), "true or false"),
    "abs": ((bool,), "true or false"),
    "negate": ((bool,), "true or false"),
    "decimal_sep": ((str,), "'.' or ','"),
    "thousands_sep": ((str,), "a separator character"),
    "formats": ((list,), "a list of formats"),
    "tz": ((str,), "a timezone name"),
    "map": ((dict,), "an object of value -> result"),
    "negative_is": ((str,), "'BUY' or 'SELL'"),
    "number": ((str,), "'first' or 'last'"),
    "drop_trailing_numbers": ((bool,), "true or false"),
    "scale": ((str, int, float), "a number such as '0.01'"),
    "places": ((int,), "a whole number"),
}


def check_options(converter: str, options: dict[str, Any]) -> None:
    """Raise MappingError unless the converter exists and every option is known and well-formed."""
    if not isinstance(converter, str) or converter not in CONVERTERS:
        raise MappingError(
            f"Unknown converter {converter!r}. Converters: {', '.join(CONVERTERS)}.", details={"converter": converter}
        )
    if not isinstance(options, dict):
        kind = type(options).__name__
        raise MappingError(f"Options of converter '{converter}' must be an object, not {kind}.")
    allowed = CONVERTERS[converter].options
    for name, value in options.items():
        if name not in allowed and name not in COMMON_OPTIONS:
            known = ", ".join([*allowed, *COMMON_OPTIONS])
            raise MappingError(
                f"Unknown option '{name}' for converter '{converter}'. Options: {known}.",
                details={"converter": converter, "option": name},
            )
        if name in _OPTION_TYPES:
            types, described = _OPTION_TYPES[name]
            if not isinstance(value, types) or (int in types and isinstance(value, bool)):
                raise MappingError(
                    f"Option '{name}' of converter '{converter}' must be {described}, not {value!r}.",
                    details={"converter": converter, "option": name},
                )
    if "split_on" in options and not options["split_on"]:
        raise MappingError("Option 'split_on' must not be empty.")
    if "part" in options and "split_on" not in options:
        raise MappingError("Option 'part' only makes sense with 'split_on'.")
    _check_separators(options)
    if converter in ("date", "datetime"):
        _check_formats(options.get("formats", ["iso"]))
        _zone(options.get("tz", "UTC"))
    if converter == "side":
        _check_map(options.get("map", {}), allowed_results={"BUY", "SELL"})
    if converter == "map":
        if not options.get("map"):
            raise MappingError("Converter 'map' needs a non-empty 'map' option: {source value: result}.")
        _check_map(options["map"], allowed_results=None)
    if converter == "currency":
        _check_map(options.get("map", {}), allowed_results=None)
        for result in options.get("map", {}).values():
            if not (isinstance(result, str) and len(result) == 3 and result.isalpha()):
                raise MappingError(f"Currency map results must be 3-letter codes, not {result!r}.")
    if converter == "side_from_sign" and options.get("negative_is", "SELL").upper() not in ("BUY", "SELL"):
        raise MappingError(f"Option 'negative_is' must be 'BUY' or 'SELL', not {options['negative_is']!r}.")
    if converter == "constant" and "value" not in options:
        raise MappingError("Converter 'constant' needs a 'value' option.")


def _check_separators(options: dict[str, Any]) -> None:
    """Separators must be '.' or ',' (thousands also space or quote) and differ."""
    decimal_sep = options.get("decimal_sep")
    thousands_sep = options.get("thousands_sep")
    if decimal_sep is not None and decimal_sep not in (".", ","):
        raise MappingError(f"Option 'decimal_sep' must be '.' or ',', not {decimal_sep!r}.")
    if thousands_sep is not None and thousands_sep not in (".", ",", " ", "'", "’", ""):
        message = f"Option 'thousands_sep' must be '.', ',', a space or a quote, not {thousands_sep!r}."
        raise MappingError(message, details={"option": "thousands_sep"})
    if decimal_sep is not None and decimal_sep == thousands_sep:
        raise MappingError("Options 'decimal_sep' and 'thousands_sep' must differ.")


def _check_map(mapping: dict[str, Any], *, allowed_results: set[str] | None) -> None:
    """Map entries must be text -> text, with results among allowed_results when given."""
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise MappingError(f"Map entries must be text -> text, not {key!r} -> {value!r}.")
        if allowed_results is not None and value.upper() not in allowed_results:
            raise MappingError(
                f"Map value for {key!r} must be one of {', '.join(sorted(allowed_results))}, not {value!r}."
            )


def _check_formats(formats: Any) -> None:
    """Every format must be a special name or a strptime format that reads back what it writes."""
    if not isinstance(formats, list) or not formats:
        raise MappingError("Option 'formats' must be a non-empty list of date formats.")
    sample = datetime(2001, 2, 3, 4, 5, 6, 789000)
    for fmt in formats:
        if fmt in _SPECIAL_FORMATS:
            continue
        if not isinstance(fmt, str) or "%" not in fmt:
            raise MappingError(
                f"Date format {fmt!r} is not a strptime format (like '%m/%d/%Y') "
                f"nor one of {', '.join(_SPECIAL_FORMATS)}."
            )
        try:
            # A format that cannot read back what it writes has a bad or unsupported directive.
            datetime.strptime(sample.strftime(fmt), fmt)
        except ValueError as exc:
            raise MappingError(f"Date format {fmt!r} is invalid: {exc}.", details={"format": fmt}) from None


def _zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; MappingError for unknown names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise MappingError(
            f"Unknown timezone {name!r}; use an IANA name such as 'Europe/Amsterdam'.", details={"tz": name}
        ) from None


def build_cleaner(converter: str, options: dict[str, Any]) -> Cleaner:
    """Validate the options and return a function from the source cells to the clean value."""
    clean_text = build_text_cleaner(converter, options)
    if converter == "constant":
        return lambda cells: clean_text("")
    if converter == "quotient":
        return lambda cells: clean_text(QUOTIENT_JOINER.join(cells))  # as compile_mapping joins them
    return lambda cells: clean_text(join_cells(cells))


def join_cells(cells: list[str]) -> str:
    """The non-empty, non-placeholder cells joined by a space (date column + time column)."""
    if len(cells) == 1:
        return cells[0]
    parts = [cell.strip() for cell in cells]
    return " ".join(part for part in parts if part.casefold() not in PLACEHOLDERS)


def build_text_cleaner(converter: str, options: dict[str, Any]) -> TextCleaner:
    """Like build_cleaner but taking the (joined) source text: the form apply() calls per cell."""
    check_options(converter, options)
    if converter == "constant":
        value = options["value"]
        return lambda text: value
    convert = _BUILDERS[converter](options)
    number = options.get("number")
    if number is not None:
        if number not in ("first", "last"):
            raise MappingError(f"Option 'number' must be 'first' or 'last', not {number!r}.")
        convert = _number_taker(convert, number)
    default = _clean_default(converter, convert, options)
    split_on = options.get("split_on")
    part = options.get("part", 0)
    placeholders = PLACEHOLDERS

    if split_on is None:

        def clean(text: str) -> Any:
            text = text.strip()
            if text.casefold() in placeholders:
                return default
            return convert(text)

        return clean

    def clean_split(text: str) -> Any:
        pieces = text.split(split_on)
        try:
            text = pieces[part].strip()
        except IndexError:
            raise ConversionError(f"'{text.strip()}' has no part {part} when split on '{split_on}'") from None
        if text.casefold() in placeholders:
            return default
        return convert(text)

    return clean_split


_NUMBER_TOKEN = re.compile(r"[-+−]?\d[\d.,']*\d|[-+−]?\d")


def _number_taker(convert: TextCleaner, which: str) -> TextCleaner:
    """Keep only the first or last number of a free-text value before converting it."""

    def take(text: str) -> Any:
        found = _NUMBER_TOKEN.findall(text)
        if not found:
            raise ConversionError(f"no number in '{text}'")
        return convert(found[0] if which == "first" else found[-1])

    return take


def _clean_default(converter: str, convert: TextCleaner, options: dict[str, Any]) -> Any:
    """The default converted like a cell ('0' -> Decimal('0')), so every row gets the same type."""
    default = options.get("default")
    if default is None or isinstance(default, bool) or not isinstance(default, str | int | float):
        if default is not None:
            raise MappingError(f"Option 'default' of converter '{converter}' must be a text or a number.")
        return None
    try:
        return convert(str(default).strip())
    except ConversionError as exc:
        raise MappingError(
            f"Option 'default' {default!r} is not valid for converter '{converter}': {exc}.",
            details={"converter": converter, "option": "default"},
        ) from None


# --- decimal -------------------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_PLAIN_INTEGER = re.compile(r"[+-]?\d+")
# sign, currency prefix (symbol or 1-5 letters such as EUR, US$, kr), sign, digits with separators,
# exponent, trailing sign, currency suffix. Letters are matched with [^\W\d_] so 'Kč' counts too.
_NUMBER = re.compile(
    r"""\s*(?P<sign1>[-+−]?)\s*
    (?:(?P<pre>[^\W\d_]{1,5}\$?|[A-Z]{0,3}[$€£¥₹₽₩¢₺₪])\s*)?
    (?P<sign2>[-+−]?)\s*
    (?P<body>\d[\d.,'’\s]*\d|\d|[.,]\d+)
    (?:[eE](?P<exp>[-+]?\d{1,3}))?
    \s*(?P<sign3>-?)\s*
    (?:(?P<post>[^\W\d_]{1,5}|[$€£¥₹₽₩¢₺₪]))?\s*""",
    re.VERBOSE,
)
_SPACES = re.compile(r"[\s'’]")
_DIGITS_ONLY = re.compile(r"\d*\.?\d*")


def parse_decimal(text: str, decimal_sep: str | None = None, thousands_sep: str | None = None) -> Decimal:
    """Parse one number as written in broker exports; ConversionError if it is not one."""
    if decimal_sep != "," and thousands_sep != "." and _PLAIN_NUMBER.fullmatch(text):
        return Decimal(text)
    value = text.strip()
    negative = False
    if value.startswith("(") and value.endswith(")"):
        negative, value = True, value[1:-1]
    match = _NUMBER.fullmatch(value)
    if match is None:
        raise ConversionError(f"'{text.strip()}' is not a number")
    for unit in (match["pre"], match["post"]):
        if unit and not _is_currency_unit(unit):
            # '12x' or 'T-1' is a typo or an id, not a number with a currency code: never guess.
            raise ConversionError(f"'{text.strip()}' is not a number")
    signs = match["sign1"] + match["sign2"] + match["sign3"]
    if signs.count("-") + signs.count("−") + signs.count("+") > 1:
        raise ConversionError(f"'{text.strip()}' is not a number (several signs)")
    if "-" in signs or "−" in signs:
        negative = not negative
    body = _normalise_separators(match["body"], decimal_sep, thousands_sep, text)
    exponent = f"e{match['exp']}" if match["exp"] else ""
    try:
        number = Decimal(body + exponent)
    except InvalidOperation:
        raise ConversionError(f"'{text.strip()}' is not a number") from None
    return -number if negative else number


# Lower-case units that brokers write after amounts (Scandinavian/Czech/Polish/Hungarian currencies).
_LOWER_UNITS = {"kr", "kč", "zł", "ft", "lei", "sek", "nok", "dkk", "eur", "usd", "gbp", "chf"}


def _is_currency_unit(unit: str) -> bool:
    """A currency symbol, an upper-case code of 2-5 letters (EUR, ETH, USDT, US$) or a known lower-case unit."""
    letters = unit.rstrip("$")
    if not letters or not letters.isalpha():
        return True  # a symbol such as $ € £
    return (2 <= len(letters) <= 5 and letters.isupper()) or letters.casefold() in _LOWER_UNITS


def _normalise_separators(body: str, decimal_sep: str | None, thousands_sep: str | None, text: str) -> str:
    """Digits with at most one '.' as decimal point, from a body such as '1.234,56' or "1'234.5"."""
    if thousands_sep is not None and thousands_sep not in (".", ","):
        body = body.replace(thousands_sep, "") if thousands_sep else body
    body = _SPACES.sub("", body)
    if thousands_sep == "":
        # No thousands grouping in the file: a value's one '.' or ',' is its decimal point, so a column that
        # mixes '10,799' and '86.714375' (Trade Republic exports merged from two locales) reads both right.
        marks = [char for char in body if char in ".,"]
        if len(marks) > 1 or (marks and decimal_sep is not None and marks[0] != decimal_sep):
            raise ConversionError(
                f"'{text.strip()}' is not a number (unexpected separators: thousands_sep '' means none)"
            )
        decimal_sep = marks[0] if marks else "."
    if decimal_sep is None and thousands_sep in (".", ","):
        decimal_sep = "," if thousands_sep == "." else "."
    if decimal_sep is None:
        decimal_sep = _guess_decimal_sep(body)
    thousands = "," if decimal_sep == "." else "."
    _check_grouping(body, thousands, text)
    if decimal_sep == ",":
        body = body.replace(thousands, "").replace(",", ".")
    else:
        body = body.replace(thousands, "")
    if body.count(".") > 1 or not _DIGITS_ONLY.fullmatch(body):
        raise ConversionError(f"'{text.strip()}' is not a number (unexpected separators)")
    return body


def _check_grouping(body: str, thousands: str, text: str) -> None:
    """Thousands groups after the first must have 3 digits: '1,234,567' yes, '12,5' read with '.' no."""
    integer = body.split("," if thousands == "." else ".")[0]
    groups = integer.split(thousands)
    if len(groups) > 1 and (not 1 <= len(groups[0]) <= 3 or any(len(group) != 3 for group in groups[1:])):
        raise ConversionError(f"'{text.strip()}' is not a number (misplaced thousands separator)")


def _guess_decimal_sep(body: str) -> str:
    """'.' or ',': the last of both when both appear; a lone ',' + 3 digits is read as thousands."""
    dot, comma = body.rfind("."), body.rfind(",")
    if dot >= 0 and comma >= 0:
        return "." if dot > comma else ","
    if comma >= 0:
        if body.count(",") > 1:
            return "."  # 1,234,567
        integer, _, fraction = body.partition(",")
        if len(fraction) == 3 and integer not in ("", "0"):
            return "."  # 1,234 is ambiguous: thousands unless decimal_sep ',' is set
        return ","
    if body.count(".") > 1:
        return ","  # 1.234.567
    return "."


def _decimal_builder(options: dict[str, Any]) -> TextCleaner:
    """Decimal numbers; a bare number skips the separator analysis."""
    decimal_sep = options.get("decimal_sep")
    thousands_sep = options.get("thousands_sep")
    absolute = options.get("abs", False)
    negate = options.get("negate", False)
    scale = _scale_option(options.get("scale"))
    if decimal_sep == "," or thousands_sep == ".":
        plain = _PLAIN_INTEGER  # '1.234' means 1234 here, so only bare integers take the fast path
        decimal_sep = decimal_sep or ","
    else:
        plain = _PLAIN_NUMBER

    def convert(text: str) -> Decimal:
        if plain.fullmatch(text):
            number = Decimal(text)
        else:
            number = parse_decimal(text, decimal_sep, thousands_sep)
        if scale is not None:
            number *= scale
        if absolute:
            return abs(number)
        return -number if negate else number

    return convert


def _integer_builder(options: dict[str, Any]) -> TextCleaner:
    """Whole numbers, read like decimals and refused when they have a fraction."""
    wanted = ("decimal_sep", "thousands_sep", "abs")
    parse = _decimal_builder({key: options[key] for key in wanted if key in options})

    def convert(text: str) -> int:
        number = parse(text)
        if number != number.to_integral_value():
            raise ConversionError(f"'{text}' is not a whole number")
        return int(number)

    return convert


# --- dates ---------------------------------------------------------------------------------------------

_SPECIAL_FORMATS = ("iso", "epoch_s", "epoch_ms")
# 'Jan. 28, 2022' (Bitstamp) and 'Sept. 5': month abbreviations with a dot, read by %b without it.
_MONTH_DOT = re.compile(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.", re.IGNORECASE)
_SEPT = re.compile(r"\bSept\b", re.IGNORECASE)


def _parse_iso(text: str) -> datetime:
    """datetime.fromisoformat, also accepting a trailing ' UTC' (Coinbase: '2025-01-17 16:57:02 UTC')."""
    if text[-4:] in (" UTC", " GMT"):
        text = text[:-4] + "+00:00"
    return datetime.fromisoformat(text)


def date_parser(fmt: str) -> Callable[[str], datetime]:
    """A function parsing text with one format (naive or aware datetime), raising ValueError."""
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
            pattern.append(r"\s+".join(re.escape(part) for part in token.split(" ")))
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


def _datetime_builder(options: dict[str, Any], *, date_only: bool = False) -> TextCleaner:
    """Timezone-aware datetimes (in UTC) from the first format that parses the value."""
    formats = options.get("formats", ["iso"])
    zone = _zone(options.get("tz", "UTC"))
    parsers = [date_parser(fmt) for fmt in formats]
    shown = ", ".join(formats)

    if len(parsers) == 1 and zone.key == "UTC" and not date_only:
        only = parsers[0]

        def convert_utc(text: str) -> datetime:
            try:
                value = only(text)
            except (ValueError, OverflowError, ConversionError, OSError):
                raise ConversionError(f"'{text}' does not match the date format {shown}") from None
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
            raise ConversionError(f"'{text}' does not match the date format(s) {shown}")
        if date_only:
            value = value.replace(hour=0, minute=0, second=0, microsecond=0)
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)  # an explicit offset in the value wins over the tz option
        return value.astimezone(UTC)

    return convert


# --- side, map, currency -------------------------------------------------------------------------------

BUY_WORDS = frozenset(
    {
        "buy",
        "bought",
        "bot",
        "b",
        "purchase",
        "purchased",
        "buy to open",
        "buy to close",
        "koop",
        "kopen",
        "gekocht",
        "aankoop",
        "köp",
        "köpt",
        "kop",
        "kauf",
        "kaufen",
        "gekauft",
        "achat",
        "acheter",
        "compra",
        "comprar",
        "acquisto",
        "nákup",
        "nakup",
        "koupit",
        "zakup",
        "kjøp",
        "osto",
    }
)
SELL_WORDS = frozenset(
    {
        "sell",
        "sold",
        "sld",
        "s",
        "sale",
        "sell to open",
        "sell to close",
        "verkoop",
        "verkopen",
        "verkocht",
        "sälj",
        "sålt",
        "salj",
        "försäljning",
        "verkauf",
        "verkaufen",
        "verkauft",
        "vente",
        "vendre",
        "venta",
        "vender",
        "venda",
        "vende",
        "vendita",
        "prodej",
        "prodat",
        "sprzedaż",
        "salg",
        "myynti",
    }
)
# Words recognised inside longer values ('Market buy', 'BUY - MARKET', 'YOU BOUGHT ...', 'Stocks/ETF sale').
_BUY_TOKENS = frozenset(word for word in BUY_WORDS if len(word) > 2 and " " not in word)
_SELL_TOKENS = frozenset(word for word in SELL_WORDS if len(word) > 2 and " " not in word)
# A value naming one of these is no trade even if it contains a side word ('TAXE DE VENTE DU QUÉBEC').
NON_TRADE_WORDS = frozenset(
    {
        "tax",
        "taxe",
        "taxes",
        "fee",
        "fees",
        "frais",
        "dividend",
        "dividende",
        "dividends",
        "interest",
        "intérêt",
        "interet",
        "deposit",
        "withdrawal",
        "transfer",
        "split",
        "steuer",
        "belasting",
        "skatt",
        "gebühr",
        "poplatek",
        "daň",
        "kosten",
        "courtage",
    }
)
_WORD = re.compile(r"[^\W\d_]+")


def side_of(text: str) -> str | None:
    """'BUY', 'SELL' or None for a value such as 'Bought', 'Market sell', 'Köp', 'VENTE'."""
    value = text.strip().casefold()
    if value in BUY_WORDS:
        return "BUY"
    if value in SELL_WORDS:
        return "SELL"
    words = set(_WORD.findall(value))
    if words & NON_TRADE_WORDS:
        return None
    buy, sell = bool(words & _BUY_TOKENS), bool(words & _SELL_TOKENS)
    if buy != sell:
        return "BUY" if buy else "SELL"
    return None


def _side_builder(options: dict[str, Any]) -> TextCleaner:
    """BUY or SELL from the admin's map, then the built-in words."""
    extra = {key.strip().casefold(): value.upper() for key, value in options.get("map", {}).items()}
    cache: dict[str, str] = {}

    def convert(text: str) -> str:
        side = cache.get(text)
        if side is not None:
            return side
        side = extra.get(text.casefold()) or side_of(text)
        if side is None:
            raise ConversionError(f"'{text}' is not a buy or a sell (add it to the side map)")
        if len(cache) < 1000:
            cache[text] = side
        return side

    return convert


def _side_from_sign_builder(options: dict[str, Any]) -> TextCleaner:
    """BUY or SELL from the sign of a number."""
    negative = options.get("negative_is", "SELL").upper()
    positive = "BUY" if negative == "SELL" else "SELL"
    parse = _decimal_builder({"decimal_sep": options["decimal_sep"]} if "decimal_sep" in options else {})

    def convert(text: str) -> str:
        number = parse(text)
        if number == 0:
            raise ConversionError(f"'{text}' is zero: cannot tell buy from sell")
        return negative if number < 0 else positive

    return convert


QUOTIENT_JOINER = "\x1f"  # the two cells reach the quotient cleaner joined by a unit separator


def _quotient_builder(options: dict[str, Any]) -> TextCleaner:
    """The first number divided by the second (cells joined by QUOTIENT_JOINER)."""
    parse = _decimal_builder({k: options[k] for k in ("decimal_sep", "thousands_sep") if k in options})
    places = Decimal(1).scaleb(-options.get("places", 10))
    absolute = options.get("abs", False)

    def convert(text: str) -> Decimal:
        parts = text.split(QUOTIENT_JOINER)
        if len(parts) != 2 or not all(part.strip() for part in parts):
            raise ConversionError("needs two numbers (a numerator and a denominator column)")
        numerator, denominator = parse(parts[0].strip()), parse(parts[1].strip())
        if denominator == 0:
            raise ConversionError(f"cannot divide {numerator} by zero")
        result = (numerator / denominator).quantize(places)
        return abs(result) if absolute else result

    return convert


def _map_builder(options: dict[str, Any]) -> TextCleaner:
    """A case-insensitive lookup table."""
    table = {key.strip().casefold(): value for key, value in options["map"].items()}
    known = ", ".join(sorted(options["map"]))

    def convert(text: str) -> str:
        try:
            return table[text.casefold()]
        except KeyError:
            raise ConversionError(f"'{text}' is not in the map ({known})") from None

    return convert


CURRENCY_SYMBOLS = {
    "$": "USD",
    "US$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "C$": "CAD",
    "CA$": "CAD",
    "A$": "AUD",
    "AU$": "AUD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "S$": "SGD",
    "₩": "KRW",
    "₺": "TRY",
    "₪": "ILS",
    "₽": "RUB",
    "KČ": "CZK",
    "ZŁ": "PLN",
    # Non-ISO names seen in exports: Desjardins writes CAN for Canadian dollars, some Chinese exports RMB.
    "CAN": "CAD",
    "RMB": "CNY",
}


def _currency_builder(options: dict[str, Any]) -> TextCleaner:
    """3-letter currency codes from codes, symbols or amounts."""
    extra = {key.strip().upper(): value.upper() for key, value in options.get("map", {}).items()}

    def convert(text: str) -> str:
        value = text.upper()
        code = extra.get(value) or CURRENCY_SYMBOLS.get(value) or value
        if len(code) != 3 or not code.isalpha() or not code.isascii():
            code = currency_in_amount(value)
        if code is None:
            raise ConversionError(f"'{text}' is not a 3-letter currency code")
        return code

    return convert


_SYMBOLS_LONGEST_FIRST = sorted((key for key in CURRENCY_SYMBOLS if not key.isalpha()), key=len, reverse=True)
_CODE_IN_AMOUNT = re.compile(r"^([A-Z]{3})\s*[-+(]?[\d.,]|[\d.,]\)?\s*([A-Z]{3})$")


def currency_in_amount(text: str) -> str | None:
    """The currency an amount is written in: '€35,761.54' -> EUR, '50.00 SEK' -> SEK, else None."""
    value = text.strip().upper()
    if not any(char.isdigit() for char in value):
        return None
    for symbol in _SYMBOLS_LONGEST_FIRST:
        if symbol in value:
            return CURRENCY_SYMBOLS[symbol]
    match = _CODE_IN_AMOUNT.search(value)
    return (match.group(1) or match.group(2)) if match else None


_TRAILING_NUMBERS = re.compile(r"(?:\s+[-+]?\d[\d.,']*)+\s*$")


def _scale_option(value: Any) -> Decimal | None:
    """The decimal converter's 'scale' factor, validated once."""
    if value is None:
        return None
    try:
        factor = Decimal(str(value))
    except ArithmeticError:
        raise MappingError(f"Option 'scale' must be a number such as '0.01', not {value!r}.") from None
    if not factor.is_finite() or factor == 0:
        raise MappingError(f"Option 'scale' must be a non-zero number, not {value!r}.")
    return factor


def _text_builder(options: dict[str, Any]) -> TextCleaner:
    """Trimmed text, optionally upper-cased and without trailing numbers."""
    upper = options.get("upper", False)
    if options.get("drop_trailing_numbers", False):

        def text(value: str) -> str:
            value = _TRAILING_NUMBERS.sub("", value).strip()
            return value.upper() if upper else value

        return text
    if upper:
        return str.upper
    return str


_BUILDERS: dict[str, Callable[[dict[str, Any]], TextCleaner]] = {
    "text": _text_builder,
    "decimal": _decimal_builder,
    "integer": _integer_builder,
    "datetime": _datetime_builder,
    "date": lambda options: _datetime_builder(options, date_only=True),
    "side": _side_builder,
    "side_from_sign": _side_from_sign_builder,
    "map": _map_builder,
    "quotient": _quotient_builder,
    "currency": _currency_builder,
}


# --- compiled mappings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldPlan:
    """One field of a compiled mapping: source cell indexes and the cleaner."""

    name: str
    indexes: tuple[int, ...]
    clean: TextCleaner
    joiner: str | None = None  # None: join_cells (date + time); else a literal separator


class CompiledMapping:
    """A mapping's fields resolved against a file's columns: `apply(cells)` converts one row."""

    def __init__(self, plans: list[_FieldPlan], width: int):
        self.plans = plans
        self.width = width
        self.fields = [plan.name for plan in plans]
        self._single = [(plan.name, plan.indexes[0], plan.clean) for plan in plans if len(plan.indexes) == 1]
        self._multi = [(plan.name, plan.indexes, plan.clean, plan.joiner) for plan in plans if len(plan.indexes) != 1]

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
                errors.append({"field": name, "value": cells[index], "message": str(exc)})
        for name, indexes, clean, joiner in self._multi:
            parts = [cells[index] for index in indexes]
            text = (joiner.join(parts) if joiner else join_cells(parts)) if indexes else ""
            try:
                values[name] = clean(text)
            except ConversionError as exc:
                values[name] = None
                raw = " ".join(cells[index] for index in indexes)
                errors.append({"field": name, "value": raw, "message": str(exc)})
        return values, errors


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
        if converter == "quotient" and len(source) != 2:
            raise MappingError(
                f"Field '{name}': the quotient converter needs exactly two columns (numerator, denominator).",
                details={"field": name},
            )
        joiner = QUOTIENT_JOINER if converter == "quotient" else None
        plans.append(_FieldPlan(name, tuple(positions[column] for column in source), clean, joiner))
    return CompiledMapping(plans, len(columns))
