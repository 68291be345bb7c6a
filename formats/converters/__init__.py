"""Converters: a closed registry of cleaning functions from CSV cells to typed values.

Admins pick a converter and its options per target field; nothing a user types is ever evaluated or used
as a regular expression. `compile_mapping` resolves a mapping's columns to cell indexes once and builds one
closure per field, so `CompiledMapping.apply` does the least possible work per row (it runs for every row
of every file).

Modules: `registry` (converter names, options and their checks, cleaner builders), `numbers`, `dates`,
`words` (side, map, currency, text), `compiled` (mappings applied row by row), `types`.
"""

from formats.converters.compiled import CompiledMapping, compile_mapping
from formats.converters.dates import date_parser
from formats.converters.numbers import QUOTIENT_JOINER, parse_decimal, plain_decimal
from formats.converters.registry import (
    COMMON_OPTIONS,
    CONVERTERS,
    ConverterInfo,
    build_cleaner,
    build_text_cleaner,
    check_options,
    join_cells,
)
from formats.converters.types import PLACEHOLDERS, Cleaner, TextCleaner
from formats.converters.words import (
    BUY_WORDS,
    CURRENCY_SYMBOLS,
    NON_TRADE_WORDS,
    SELL_WORDS,
    currency_in_amount,
    side_of,
)

__all__ = [
    "BUY_WORDS",
    "COMMON_OPTIONS",
    "CONVERTERS",
    "CURRENCY_SYMBOLS",
    "NON_TRADE_WORDS",
    "PLACEHOLDERS",
    "QUOTIENT_JOINER",
    "SELL_WORDS",
    "Cleaner",
    "CompiledMapping",
    "ConverterInfo",
    "TextCleaner",
    "build_cleaner",
    "build_text_cleaner",
    "check_options",
    "compile_mapping",
    "currency_in_amount",
    "date_parser",
    "join_cells",
    "parse_decimal",
    "plain_decimal",
    "side_of",
]
