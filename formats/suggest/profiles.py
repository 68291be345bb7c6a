"""Value profiles: what one column's sample values look like (numbers, separators, dates, sides, codes)."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from config.errors import ConversionError
from formats.converters import CURRENCY_SYMBOLS, PLACEHOLDERS, currency_in_amount, date_parser, parse_decimal, side_of
from formats.converters.words import POSITION_SIDES
from formats.suggest.vocabulary import ISO_CURRENCIES, learned_key

_TICKER = re.compile(r"[A-Z][A-Z0-9.\-]{0,9}(?:[/:][A-Za-z.]{1,8})?")
_TIME_ONLY = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?[AaPp][Mm])?")
ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}")
_COMPACT_DATE = re.compile(r"(19|20)\d{6}")
AS_OF = " as of "

_DATE_PARTS = (
    "%Y-%m-%d",
    "%Y%m%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%d-%b-%Y",
    "%d %b %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d %B %Y",
    "%b %d %Y",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%y",
    "%d-%m-%y",
)
_TIME_PARTS = ("%H:%M:%S", "%H:%M", "%H:%M:%S.%f", "%I:%M:%S %p", "%I:%M %p", "%H%M%S")
_JOINERS = (" ", "T", ", ", ";", " - ")


@dataclass
class DateGuess:
    """The date format(s) found for a column and how many samples they parse."""

    formats: list[str]
    parsed: int
    total: int
    has_time: bool
    ambiguous: bool = False

    @property
    def ratio(self) -> float:
        return self.parsed / self.total if self.total else 0.0


@dataclass
class Profile:
    """What the sample values of one column look like."""

    index: int
    column: str
    header: str
    key: str
    values: list[str]
    numeric: int = 0
    negatives: int = 0
    decimal_sep: str | None = None
    mixed_separators: bool = False
    currency_marks: Counter = field(default_factory=Counter)
    date: DateGuess | None = None
    split_as_of: bool = False
    time_only: bool = False
    sides: dict[str, str] = field(default_factory=dict)
    others: list[str] = field(default_factory=list)
    empties: int = 0
    currencies: int = 0
    tickers: int = 0
    ids: int = 0

    @property
    def count(self) -> int:
        return len(self.values)

    def ratio(self, hits: int) -> float:
        return hits / self.count if self.count else 0.0


def profile_column(index: int, column: str, header: str, cells: list[str]) -> Profile:
    """Measure one column's sample values."""
    values = [cell.strip() for cell in cells]
    filled = [value for value in values if value.casefold() not in PLACEHOLDERS]
    profile = Profile(index, column, header, learned_key(header) or learned_key(column), filled)
    profile.empties = len(values) - len(filled)
    if not filled:
        return profile
    separators = set()
    for value in filled:
        try:
            number = parse_decimal(value)
        except ConversionError:
            continue
        profile.numeric += 1
        profile.negatives += number < 0
        evidence = _separator_evidence(value)
        if evidence:
            separators.add(evidence)
        mark = currency_in_amount(value)
        if mark:
            profile.currency_marks[mark] += 1
    if len(separators) == 1:
        profile.decimal_sep = separators.pop()
    profile.mixed_separators = len(separators) > 1
    if profile.numeric < len(filled) or all(_COMPACT_DATE.fullmatch(value) for value in filled):
        profile.split_as_of = any(AS_OF in value for value in filled)
        dated = [value.split(AS_OF)[0].strip() for value in filled] if profile.split_as_of else filled
        profile.date = guess_date(dated)
        profile.time_only = sum(bool(_TIME_ONLY.fullmatch(value)) for value in filled) == len(filled)
    distinct = set(filled)
    for value in sorted(distinct):
        side = side_of(value) or POSITION_SIDES.get(" ".join(value.casefold().split()))
        if side:
            profile.sides[value] = side
        else:
            profile.others.append(value)
    for value in filled:
        upper = value.upper()
        is_currency = upper in ISO_CURRENCIES or value in CURRENCY_SYMBOLS
        profile.currencies += is_currency
        profile.tickers += bool(_TICKER.fullmatch(value)) and not is_currency and value not in profile.sides
        profile.ids += len(value) >= 4 and " " not in value and any(char.isdigit() for char in value)
    if len(distinct) < 0.8 * len(filled):
        profile.ids = 0  # ids are (nearly) unique per row
    return profile


_NUMBER_BODY = re.compile(r"\d[\d.,]*\d|\d")


def _separator_evidence(value: str) -> str | None:
    """'.' or ',' when a value shows unambiguously which is its decimal separator, else None."""
    match = _NUMBER_BODY.search(value)
    if not match:
        return None
    body = match.group()
    dot, comma = body.rfind("."), body.rfind(",")
    if dot >= 0 and comma >= 0:
        return "." if dot > comma else ","
    if comma >= 0:
        if body.count(",") > 1:
            return "."
        integer, _, fraction = body.partition(",")
        return "," if len(fraction) != 3 or integer == "0" else None
    if dot >= 0:
        if body.count(".") > 1:
            return ","
        integer, _, fraction = body.partition(".")
        return "." if len(fraction) != 3 or integer == "0" else None
    return None


def _candidate_formats(value: str) -> list[str]:
    """strptime formats worth trying for a value shaped like this one."""
    lowered = value.casefold()
    if ":" not in value and ";" not in value:
        return list(_DATE_PARTS)
    with_pm = "am" in lowered or "pm" in lowered
    times = [part for part in _TIME_PARTS if ("%p" in part) == with_pm]
    formats = []
    for joiner in _JOINERS:
        if joiner.strip() and joiner.strip() not in value:
            continue
        for date_part in _DATE_PARTS:
            formats.extend(f"{date_part}{joiner}{time_part}" for time_part in times)
    return formats


def _shape_examples(values: list[str]) -> list[str]:
    """The first value of each shape (with or without a time, AM/PM...), so mixed columns get all formats."""
    examples: dict[tuple[bool, bool, bool], str] = {}
    for value in values:
        lowered = value.casefold()
        shape = (":" in value or ";" in value, "am" in lowered or "pm" in lowered, "t" in lowered)
        examples.setdefault(shape, value)
    return list(examples.values())


@functools.cache
def _parser(fmt: str) -> Callable[[str], datetime]:
    """One cached parser per format, shared by every column."""
    return date_parser(fmt)


def parses(fmt: str, value: str) -> datetime | None:
    """The value parsed exactly as the datetime converter would parse it with this format, or None."""
    try:
        return _parser(fmt)(value)
    except (ValueError, OverflowError):
        return None


def guess_date(values: list[str]) -> DateGuess | None:
    """The date format(s) that parse the values, preferring one format that parses them all."""
    if not values or not any(char.isdigit() for char in values[0]) or len(values[0]) > 40:
        return None
    if all(ISO_START.match(value) for value in values) and all(parses("iso", value) for value in values):
        has_time = any(len(value) > 10 for value in values)
        return DateGuess(["iso"], len(values), len(values), has_time)
    candidates = []
    for example in _shape_examples(values):
        fresh = [fmt for fmt in _candidate_formats(example) if fmt not in candidates]
        candidates += [fmt for fmt in fresh if parses(fmt, example)]
    if not candidates:
        return None
    parsed = {fmt: [parses(fmt, value) for value in values] for fmt in candidates}
    complete = [fmt for fmt in candidates if all(parsed[fmt])]
    if complete:
        best = max(complete, key=lambda fmt: (_monotony(parsed[fmt]), -candidates.index(fmt)))
        swapped = _swap_day_month(best)
        ambiguous = swapped in complete and _monotony(parsed[swapped]) == _monotony(parsed[best])
        return DateGuess([best], len(values), len(values), _has_time(best), ambiguous)
    # No single format parses every value (mixed precision, say): cover them with up to 3 formats.
    chosen: list[str] = []
    covered = [False] * len(values)

    def gain(fmt: str) -> list[bool]:
        return [bool(hit) and not done for hit, done in zip(parsed[fmt], covered, strict=True)]

    for _ in range(3):
        best = max(candidates, key=lambda fmt: (sum(gain(fmt)), -candidates.index(fmt)))
        gained = gain(best)
        if not any(gained):
            break
        chosen.append(best)
        covered = [done or gain for done, gain in zip(covered, gained, strict=True)]
        if all(covered):
            break
    return DateGuess(chosen, sum(covered), len(values), any(_has_time(fmt) for fmt in chosen))


def _has_time(fmt: str) -> bool:
    """Whether values parsed with this format carry a time of day."""
    return fmt == "iso" or "%H" in fmt or "%I" in fmt


def _swap_day_month(fmt: str) -> str:
    """The format with %d and %m swapped ('%d/%m/%Y' <-> '%m/%d/%Y')."""
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _monotony(dates: list[datetime | None]) -> int:
    """How many neighbours are in order (ascending or descending, whichever is more): exports are sorted."""
    known = [date for date in dates if date is not None]
    pairs = list(zip(known, known[1:], strict=False))
    return max(sum(a <= b for a, b in pairs), sum(a >= b for a, b in pairs))
