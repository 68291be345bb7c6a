"""Numbers as brokers write them: separators, currency marks, signs; the decimal, integer and quotient converters."""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from config.errors import ConversionError, MappingError
from formats.converters.currencies import CRYPTO_3, ISO_4217
from formats.converters.types import PLACEHOLDERS, TextCleaner

_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_PLAIN_INTEGER = re.compile(r"[+-]?\d+")
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
    match = scan_number(value)
    if match is None:
        raise ConversionError(f"'{text.strip()}' is not a number")
    for unit in (match["pre"], match["post"]):
        if unit and not _is_currency_unit(unit):
            # '12x' or 'T-1' is a typo or an id, not a number with a currency code: never guess.
            raise ConversionError(f"'{text.strip()}' is not a number")
    if _ticker_like(value, match["pre"]):
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


def plain_decimal(value: Decimal | int | str) -> str:
    """A number as people write it: plain notation, no trailing zeros ('3E+2' -> '300', '2.4500' -> '2.45',
    '0E-8' -> '0'). The one rendering of decimals in the API, the exports and the dedupe keys."""
    number = Decimal(value)
    if number.is_zero():
        return "0"  # never '-0' or '0E-8'
    # normalize() in a context as precise as the number itself: the default 28 digits would round a longer
    # one (a 40-digit notional), and a rendering must never change the value.
    return format(number.normalize(Context(prec=max(len(number.as_tuple().digits), 1))), "f")


CURRENCY_MARKS = frozenset("$€£¥₹₽₩¢₺₪")
_SIGNS = frozenset("-+−")
_UPPER_ASCII = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_letter(char: str) -> bool:
    """A letter as the regex class [^\\W\\d_] reads it ('K', 'č', 'ł'): alphanumeric, not a digit."""
    return char.isalnum() and not char.isdecimal() and char != "_"


def _body_char(char: str) -> bool:
    return char.isdecimal() or char in ".,'’" or char.isspace()


def scan_number(value: str) -> dict[str, str] | None:
    """The parts of a number as brokers write it, or None: one left-to-right pass, linear in len(value).

    Grammar: [sign] [currency prefix: a mark, 1-5 letters, letters + '$' or up to 3 capitals + a mark]
    [sign] digits with separators (or '.5') [exponent e±ddd] [trailing '-'] [currency suffix: 1-5 letters
    or a mark], with spaces anywhere between the parts. It replaces a regex whose nested optional spaces
    backtracked cubically ('1', 2,000 spaces and '!' took seconds); nothing here ever looks back.
    """
    n, i = len(value), 0
    parts = {"sign1": "", "pre": "", "sign2": "", "body": "", "exp": "", "sign3": "", "post": ""}

    def skip_spaces(at: int) -> int:
        while at < n and value[at].isspace():
            at += 1
        return at

    def letters_from(at: int) -> int:
        end = at
        while end < n and end - at <= 5 and _is_letter(value[end]):
            end += 1
        return end

    i = skip_spaces(i)
    if i < n and value[i] in _SIGNS:
        parts["sign1"], i = value[i], skip_spaces(i + 1)
    end = letters_from(i)
    letters = value[i:end]
    if len(letters) > 5:
        return None
    after = value[end] if end < n else ""
    if letters and after == "$":
        parts["pre"], i = letters + "$", skip_spaces(end + 1)
    elif after in CURRENCY_MARKS and after and len(letters) <= 3 and all(c in _UPPER_ASCII for c in letters):
        parts["pre"], i = letters + after, skip_spaces(end + 1)
    elif letters:
        parts["pre"], i = letters, skip_spaces(end)
    if i < n and value[i] in _SIGNS:
        parts["sign2"], i = value[i], skip_spaces(i + 1)
    # The body: a digit and a run of digits/separators/spaces cut back to its last digit, or '.5' / ',5'.
    if i < n and value[i].isdecimal():
        last_digit = i
        end = i
        while end < n and _body_char(value[end]):
            if value[end].isdecimal():
                last_digit = end
            end += 1
        parts["body"], i = value[i : last_digit + 1], last_digit + 1
    elif i + 1 < n and value[i] in ".," and value[i + 1].isdecimal():
        end = i + 1
        while end < n and value[end].isdecimal():
            end += 1
        parts["body"], i = value[i:end], end
    else:
        return None
    if i < n and value[i] in "eE":
        start = i + 1 + (i + 1 < n and value[i + 1] in "+-")
        end = start
        while end < n and end - start < 4 and value[end].isdecimal():
            end += 1
        if 1 <= end - start <= 3:
            parts["exp"], i = value[i + 1 : end], end
        elif end - start > 3:
            return None  # 'e1234': neither an exponent nor a currency suffix
    i = skip_spaces(i)
    if i < n and value[i] == "-":
        parts["sign3"], i = "-", skip_spaces(i + 1)
    if i < n and value[i] in CURRENCY_MARKS:
        parts["post"], i = value[i], i + 1
    else:
        end = letters_from(i)
        if end - i > 5:
            return None
        parts["post"], i = value[i:end], end
    i = skip_spaces(i)
    return parts if i == n else None


# Codes that may be written glued to the digits of an amount ('USD1,234.50', 'BTC0.5'): known currencies only.
_GLUED_CODES = ISO_4217 | CRYPTO_3
# Lower-case units that brokers write after amounts (Scandinavian/Czech/Polish/Hungarian currencies).
_LOWER_UNITS = {"kr", "kč", "zł", "ft", "lei", "sek", "nok", "dkk", "eur", "usd", "gbp", "chf"}


def _ticker_like(value: str, pre: str) -> bool:
    """'SXR8', 'CNX1': letters glued to the digits that are no currency code are a ticker, not an amount
    ('USD1,234.50', 'BTC0.5', 'kr100' are amounts)."""
    if not pre.isalpha():
        return False
    at = value.find(pre) + len(pre)
    glued = at < len(value) and value[at].isdecimal()
    return glued and pre not in _GLUED_CODES and pre.casefold() not in _LOWER_UNITS


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


def decimal_builder(options: dict[str, Any]) -> TextCleaner:
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


def integer_builder(options: dict[str, Any]) -> TextCleaner:
    """Whole numbers, read like decimals and refused when they have a fraction."""
    wanted = ("decimal_sep", "thousands_sep", "abs")
    parse = decimal_builder({key: options[key] for key in wanted if key in options})

    def convert(text: str) -> int:
        number = parse(text)
        if number != number.to_integral_value():
            raise ConversionError(f"'{text}' is not a whole number")
        return int(number)

    return convert


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


QUOTIENT_JOINER = "\x1f"  # the two cells reach the quotient cleaner joined by a unit separator


def quotient_builder(options: dict[str, Any]) -> TextCleaner:
    """The first number divided by the second (cells joined by QUOTIENT_JOINER)."""
    parse = decimal_builder({k: options[k] for k in ("decimal_sep", "thousands_sep") if k in options})
    places = Decimal(1).scaleb(-options.get("places", 10))
    absolute = options.get("abs", False)

    def convert(text: str) -> Decimal:
        parts = text.split(QUOTIENT_JOINER)
        if len(parts) != 2 or not all(part.strip() and part.strip().casefold() not in PLACEHOLDERS for part in parts):
            raise ConversionError("needs two numbers (a numerator and a denominator column)")
        numerator, denominator = parse(parts[0].strip()), parse(parts[1].strip())
        if denominator == 0:
            raise ConversionError(f"cannot divide {numerator} by zero")
        result = (numerator / denominator).quantize(places)
        return abs(result) if absolute else result

    return convert
