"""Assembling the mapping: columns assigned best-first, then one spec (converter, options, reason) per field."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from formats.converters import CURRENCY_SYMBOLS, side_of
from formats.converters.words import POSITION_SIDES
from formats.suggest.derivations import derive_missing
from formats.suggest.profiles import AS_OF, ISO_START, Profile, guess_date, parses, profile_column
from formats.suggest.scoring import Score, score_pair, synonym_index
from formats.suggest.specs import field_spec
from formats.suggest.vocabulary import DEFAULT_MIN_SCORE, ISO_CURRENCIES, MIN_SCORE
from formats.targets import TargetField, get_target

_HEADER_CURRENCY = re.compile(r"\(\s*([A-Za-z]{3}|[$€£¥])\s*\)")
_PENCE = re.compile(r"\((?:p|pence|gbx)\)|\bpence\b", re.IGNORECASE)  # 'Unit cost (p)', 'Price (pence)'


def suggest_mapping(
    *,
    target: str,
    columns: list[str],
    sample_rows: list[list[str]],
    learned: dict[str, dict[str, int]] | None = None,
    header: list[str] | None = None,
    context: list[list[str]] | None = None,
    joined: bool = False,
) -> dict[str, Any]:
    """A full mapping (docs/INTERFACES.md) with a confidence and a reason per field.

    `context`: short rows outside the table (see FileLayout.context), read for what the table leaves out.
    `joined`: the columns are a ledger's trades joined by the reader (imports/reading/ledger.py), not the
    file's header: they name themselves, and their Currency column is each trade's quote asset.
    """
    target_def = get_target(target)
    learned = learned or {}
    header_cells = list(header) if header is not None and not joined else list(columns)
    header_cells += [""] * (len(columns) - len(header_cells))
    profiles = [
        profile_column(
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
    synonyms = synonym_index(target_def)
    order = [target_field.name for target_field in target_def.fields]
    scores = sorted(
        (score_pair(name, profile, synonyms[name], learned) for name in order for profile in profiles),
        key=lambda item: (-item.score, order.index(item.field), item.index),
    )
    chosen: dict[str, Score] = {}
    used: set[int] = set()
    for item in scores:
        if item.field in chosen or item.index in used:
            continue
        if item.score < MIN_SCORE.get(item.field, DEFAULT_MIN_SCORE):
            continue
        profile = profiles[item.index]
        if item.field == "currency" and profile.count and profile.ratio(profile.currencies) < 0.5:
            continue  # a currency column must hold currency codes, whatever its header says
        chosen[item.field] = item
        used.add(item.index)
    if target_def.trades:
        _prefer_currency_next_to_price(chosen, profiles, used)

    fields: dict[str, dict[str, Any]] = {}
    filters: list[dict[str, Any]] = []
    for target_field in target_def.fields:
        spec = _field_spec(target_field, chosen, profiles, header_cells, filters, trades=target_def.trades)
        if spec is not None:
            fields[target_field.name] = spec
    if target_def.trades:  # what a statement of trades needs; master data is one record per row
        filters.extend(_discriminator_filters(profiles))
        if joined and "Currency" in columns:
            reason = (
                "the quote asset of each trade joined from the ledger's rows (fiat, else a stablecoin, else BTC/ETH/…)"
            )
            fields["currency"] = field_spec(["Currency"], "currency", {}, 0.9, reason)
        derive_missing(fields, filters, profiles, sample_rows, context or [])
    reader = {"section": None, "header_line": None}
    return {"version": 1, "reader": reader, "filters": filters, "fields": fields}


def _share_decimal_comma(profiles: list[Profile]) -> None:
    """In a decimal-comma file, numeric columns without evidence of their own ('1.234') use ',' too."""
    seps = {profile.decimal_sep for profile in profiles if profile.decimal_sep}
    if seps == {","} and not any(profile.mixed_separators for profile in profiles):
        for profile in profiles:
            if profile.numeric and profile.decimal_sep is None:
                profile.decimal_sep = ","


def _prefer_currency_next_to_price(chosen: dict[str, Score], profiles: list[Profile], used: set[int]) -> None:
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
    chosen["currency"] = Score(0.8, "currency", after.index, reason)


def _field_spec(
    target_field: TargetField,
    chosen: dict[str, Score],
    profiles: list[Profile],
    header_cells: list[str],
    filters: list[dict[str, Any]],
    *,
    trades: bool,
) -> dict[str, Any] | None:
    """The mapping entry of one field (None for an optional field left unmapped). `trades`: a target of trades,
    whose missing side, currency and symbol may be derived from other columns."""
    name = target_field.name
    item = chosen.get(name)
    if trades and name == "side" and (item is None or item.score < 0.5):
        return _side_from_sign(chosen, profiles)
    if trades and name == "currency" and item is None:
        return _currency_constant(chosen, profiles, header_cells)
    if trades and name == "symbol" and item is None:
        item = _isin_fallback(chosen, profiles)
    if item is None:
        if not target_field.required:
            return None
        label = target_field.label.lower()
        article = "an" if label[0] in "aeiou" else "a"
        reason = f"no column looks like {article} {label}"
        return field_spec([], _DEFAULT_CONVERTER[target_field.kind], {}, 0.0, reason)
    profile = profiles[item.index]
    confidence, reason = item.score, item.reason
    if name == "executed_at":
        return _executed_atfield_spec(item, profile, profiles, chosen)
    if name == "side":
        if not profile.sides and profile.others:
            confidence *= 0.8
            reason += "; no buy/sell values in the samples"
        if any(" ".join(value.casefold().split()) in POSITION_SIDES for value in profile.sides):
            confidence = min(confidence, 0.7)
            reason += "; opening a position is read as a buy and closing it as a sell (long positions): check shorts"
        spec = field_spec([profile.column], "side", _side_options(profile), confidence, reason)
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
        return field_spec([profile.column], "decimal", options, confidence, reason)
    if name == "currency":
        return field_spec([profile.column], "currency", {}, confidence, reason)
    if name == "symbol":
        return field_spec([profile.column], "text", _symbol_options(profile), confidence, reason)
    return field_spec([profile.column], "text", {}, confidence, reason)


_DEFAULT_CONVERTER = {
    "text": "text",
    "side": "side",
    "decimal": "decimal",
    "currency": "currency",
    "datetime": "datetime",
}


_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}\d")


def _isin_fallback(chosen: dict[str, Score], profiles: list[Profile]) -> Score | None:
    """No symbol column (IBKR Flex with a chosen field subset): the ISIN identifies the security."""
    taken = {item.index for item in chosen.values()}
    for profile in profiles:
        hits = sum(bool(_ISIN.fullmatch(value)) for value in profile.values)
        if profile.index not in taken and profile.count and hits >= 0.8 * profile.count:
            reason = f"no symbol column; '{profile.column}' holds ISINs ({hits}/{profile.count} samples)"
            return Score(0.4, "symbol", profile.index, reason)
    return None


def _symbol_options(profile: Profile) -> dict[str, Any]:
    """Upper-case; 'NKE/USD' (eToro) and 'VWRL:xams' (Saxo) keep the part before the separator."""
    options: dict[str, Any] = {"upper": True}
    for separator in ("/", ":"):
        if profile.count and sum(separator in value for value in profile.values) >= 0.8 * profile.count:
            options.update(split_on=separator, part=0)
            break
    return options


def _executed_atfield_spec(
    item: Score, profile: Profile, profiles: list[Profile], chosen: dict[str, Score]
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
    return field_spec(columns, "datetime", options, confidence, reason)


def _time_column(date: Profile, profiles: list[Profile], chosen: dict[str, Score]) -> Profile | None:
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


def _combined_formats(date: Profile, time: Profile) -> list[str]:
    """Formats for 'date time' joined by a space, checked against the samples."""
    rows = [(date.values[i].split(AS_OF)[0].strip(), time.values[i]) for i in range(min(date.count, time.count))]
    joined = [f"{day} {clock}" for day, clock in rows]
    if joined and all(ISO_START.match(value) and parses("iso", value) for value in joined):
        return ["iso"]
    guess = guess_date(joined) if joined else None
    if guess and guess.formats and guess.ratio == 1.0:
        return guess.formats
    base = date.date.formats[0] if date.date else "iso"
    return [f"{base} %H:%M:%S", f"{base} %H:%M"] if base != "iso" else ["iso"]


def _side_options(profile: Profile) -> dict[str, Any]:
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
    "open position": "position closed",
    "position opened": "position closed",
}
_COUNTERPARTS.update({sell: buy for buy, sell in list(_COUNTERPARTS.items())})
_ORDER_KINDS = ("market", "limit", "stop", "stop limit")


def _side_filter(profile: Profile) -> dict[str, Any] | None:
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


def _side_from_sign(chosen: dict[str, Score], profiles: list[Profile]) -> dict[str, Any]:
    """No buy/sell column: read the side from the sign of the quantity."""
    quantity = chosen.get("quantity")
    if quantity is None:
        return field_spec([], "side", {}, 0.0, "no column has buy/sell values and no quantity column was found")
    profile = profiles[quantity.index]
    options: dict[str, Any] = {"negative_is": "SELL"}
    if profile.decimal_sep == ",":
        options["decimal_sep"] = ","
    if profile.negatives:
        reason = (
            f"no buy/sell column; '{profile.column}' is signed "
            f"({profile.negatives}/{profile.count} samples negative): negative = SELL"
        )
        return field_spec([profile.column], "side_from_sign", options, 0.8, reason)
    reason = f"no buy/sell column and no negative '{profile.column}' in the samples: check the side"
    return field_spec([profile.column], "side_from_sign", options, 0.2, reason)


def _currency_constant(chosen: dict[str, Score], profiles: list[Profile], header_cells: list[str]) -> dict[str, Any]:
    """No currency column: a currency named in the headers ('Result (GBP)') or carried by the prices."""
    price = chosen.get("price")
    if price is not None and _PENCE.search(profiles[price.index].header):
        reason = f"no currency column; header '{profiles[price.index].header}' gives prices in pence (GBX)"
        return field_spec([], "constant", {"value": "GBX"}, 0.5, reason)
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
        return field_spec([], "constant", {"value": code}, 0.5, reason)
    if price is not None:
        profile = profiles[price.index]
        marks, hits = profile.currency_marks, sum(profile.currency_marks.values())
        if marks and hits >= 0.8 * profile.count:
            if len(marks) == 1:
                code = next(iter(marks))
                reason = f"no currency column; prices in '{profile.column}' are written in {code}"
                return field_spec([], "constant", {"value": code}, 0.45, reason)
            shown = ", ".join(sorted(marks))
            reason = f"no currency column; prices in '{profile.column}' carry their currency ({shown})"
            return field_spec([profile.column], "currency", {}, 0.55, reason)
    return field_spec([], "currency", {}, 0.0, "no column looks like a currency")


def _discriminator_filters(profiles: list[Profile]) -> list[dict[str, Any]]:
    """IBKR activity statements repeat each trade as Order, Trade and ClosedLot rows: keep the Order rows."""
    for profile in profiles:
        if profile.key.replace(" ", "") == "datadiscriminator" and "Order" in profile.values:
            return [{"column": profile.column, "op": "in", "values": ["Order"]}]
    return []
