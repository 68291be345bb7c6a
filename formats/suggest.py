"""Mapping suggestion: guess which columns feed which target fields, from headers, sample values and
what admins approved before. No network, deterministic: the same input always gives the same mapping.

Every (field, column) pair gets a score in [0, 1] from three kinds of evidence:
- the header: an exact synonym of the field, or a fuzzy match (rapidfuzz) against the synonyms;
- the sample values: dates and their format, numbers, buy/sell words, tickers, currency codes;
- `learned`: headers that admins mapped to a field in approved formats (the strongest evidence).
Columns are then assigned best-first so one column feeds one field (a date column and a time column
may feed executed_at together, and a signed quantity column may also give the side).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz

from config.errors import ConversionError
from formats.converters import (
    CURRENCY_SYMBOLS,
    PLACEHOLDERS,
    currency_in_amount,
    date_parser,
    parse_decimal,
    side_of,
)
from formats.targets import Target, TargetField, get_target

ISO_CURRENCIES = frozenset(
    "AED ARS AUD BGN BRL CAD CHF CLP CNH CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR ISK JPY KES KRW KWD "
    "MAD MXN MYR NGN NOK NZD PEN PHP PKR PLN QAR RON RSD RUB SAR SEK SGD THB TRY TWD UAH USD VND ZAR".split()
)

# Synonyms too generic to be sure of on their own: an exact match counts less than a specific one.
_WEAK = {
    "symbol": {
        "product",
        "produkt",
        "produit",
        "stock",
        "security",
        "securities",
        "instrument",
        "asset",
        "coin",
        "code",
        "market",
        "pair",
        "titel",
        "titre",
        "valeur",
        "aktie",
        "epic",
    },
    "side": {"type", "typ", "tipo", "art", "soort", "activity", "transaction", "operation", "event"},
    "quantity": {"amount", "volume", "nominal", "size", "lots"},
    "price": {"rate", "cours"},
    "commission": {"costs", "charges", "kosten", "fees", "fee"},
    "executed_at": {"date", "time", "datum", "tijd", "data", "zeit", "heure", "hora", "ora", "tid", "cas"},
    "broker_trade_id": {"id", "reference", "ref", "order"},
    "account": {"portfolio", "depot"},
}
# Header words that mean "not this field" ('Settlement Date' is no execution time, 'Exchange rate' no price).
_NEGATIVE = {
    "account": {"currency", "type", "balance", "value", "total", "date", "alias", "valuta", "devise"},
    "symbol": {
        "currency",
        "isin",
        "exchange",
        "class",
        "type",
        "category",
        "description",
        "underlying",
        "id",
        "cusip",
        "conid",
        "valuta",
        "devise",
    },
    "side": {
        "asset",
        "instrument",
        "security",
        "order",
        "call",
        "put",
        "category",
        "class",
        "currency",
        "exchange",
        "venue",
    },
    "quantity": {
        "exchange",
        "change",
        "eligible",
        "dividend",
        "net",
        "withheld",
        "currency",
        "total",
        "proceeds",
        "value",
    },
    "price": {
        "close",
        "orig",
        "strike",
        "fx",
        "exchange",
        "conversion",
        "valutakurs",
        "smenny",
        "wisselkoers",
        "mtm",
        "change",
        "base",
        "currency",
        "total",
        "account",
    },
    "commission": {"tax", "withholding", "interest", "accrued", "currency", "valuta", "devise"},
    "currency": {
        "fee",
        "fees",
        "commission",
        "ibcommission",
        "comm",
        "withholding",
        "tax",
        "account",
        "result",
        "total",
        "native",
        "base",
        "conversion",
        "finra",
        "stamp",
        "dividend",
        "balance",
        "compte",
        "courtage",
        "valutakurs",
        "rate",
        "amount",
    },
    "executed_at": {
        "settle",
        "settlement",
        "valuta",
        "valutadatum",
        "value",
        "reglement",
        "expiration",
        "expiry",
        "report",
        "ex",
        "pay",
        "award",
        "open",
        "holding",
        "orig",
        "when",
        "downloaded",
        "zone",
        "timezone",
    },
    "broker_trade_id": {
        "related",
        "orig",
        "clearing",
        "conid",
        "security",
        "isin",
        "type",
        "client",
        "account",
        "user",
        "transfer",
        "position",
        "cusip",
    },
}
# How much matching values add on top of the header evidence, per field.
_VALUE_STRENGTH = {
    "executed_at": 0.6,
    "side": 0.7,
    "currency": 0.6,
    "symbol": 0.35,
    "quantity": 0.15,
    "price": 0.15,
    "commission": 0.1,
    "broker_trade_id": 0.3,
    "account": 0.05,
}
_MIN_SCORE = {"account": 0.5, "commission": 0.45, "broker_trade_id": 0.5}
_DEFAULT_MIN_SCORE = 0.3

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NON_WORD = re.compile(r"[\W_]+")
_TICKER = re.compile(r"[A-Z][A-Z0-9.\-]{0,9}(?:[/:][A-Za-z.]{1,8})?")
_TIME_ONLY = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?[AaPp][Mm])?")
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}")
_COMPACT_DATE = re.compile(r"(19|20)\d{6}")
_HEADER_CURRENCY = re.compile(r"\(\s*([A-Za-z]{3}|[$€£¥])\s*\)")
_AS_OF = " as of "

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


def learned_key(header_cell: str) -> str:
    """The normalised header text used as key of learned evidence (and for synonym matching)."""
    text = _CAMEL.sub(" ", header_cell.replace("\ufeff", ""))
    text = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    return _NON_WORD.sub(" ", text.casefold()).strip()


def _compact(text: str) -> str:
    """The text without spaces ('trade id' and 'tradeid' compare equal)."""
    return text.replace(" ", "")


# --- value profiles ------------------------------------------------------------------------------------


@dataclass
class _DateGuess:
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
class _Profile:
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
    date: _DateGuess | None = None
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


def _profile(index: int, column: str, header: str, cells: list[str]) -> _Profile:
    """Measure one column's sample values."""
    values = [cell.strip() for cell in cells]
    filled = [value for value in values if value.casefold() not in PLACEHOLDERS]
    profile = _Profile(index, column, header, learned_key(header) or learned_key(column), filled)
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
        profile.split_as_of = any(_AS_OF in value for value in filled)
        dated = [value.split(_AS_OF)[0].strip() for value in filled] if profile.split_as_of else filled
        profile.date = _guess_date(dated)
        profile.time_only = sum(bool(_TIME_ONLY.fullmatch(value)) for value in filled) == len(filled)
    distinct = set(filled)
    for value in sorted(distinct):
        side = side_of(value)
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


def _parses(fmt: str, value: str) -> datetime | None:
    """The value parsed exactly as the datetime converter would parse it with this format, or None."""
    try:
        return _parser(fmt)(value)
    except (ValueError, OverflowError):
        return None


def _guess_date(values: list[str]) -> _DateGuess | None:
    """The date format(s) that parse the values, preferring one format that parses them all."""
    if not values or not any(char.isdigit() for char in values[0]) or len(values[0]) > 40:
        return None
    if all(_ISO_START.match(value) for value in values) and all(_parses("iso", value) for value in values):
        has_time = any(len(value) > 10 for value in values)
        return _DateGuess(["iso"], len(values), len(values), has_time)
    candidates = []
    for example in _shape_examples(values):
        fresh = [fmt for fmt in _candidate_formats(example) if fmt not in candidates]
        candidates += [fmt for fmt in fresh if _parses(fmt, example)]
    if not candidates:
        return None
    parsed = {fmt: [_parses(fmt, value) for value in values] for fmt in candidates}
    complete = [fmt for fmt in candidates if all(parsed[fmt])]
    if complete:
        best = max(complete, key=lambda fmt: (_monotony(parsed[fmt]), -candidates.index(fmt)))
        swapped = _swap_day_month(best)
        ambiguous = swapped in complete and _monotony(parsed[swapped]) == _monotony(parsed[best])
        return _DateGuess([best], len(values), len(values), _has_time(best), ambiguous)
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
    return _DateGuess(chosen, sum(covered), len(values), any(_has_time(fmt) for fmt in chosen))


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


# --- scoring -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Score:
    """How well one column fits one field, and why."""

    score: float
    field: str
    index: int
    reason: str


def _synonym_index(target: Target) -> dict[str, list[tuple[str, str, bool]]]:
    """Per field: (normalised synonym, its compact form, is weak)."""
    index = {}
    for target_field in target.fields:
        seen: dict[str, tuple[str, str, bool]] = {}
        for synonym in target_field.synonyms:
            key = learned_key(synonym)
            if key and key not in seen:
                seen[key] = (
                    key,
                    _compact(key),
                    synonym in _WEAK.get(target_field.name, ()) or key in _WEAK.get(target_field.name, ()),
                )
        index[target_field.name] = list(seen.values())
    return index


def _header_evidence(name: str, key: str, synonyms: list[tuple[str, str, bool]]) -> tuple[float, str]:
    """(score, reason) for how well a normalised header names the field."""
    if not key:
        return 0.0, ""
    compact = _compact(key)
    best, reason = 0.0, ""
    tokens = set(key.split())
    for synonym, synonym_compact, weak in synonyms:
        if key == synonym or compact == synonym_compact:
            score = 0.72 if weak else 0.9
            if score > best:
                best, reason = score, f"= {name} (synonym{', generic' if weak else ''})"
            continue
        if set(synonym.split()) <= tokens:
            score = 0.65 * (len(synonym) / len(key)) ** 0.5 * (0.8 if weak else 1.0)
            if score > best:
                best, reason = score, f"≈ {name} (contains '{synonym}')"
            continue
        similarity = fuzz.ratio(key, synonym) / 100
        if similarity >= 0.88:
            score = 0.8 * similarity * (0.8 if weak else 1.0)
            if score > best:
                best, reason = score, f"≈ {name} (similar to '{synonym}')"
        elif len(synonym) >= 5 and fuzz.token_set_ratio(key, synonym) >= 90:
            score = 0.5 * (min(len(synonym), len(key)) / max(len(synonym), len(key))) ** 0.5
            if score > best:
                best, reason = score, f"≈ {name} (close to '{synonym}')"
    return best, reason


_FITS, _WEAKENS, _CONTRADICTS = 1.0, 0.6, 0.3


def _value_evidence(name: str, profile: _Profile) -> tuple[float | None, float, str]:
    """(fit in [0, 1] or None without values, factor on the header score when values disagree, reason)."""
    n = profile.count
    if n == 0:
        return None, _FITS, ""
    numeric = profile.numeric / n
    dated = profile.date.ratio if profile.date else 0.0
    if name in ("quantity", "price", "commission"):
        if numeric < 0.8:
            return numeric, _CONTRADICTS, f"values are not numbers ({profile.numeric}/{n} are)"
        fit = numeric * (0.3 if name == "price" and profile.negatives else 1.0)
        return fit, _FITS, f"values are numbers ({profile.numeric}/{n} samples)"
    if name == "executed_at":
        if profile.date is None or dated < 0.8:
            return dated, _CONTRADICTS, "values are not dates"
        guess = profile.date
        fit = dated * (1.0 if guess.has_time else 0.8)
        shown = " | ".join(guess.formats)
        described = "ISO dates" if guess.formats == ["iso"] else f"dates with format {shown}"
        return fit, _FITS, f"values parse as {described} ({guess.parsed}/{guess.total} samples)"
    if numeric >= 0.8 and name not in ("broker_trade_id", "account") or dated >= 0.8 or profile.time_only:
        return 0.0, _CONTRADICTS, "values are numbers or dates"
    if name == "side":
        hits = sum(1 for value in profile.values if value in profile.sides)
        if not hits:
            return 0.0, _WEAKENS, ""  # maybe only dividends in the sample, but another column may do better
        shown = ", ".join(_short(value) for value in list(profile.sides)[:4])
        return min(1.0, 0.6 + hits / n), _FITS, f"values are buy/sell words ({hits}/{n}: {shown})"
    if name == "currency":
        fit = profile.ratio(profile.currencies)
        if fit < 0.5:
            return fit, _CONTRADICTS, "values are not currency codes"
        return fit, _FITS, f"values are currency codes ({profile.currencies}/{n} samples)"
    if name == "symbol":
        if len(profile.sides) >= max(1, len(set(profile.values))):
            return 0.0, _CONTRADICTS, "values are buy/sell words"
        fit = profile.ratio(profile.tickers)
        return fit, _FITS, f"values look like tickers ({profile.tickers}/{n} samples)" if fit >= 0.5 else ""
    if name == "broker_trade_id":
        fit = profile.ratio(profile.ids)
        return fit, _FITS, f"values look like ids ({profile.ids}/{n} unique)" if fit >= 0.8 else ""
    return 1.0, _FITS, ""


def _short(value: str) -> str:
    """A value cut to 30 characters for reasons."""
    return value if len(value) <= 30 else value[:27] + "..."


def _learned_evidence(name: str, profile: _Profile, learned: dict[str, dict[str, int]]) -> tuple[float, str]:
    """(score, reason) from the headers admins mapped to this field in approved formats."""
    counts = learned.get(learned_key(profile.column)) or learned.get(profile.key) or {}
    count = counts.get(name, 0)
    if not count:
        return 0.0, ""
    share = count / sum(counts.values())
    formats = "format" if count == 1 else "formats"
    reason = f"admins mapped '{profile.column}' to {name} in {count} approved {formats}"
    if share < 0.5:
        return 0.8, reason
    return 0.97 + 0.01 * min(count, 3) * share, reason


def _score(
    name: str, profile: _Profile, synonyms: list[tuple[str, str, bool]], learned: dict[str, dict[str, int]]
) -> _Score:
    """Combine header, value and learned evidence for one (field, column)."""
    header, header_reason = _header_evidence(name, profile.key, synonyms)
    fit, factor, value_reason = _value_evidence(name, profile)
    contradicts = factor == _CONTRADICTS
    strength = _VALUE_STRENGTH[name]
    if fit is None:
        score = header * 0.85
    elif factor < _FITS:
        score = header * factor
    else:
        score = header + (1 - header) * strength * fit  # values add to, never replace, the header evidence
    reasons = [f"header '{profile.header or profile.column}' {header_reason}"] if header_reason else []
    if value_reason and not contradicts:
        reasons.append(value_reason)
    learned_score, learned_reason = _learned_evidence(name, profile, learned)
    if learned_score and not contradicts:
        score = max(score, learned_score)
        reasons.insert(0, learned_reason)
    if set(profile.key.split()) & _NEGATIVE.get(name, set()) and not learned_score:
        score *= 0.55
    return _Score(round(min(score, 1.0), 4), name, profile.index, "; ".join(reasons))


# --- assembling the mapping ----------------------------------------------------------------------------


def suggest_mapping(
    *,
    target: str,
    columns: list[str],
    sample_rows: list[list[str]],
    learned: dict[str, dict[str, int]] | None = None,
    header: list[str] | None = None,
) -> dict[str, Any]:
    """A full mapping (docs/INTERFACES.md) with a confidence and a reason per field."""
    target_def = get_target(target)
    learned = learned or {}
    header_cells = list(header) if header is not None else list(columns)
    header_cells += [""] * (len(columns) - len(header_cells))
    profiles = [
        _profile(
            index,
            column,
            header_cells[index].strip() or column,
            [row[index] if index < len(row) else "" for row in sample_rows],
        )
        for index, column in enumerate(columns)
    ]
    for profile in profiles:
        if not header_cells[profile.index].strip():
            profile.key = ""  # an unnamed column ('column_9') names nothing
    _share_decimal_comma(profiles)
    synonyms = _synonym_index(target_def)
    order = [target_field.name for target_field in target_def.fields]
    scores = sorted(
        (_score(name, profile, synonyms[name], learned) for name in order for profile in profiles),
        key=lambda item: (-item.score, order.index(item.field), item.index),
    )
    chosen: dict[str, _Score] = {}
    used: set[int] = set()
    for item in scores:
        if item.field in chosen or item.index in used:
            continue
        if item.score < _MIN_SCORE.get(item.field, _DEFAULT_MIN_SCORE):
            continue
        profile = profiles[item.index]
        if item.field == "currency" and profile.count and profile.ratio(profile.currencies) < 0.5:
            continue  # a currency column must hold currency codes, whatever its header says
        chosen[item.field] = item
        used.add(item.index)
    _prefer_currency_next_to_price(chosen, profiles, used)

    fields: dict[str, dict[str, Any]] = {}
    filters: list[dict[str, Any]] = []
    for target_field in target_def.fields:
        spec = _field_spec(target_field, chosen, profiles, header_cells, filters)
        if spec is not None:
            fields[target_field.name] = spec
    filters.extend(_discriminator_filters(profiles))
    reader = {"section": None, "header_line": None}
    return {"version": 1, "reader": reader, "filters": filters, "fields": fields}


def _share_decimal_comma(profiles: list[_Profile]) -> None:
    """In a decimal-comma file, numeric columns without evidence of their own ('1.234') use ',' too."""
    seps = {profile.decimal_sep for profile in profiles if profile.decimal_sep}
    if seps == {","} and not any(profile.mixed_separators for profile in profiles):
        for profile in profiles:
            if profile.numeric and profile.decimal_sep is None:
                profile.decimal_sep = ","


def _prefer_currency_next_to_price(chosen: dict[str, _Score], profiles: list[_Profile], used: set[int]) -> None:
    """DEGIRO puts the price's currency in the unnamed column right after 'Price'."""
    price = chosen.get("price")
    if price is None or price.index + 1 >= len(profiles):
        return
    after = profiles[price.index + 1]
    current = chosen.get("currency")
    if after.key or after.count == 0 or after.ratio(after.currencies) < 0.8:
        return
    if after.index in used and (current is None or current.index != after.index):
        return
    if current is not None and current.score >= 0.85:
        return
    if current is not None:
        used.discard(current.index)
    used.add(after.index)
    reason = (
        f"unnamed column after '{profiles[price.index].header}' holds currency codes "
        f"({after.currencies}/{after.count} samples)"
    )
    chosen["currency"] = _Score(0.8, "currency", after.index, reason)


def _field_spec(
    target_field: TargetField,
    chosen: dict[str, _Score],
    profiles: list[_Profile],
    header_cells: list[str],
    filters: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """The mapping entry of one field (None for an optional field left unmapped)."""
    name = target_field.name
    item = chosen.get(name)
    if name == "side" and (item is None or item.score < 0.5):
        return _side_from_sign(chosen, profiles)
    if name == "currency" and item is None:
        return _currency_constant(chosen, profiles, header_cells)
    if name == "symbol" and item is None:
        item = _isin_fallback(chosen, profiles)
    if item is None:
        if not target_field.required:
            return None
        label = target_field.label.lower()
        article = "an" if label[0] in "aeiou" else "a"
        reason = f"no column looks like {article} {label}"
        return _spec([], _DEFAULT_CONVERTER[target_field.kind], {}, 0.0, reason)
    profile = profiles[item.index]
    confidence, reason = item.score, item.reason
    if name == "executed_at":
        return _executed_at_spec(item, profile, profiles, chosen)
    if name == "side":
        if not profile.sides and profile.others:
            confidence *= 0.8
            reason += "; no buy/sell values in the samples"
        spec = _spec([profile.column], "side", _side_options(profile), confidence, reason)
        side_filter = _side_filter(profile)
        if side_filter:
            filters.append(side_filter)
        return spec
    if name in ("quantity", "price", "commission"):
        options: dict[str, Any] = {}
        if profile.decimal_sep == ",":
            options["decimal_sep"] = ","
        if name in ("quantity", "commission"):
            options["abs"] = True  # the sign is in side; fees are stored as a positive amount
        if name == "commission":
            options["default"] = "0"
        return _spec([profile.column], "decimal", options, confidence, reason)
    if name == "currency":
        return _spec([profile.column], "currency", {}, confidence, reason)
    if name == "symbol":
        return _spec([profile.column], "text", _symbol_options(profile), confidence, reason)
    return _spec([profile.column], "text", {}, confidence, reason)


_DEFAULT_CONVERTER = {
    "text": "text",
    "side": "side",
    "decimal": "decimal",
    "currency": "currency",
    "datetime": "datetime",
}


def _spec(
    columns: list[str], converter: str, options: dict[str, Any], confidence: float, reason: str
) -> dict[str, Any]:
    """One field entry of the mapping JSON."""
    return {
        "columns": columns,
        "converter": converter,
        "options": options,
        "confidence": round(max(0.0, min(1.0, confidence)), 2),
        "reason": reason,
    }


_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}\d")


def _isin_fallback(chosen: dict[str, _Score], profiles: list[_Profile]) -> _Score | None:
    """No symbol column (IBKR Flex with a chosen field subset): the ISIN identifies the security."""
    taken = {item.index for item in chosen.values()}
    for profile in profiles:
        hits = sum(bool(_ISIN.fullmatch(value)) for value in profile.values)
        if profile.index not in taken and profile.count and hits >= 0.8 * profile.count:
            reason = f"no symbol column; '{profile.column}' holds ISINs ({hits}/{profile.count} samples)"
            return _Score(0.4, "symbol", profile.index, reason)
    return None


def _symbol_options(profile: _Profile) -> dict[str, Any]:
    """Upper-case; 'NKE/USD' (eToro) and 'VWRL:xams' (Saxo) keep the part before the separator."""
    options: dict[str, Any] = {"upper": True}
    for separator in ("/", ":"):
        if profile.count and sum(separator in value for value in profile.values) >= 0.8 * profile.count:
            options.update(split_on=separator, part=0)
            break
    return options


def _executed_at_spec(
    item: _Score, profile: _Profile, profiles: list[_Profile], chosen: dict[str, _Score]
) -> dict[str, Any]:
    """Date column (plus a separate time column when the date has no time), formats and timezone."""
    guess = profile.date
    options: dict[str, Any] = {"formats": guess.formats if guess else ["iso"], "tz": "UTC"}
    if profile.split_as_of:
        options.update(split_on="as of", part=0)
    columns, confidence, reason = [profile.column], item.score, item.reason
    if guess and not guess.has_time:
        time_column = _time_column(profile, profiles, chosen)
        if time_column is not None:
            columns.append(time_column.column)
            options["formats"] = _combined_formats(profile, time_column)
            reason += f"; time from column '{time_column.column}'"
    if guess and guess.ambiguous:
        confidence *= 0.85
        first = "day" if guess.formats[0].index("%d") < guess.formats[0].index("%m") else "month"
        reason += f"; day/month order is ambiguous in the samples, assumed {first} first"
    return _spec(columns, "datetime", options, confidence, reason)


def _time_column(date: _Profile, profiles: list[_Profile], chosen: dict[str, _Score]) -> _Profile | None:
    """A time-only column to join to a date-only column, if there is one."""
    taken = {item.index for item in chosen.values()}
    candidates = [profile for profile in profiles if profile.time_only and profile.count and profile.index not in taken]
    if not candidates:
        return None
    # The column named like a time (Time, Tijd, Čas, Heure...) or else the nearest one after the date.
    named = [profile for profile in candidates if profile.key in _TIME_WORDS]
    if named:
        return named[0]
    after = [profile for profile in candidates if profile.index > date.index]
    return after[0] if after else None


_TIME_WORDS = {
    "time",
    "tijd",
    "cas",
    "heure",
    "zeit",
    "uhrzeit",
    "tid",
    "hora",
    "ora",
    "trade time",
    "execution time",
    "time utc",
}


def _combined_formats(date: _Profile, time: _Profile) -> list[str]:
    """Formats for 'date time' joined by a space, checked against the samples."""
    rows = [(date.values[i].split(_AS_OF)[0].strip(), time.values[i]) for i in range(min(date.count, time.count))]
    joined = [f"{day} {clock}" for day, clock in rows]
    if joined and all(_ISO_START.match(value) and _parses("iso", value) for value in joined):
        return ["iso"]
    guess = _guess_date(joined) if joined else None
    if guess and guess.formats and guess.ratio == 1.0:
        return guess.formats
    base = date.date.formats[0] if date.date else "iso"
    return [f"{base} %H:%M:%S", f"{base} %H:%M"] if base != "iso" else ["iso"]


def _side_options(profile: _Profile) -> dict[str, Any]:
    """An explicit map of the unusual buy/sell values seen, so the admin sees how each is read."""
    plain = ("buy", "sell")
    unusual = {value: side for value, side in profile.sides.items() if value.casefold() not in plain}
    if not unusual or _free_text(list(profile.sides)):
        return {}
    return {"map": dict(sorted(unusual.items()))}


_COUNTERPARTS = {
    "buy": "sell",
    "bought": "sold",
    "purchase": "sale",
    "koop": "verkoop",
    "aankoop": "verkoop",
    "kopen": "verkopen",
    "köp": "sälj",
    "achat": "vente",
    "kauf": "verkauf",
    "compra": "venta",
    "acquisto": "vendita",
    "nákup": "prodej",
}
_COUNTERPARTS.update({sell: buy for buy, sell in list(_COUNTERPARTS.items())})
_ORDER_KINDS = ("market", "limit", "stop", "stop limit")


def _side_filter(profile: _Profile) -> dict[str, Any] | None:
    """Keep only trade rows when the side column also holds dividends, deposits or blanks."""
    if not profile.others and not profile.empties:
        return None
    seen = list(profile.sides) or ["Buy", "Sell"]
    if _free_text(seen):
        # Free text ('YOU BOUGHT VANGUARD ...'): keep rows starting with the words up to buy/sell.
        prefixes = sorted({_prefix_through_side_word(value) for value in seen})
        values = sorted({*prefixes, *(_counterpart(prefix) for prefix in prefixes)} - {""})
        return {"column": profile.column, "op": "startswith", "values": values}
    values = set(seen)
    for value in seen:
        values.update(_variants(value))
    return {"column": profile.column, "op": "in", "values": sorted(values, key=str.casefold)}


def _free_text(values: list[str]) -> bool:
    """Sentences such as 'YOU BOUGHT VANGUARD ...' or 'Buy 3 @ 139.74 USD' rather than a short code list."""
    return len(values) > 6 or any(len(value) > 30 or re.search(r"\d", value) for value in values)


def _prefix_through_side_word(value: str) -> str:
    """The words of a value up to its buy/sell word ('YOU BOUGHT VANGUARD' -> 'YOU BOUGHT')."""
    words = value.split()
    for position, word in enumerate(words):
        if side_of(word):
            return " ".join(words[: position + 1])
    return value


def _counterpart(value: str) -> str:
    """'Market buy' -> 'Market sell', 'Koop' -> 'Verkoop': the other side written the same way."""

    def swap(match: re.Match[str]) -> str:
        word = match.group()
        other = _COUNTERPARTS.get(word.casefold())
        if other is None:
            return word
        return other.upper() if word.isupper() else other.capitalize() if word[0].isupper() else other

    return re.sub(r"[^\W\d_]+", swap, value)


def _variants(value: str) -> set[str]:
    """The counterpart and, for 'Market buy' style values, the other order kinds (Limit sell...)."""
    variants = {_counterpart(value)}
    lowered = value.casefold()
    for kind in _ORDER_KINDS:
        if lowered.startswith(kind + " "):
            rest = value[len(kind) + 1 :]
            for other in _ORDER_KINDS:
                styled = other.capitalize() if value[0].isupper() and not value.isupper() else other
                styled = styled.upper() if value.isupper() else styled
                variants.update({f"{styled} {rest}", f"{styled} {_counterpart(rest)}"})
            break
    return variants - {value}


def _side_from_sign(chosen: dict[str, _Score], profiles: list[_Profile]) -> dict[str, Any]:
    """No buy/sell column: read the side from the sign of the quantity."""
    quantity = chosen.get("quantity")
    if quantity is None:
        return _spec([], "side", {}, 0.0, "no column has buy/sell values and no quantity column was found")
    profile = profiles[quantity.index]
    options: dict[str, Any] = {"negative_is": "SELL"}
    if profile.decimal_sep == ",":
        options["decimal_sep"] = ","
    if profile.negatives:
        reason = (
            f"no buy/sell column; '{profile.column}' is signed "
            f"({profile.negatives}/{profile.count} samples negative): negative = SELL"
        )
        return _spec([profile.column], "side_from_sign", options, 0.8, reason)
    reason = f"no buy/sell column and no negative '{profile.column}' in the samples: check the side"
    return _spec([profile.column], "side_from_sign", options, 0.2, reason)


def _currency_constant(chosen: dict[str, _Score], profiles: list[_Profile], header_cells: list[str]) -> dict[str, Any]:
    """No currency column: a currency named in the headers ('Result (GBP)') or carried by the prices."""
    named: Counter[str] = Counter()
    first_header: dict[str, str] = {}
    for cell in header_cells:
        for match in _HEADER_CURRENCY.finditer(cell):
            code = CURRENCY_SYMBOLS.get(match.group(1), match.group(1).upper())
            if code in ISO_CURRENCIES:
                named[code] += 1
                first_header.setdefault(code, cell)
    if named:
        code = max(named, key=lambda candidate: (named[candidate], -list(named).index(candidate)))
        reason = f"no currency column; header '{first_header[code]}' names {code}"
        return _spec([], "constant", {"value": code}, 0.5, reason)
    price = chosen.get("price")
    if price is not None:
        profile = profiles[price.index]
        marks, hits = profile.currency_marks, sum(profile.currency_marks.values())
        if marks and hits >= 0.8 * profile.count:
            if len(marks) == 1:
                code = next(iter(marks))
                reason = f"no currency column; prices in '{profile.column}' are written in {code}"
                return _spec([], "constant", {"value": code}, 0.45, reason)
            shown = ", ".join(sorted(marks))
            reason = f"no currency column; prices in '{profile.column}' carry their currency ({shown})"
            return _spec([profile.column], "currency", {}, 0.55, reason)
    return _spec([], "currency", {}, 0.0, "no column looks like a currency")


def _discriminator_filters(profiles: list[_Profile]) -> list[dict[str, Any]]:
    """IBKR activity statements repeat each trade as Order, Trade and ClosedLot rows: keep the Order rows."""
    for profile in profiles:
        if profile.key.replace(" ", "") == "datadiscriminator" and "Order" in profile.values:
            return [{"column": profile.column, "op": "in", "values": ["Order"]}]
    return []
