"""The converter registry: what each converter is called and accepts, option checks, and cleaner builders."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.errors import ConversionError, MappingError
from formats.converters.dates import check_formats, datetime_builder, timezone_named
from formats.converters.derive import (
    TRADE_TEXT_PARTS,
    exchange_currency_builder,
    isin_builder,
    pair_builder,
    trade_text_builder,
    unit_builder,
)
from formats.converters.numbers import QUOTIENT_JOINER, decimal_builder, integer_builder, quotient_builder
from formats.converters.types import PLACEHOLDERS, Cleaner, TextCleaner
from formats.converters.words import (
    currency_builder,
    map_builder,
    side_builder,
    side_from_columns_builder,
    side_from_sign_builder,
    text_builder,
)


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
            "side_from_columns",
            "Buy / sell from which of two money columns is filled",
            "Two columns, money out then money in ('Debit', 'Credit'): a row with an amount in the first is "
            "a BUY, in the second a SELL (or the reverse).",
            {"first_is": "'BUY' (default) or 'SELL'.", "decimal_sep": "'.' or ','; detected per value when absent."},
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
            "trade_text",
            "From an order description",
            "One part of a text such as 'Koop 1 @ 33,9 USD' or 'OPEN BUY 34 @ 11.75': the first buy/sell word, "
            "the first number after it (quantity), the number after '@' (price) and the code next to it.",
            {
                "take": "'side', 'quantity', 'price', 'currency' or 'name' (the security, upper-cased).",
                "decimal_sep": "'.' or ','; detected per value when absent.",
            },
        ),
        ConverterInfo(
            "pair",
            "From a trading pair",
            "The base or the quote of a pair such as 'BTC-USDT', 'ETH/EUR', 'ETHUSD' or 'BINANCE:BTCUSDT'.",
            {"take": "'base' (the asset) or 'quote' (the currency)."},
        ),
        ConverterInfo(
            "unit",
            "Unit of an amount",
            "The code written with a number: '2.00000000 ETH' -> ETH, '€35.20' -> EUR.",
            {},
        ),
        ConverterInfo(
            "exchange_currency",
            "Currency of the ticker's exchange",
            "The currency a ticker trades in, from its exchange suffix ('SPYL.DE' -> EUR, 'VOD.L' -> GBP) or a "
            "pair's quote ('BTC-EUR' -> EUR).",
            {},
        ),
        ConverterInfo(
            "isin",
            "ISIN inside the text",
            "The ISIN in a cell such as 'APPLE INC / US0378331005' (checked by its check digit); else the text.",
            {},
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

# Converters reading exactly two columns, in order (numerator / denominator; money out / money in).
TWO_COLUMN_CONVERTERS = ("quotient", "side_from_columns")

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
    "first_is": ((str,), "'BUY' or 'SELL'"),
    "number": ((str,), "'first' or 'last'"),
    "drop_trailing_numbers": ((bool,), "true or false"),
    "scale": ((str, int, float), "a number such as '0.01'"),
    "places": ((int,), "a whole number"),
    "take": ((str,), "a text"),
    "value": ((str, int, float), "a text or a number"),
    "default": ((str, int, float), "a text or a number"),
}
_TAKES = {"trade_text": TRADE_TEXT_PARTS, "pair": ("base", "quote")}


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
        check_formats(options.get("formats", ["iso"]))
        timezone_named(options.get("tz", "UTC"))
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
    if converter == "side_from_columns" and str(options.get("first_is", "BUY")).upper() not in ("BUY", "SELL"):
        raise MappingError(f"Option 'first_is' must be 'BUY' or 'SELL', not {options['first_is']!r}.")
    if converter in _TAKES and options.get("take") not in _TAKES[converter]:
        raise MappingError(
            f"Converter '{converter}' needs option 'take': one of {', '.join(_TAKES[converter])}.",
            details={"converter": converter, "option": "take"},
        )
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


def build_cleaner(converter: str, options: dict[str, Any]) -> Cleaner:
    """Validate the options and return a function from the source cells to the clean value."""
    clean_text = build_text_cleaner(converter, options)
    if converter == "constant":
        return lambda cells: clean_text("")
    if converter in TWO_COLUMN_CONVERTERS:
        return lambda cells: clean_text(join_pair(cells))  # as compile_mapping joins them
    return lambda cells: clean_text(join_cells(cells))


def join_pair(cells: list[str]) -> str:
    """The two cells of a two-column converter joined by QUOTIENT_JOINER, an empty one written '-' (so that
    stripping the joined text cannot lose which of the two was empty)."""
    return QUOTIENT_JOINER.join(cell.strip() or "-" for cell in cells)


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


_BUILDERS: dict[str, Callable[[dict[str, Any]], TextCleaner]] = {
    "text": text_builder,
    "decimal": decimal_builder,
    "integer": integer_builder,
    "datetime": datetime_builder,
    "date": lambda options: datetime_builder(options, date_only=True),
    "side": side_builder,
    "side_from_sign": side_from_sign_builder,
    "side_from_columns": side_from_columns_builder,
    "map": map_builder,
    "quotient": quotient_builder,
    "currency": currency_builder,
    "trade_text": trade_text_builder,
    "pair": pair_builder,
    "unit": unit_builder,
    "exchange_currency": exchange_currency_builder,
    "isin": isin_builder,
}
