"""Every parser that sees a cell runs in linear time: 10,000-character adversarial cells through every
converter (with the options that change its code path), the suggestion step and the sheet readers' format
codes, each call well under a second. Before the number parser was a scanner, '1', 2,000 spaces and '!'
took about 8 s (cubic backtracking); the cells below are the shapes that make regexes backtrack."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from config.errors import ConversionError, MappingError
from formats.converters import CONVERTERS, build_cleaner
from formats.converters.dates import check_formats
from formats.converters.numbers import scan_number
from formats.converters.words import drop_trailing_numbers
from formats.suggest import suggest_mapping
from imports.sheets.cells import format_kind

N = 10_000
BUDGET_S = 0.5  # a linear pass over 10,000 characters takes milliseconds; the cubic one took hours

ADVERSARIAL: dict[str, str] = {
    "digit-spaces-bang": "1" + " " * (N - 2) + "!",
    "digit-dots": "1" + "." * (N - 2) + "x",
    "digit-space-pairs": "1 " * (N // 2) + "x",
    "digit-comma-pairs": "1," * (N // 2) + "x",
    "quotes": "1'" * (N // 2) + "!",
    "signs": "-" * N,
    "signs-digit": "- " * (N // 2) + "1x",
    "letters": "e" * N,
    "digit-e": "1e" * (N // 2),
    "currency-spaces": "$ " * (N // 2) + "1 !",
    "spaces-only": " " * N,
    "tabs-digits": "\t1" * (N // 2) + "!",
    "brackets": "[" * N,
    "parens": "(" * (N // 2) + ")" * (N // 2),
    "year-spaces": "2020" + " " * (N - 5) + "x",
    "month-dots": "Jan." * (N // 4),
    "side-words": "buy " * (N // 4),
    "pair": "BTC-" * (N // 4),
    "isin-like": "US0378331005" * (N // 12),
    "at-signs": "Buy 1 @ " * (N // 8),
    "side-numbers": "Koop " + "1 " * (N // 2),
    "colons": "Buy:" * (N // 4),
}

# Each converter with the option sets that take different code paths.
CONVERTER_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "text": [{}, {"upper": True}, {"drop_trailing_numbers": True}],
    "decimal": [{}, {"decimal_sep": ","}, {"thousands_sep": ""}, {"number": "last"}, {"split_on": " "}],
    "integer": [{}, {"number": "first"}],
    "datetime": [
        {},
        {"formats": ["%m/%d/%Y %H:%M:%S"]},
        {"formats": ["%d %b %Y", "%Y-%m-%d"]},
        {"formats": ["%Y" + " " * 40 + "%m %d"]},
        {"formats": ["epoch_ms"]},
    ],
    "date": [{"formats": ["%d.%m.%Y"]}],
    "side": [{}, {"map": {"K": "BUY", "V": "SELL"}}],
    "side_from_sign": [{}],
    "side_from_columns": [{}, {"first_is": "SELL", "decimal_sep": ","}],
    "map": [{"map": {"a": "b"}}],
    "currency": [{}],
    "constant": [{"value": "USD"}],
    "quotient": [{}],
    "trade_text": [{"take": "side"}, {"take": "quantity"}, {"take": "price", "decimal_sep": ","}, {"take": "currency"}],
    "pair": [{"take": "base"}, {"take": "quote"}],
    "unit": [{}],
    "exchange_currency": [{}],
    "isin": [{}],
}


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    try:
        call()
    except (ConversionError, MappingError):
        pass
    return time.perf_counter() - started


def test_every_converter_is_listed_here() -> None:
    assert set(CONVERTER_OPTIONS) == set(CONVERTERS)


@pytest.mark.parametrize("converter", sorted(CONVERTER_OPTIONS))
def test_every_converter_reads_adversarial_cells_in_linear_time(converter: str) -> None:
    slow = []
    for options in CONVERTER_OPTIONS[converter]:
        clean = build_cleaner(converter, options)
        for name, cell in ADVERSARIAL.items():
            cells = [cell, cell] if converter in ("quotient", "side_from_columns") else [cell]
            elapsed = _timed(lambda clean=clean, cells=cells: clean(cells))
            if elapsed > BUDGET_S:
                slow.append((options, name, round(elapsed, 2)))
    assert slow == []


def test_the_suggestion_step_reads_adversarial_cells_in_linear_time() -> None:
    columns = ["Date", "Symbol", "Side", "Quantity", "Price", "Currency", "Amount"]
    values = list(ADVERSARIAL.values())
    rows = [[values[(i + j) % len(values)] for j in range(len(columns))] for i in range(20)]
    elapsed = _timed(lambda: suggest_mapping(target="orders", columns=columns, sample_rows=rows))
    assert elapsed < 2 * BUDGET_S


def test_an_adversarial_header_is_suggested_in_linear_time() -> None:
    columns = [cell[:N] for cell in ADVERSARIAL.values()]
    rows = [["1"] * len(columns)]
    elapsed = _timed(lambda: suggest_mapping(target="orders", columns=columns, sample_rows=rows))
    assert elapsed < 2 * BUDGET_S


@pytest.mark.parametrize("code", ["[" * N, '"' + "[" * N, "[h" * (N // 2), "\\" * N, "[$-409" * (N // 6)])
def test_sheet_number_format_codes_are_classified_in_linear_time(code: str) -> None:
    assert _timed(lambda: format_kind(code)) < BUDGET_S


def test_a_date_format_longer_than_any_real_one_is_refused_with_a_message() -> None:
    with pytest.raises(MappingError, match="at most 64"):
        check_formats(["%Y" + " " * 80 + "%m"])


# The number grammar the scanner replaced, as a regex; equivalent on every short string, which is where
# regexes are still fast enough to compare against.
_OLD_NUMBER = re.compile(
    r"""\s*(?P<sign1>[-+−]?)\s*
    (?:(?P<pre>[^\W\d_]{1,5}\$?|[A-Z]{0,3}[$€£¥₹₽₩¢₺₪])\s*)?
    (?P<sign2>[-+−]?)\s*
    (?P<body>\d[\d.,'’\s]*\d|\d|[.,]\d+)
    (?:[eE](?P<exp>[-+]?\d{1,3}))?
    \s*(?P<sign3>-?)\s*
    (?:(?P<post>[^\W\d_]{1,5}|[$€£¥₹₽₩¢₺₪]))?\s*""",
    re.VERBOSE,
)


def test_the_number_scanner_reads_exactly_what_the_number_grammar_describes() -> None:
    alphabet = list("0123456789  .,'’-+−eEUSDkrč$€£_xK\t١")
    rng = random.Random(7)
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        match = _OLD_NUMBER.fullmatch(text)
        expected = None if match is None else {key: value or "" for key, value in match.groupdict().items()}
        assert scan_number(text) == expected, text


def test_trailing_numbers_are_dropped_exactly_as_before() -> None:
    old = re.compile(r"(?:\s+[-+]?\d[\d.,']*)+\s*$")
    rng = random.Random(11)
    alphabet = list("0123456789  \t.,'-+aB\xa0")
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert drop_trailing_numbers(text).strip() == old.sub("", text).strip(), text
    assert drop_trailing_numbers("ACME ETF 1000 12.5") == "ACME ETF"
    assert drop_trailing_numbers("1000") == "1000"
