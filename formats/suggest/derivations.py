"""Derived values for the fields the columns alone do not give: read out of order descriptions, pairs,
number-plus-unit cells and ticker suffixes, or computed as amount ÷ quantity. Each derivation is one of the
converters in formats/converters/derive.py (or the quotient converter), so the admin sees it, with the
evidence in words, and can change it.

Runs after the columns are chosen; a derivation replaces a chosen column only where the file's own values
are stronger evidence (an order description that gives side, quantity and price together)."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import Any

from config.errors import ConversionError
from formats.converters.currencies import ISO_4217
from formats.converters.derive import exchange_currency_of, isin_in, parse_trade_text, split_pair, unit_of
from formats.converters.numbers import parse_decimal
from formats.converters.types import PLACEHOLDERS
from formats.suggest.profiles import Profile
from formats.suggest.specs import field_spec, unfilled

# Header words of a column holding a trade's money amount (quantity × price, plus or minus fees).
AMOUNT_WORDS = (
    "amount", "value", "total", "net", "proceeds", "subtotal", "consideration", "waarde", "bedrag", "belopp",
    "montant", "betrag", "importe", "hodnota", "castka", "kwota", "beløb", "beløp", "summa", "mutatie",
    "umsatz", "kurswert", "importo", "valor", "montante",
)  # fmt: skip
_TRUSTED = 0.9  # a column chosen at this confidence or more is kept over a derivation


def _missing(fields: dict[str, Any], name: str) -> bool:
    return unfilled(fields.get(name))


def _weak(fields: dict[str, Any], name: str) -> bool:
    spec = fields.get(name)
    return _missing(fields, name) or (spec or {}).get("confidence", 0) < _TRUSTED


def _used(fields: dict[str, Any]) -> set[str]:
    return {column for spec in fields.values() for column in spec.get("columns") or []}


def derive_missing(
    fields: dict[str, Any],
    filters: list[dict[str, Any]],
    profiles: list[Profile],
    rows: list[list[str]],
    context: list[list[str]],
) -> None:
    """Fill missing fields in place with derivations the samples support (`rows`: the sample rows;
    `context`: short rows outside the table, such as a preamble's 'Base Currency,GBP')."""
    _from_trade_text(fields, filters, profiles)
    _symbol_from_trade_text(fields, profiles)
    _varying_trade_date(fields, profiles)
    _commission_not_the_total(fields, profiles, rows)
    _skip_currency_conversions(filters, profiles)
    _prefer_isin_over_names(fields, profiles)
    _symbol_from_pairs(fields, profiles)
    _symbol_from_units(fields, profiles)
    _symbol_from_isin_text(fields, profiles)
    _symbol_from_codes(fields, profiles)
    _price_from_amount(fields, profiles)
    _currency_from_symbol(fields, profiles)
    _currency_from_marks(fields, profiles)
    _currency_from_context(fields, context)
    _currency_mentioned_in_context(fields, context)
    _currency_from_time_zone(fields, profiles)
    _currency_from_cusips(fields, profiles)
    _currency_from_language(fields, profiles)
    _side_from_codes(fields, filters, profiles)
    _side_from_amount_sign(fields, profiles, rows)
    _side_from_money_columns(fields, profiles, rows)
    _skip_rows_without_quantity(fields, filters, profiles, rows)
    _skip_cancelled(filters, profiles)


def _by_column(profiles: list[Profile]) -> dict[str, Profile]:
    return {profile.column: profile for profile in profiles}


def _from_trade_text(fields: dict[str, Any], filters: list[dict[str, Any]], profiles: list[Profile]) -> None:
    """A description column holding 'Koop 1 @ 33,9 USD' gives side, quantity and price (and currency)."""
    if not (_missing(fields, "price") or _missing(fields, "quantity") or _missing(fields, "side")):
        return
    best: tuple[int, Profile, list[dict[str, Any]]] | None = None
    for profile in profiles:
        if profile.numeric or not profile.count:
            continue
        sep = "," if profile.decimal_sep == "," else None
        parsed = [parse_trade_text(value, sep) for value in profile.values]
        full = [p for p in parsed if {"side", "quantity", "price"} <= set(p)]
        if full and (best is None or len(full) > best[0]):
            best = (len(full), profile, parsed)
    if best is None:
        return
    hits, profile, parsed = best
    with_side = sum(1 for p in parsed if "side" in p)
    comma = any("," in value and "@" in value for value in profile.values) and _comma_decimals(profile.values)
    options: dict[str, Any] = {"decimal_sep": ","} if comma else {}
    example = _example(profile, parsed)
    evidence = f"'{profile.column}' holds order descriptions ({hits}/{profile.count} samples, e.g. '{example}')"
    confidence = 0.75 if hits >= 0.8 * with_side else 0.6
    old_side = (fields.get("side") or {}).get("columns") or []
    if _weak(fields, "side") and old_side and old_side != [profile.column]:
        # The description gives the side now: a filter on the old side column's values goes with it.
        filters[:] = [rule for rule in filters if rule.get("column") not in old_side]
    for name in ("side", "quantity", "price"):
        if _weak(fields, name):
            reason = f"{name} read from {evidence}"
            fields[name] = field_spec([profile.column], "trade_text", {"take": name, **options}, confidence, reason)
    with_currency = sum(1 for p in parsed if "currency" in p)
    if with_currency and with_currency >= 0.8 * hits and _weak(fields, "currency"):
        reason = f"currency named after the price in {evidence}"
        fields["currency"] = field_spec([profile.column], "trade_text", {"take": "currency"}, confidence, reason)
    if with_side < profile.count or profile.empties:
        # Rows without a buy/sell word (deposits, fees, dividends) are skipped, never invalid.
        filters[:] = [rule for rule in filters if rule.get("column") != profile.column]
        filters.append({"column": profile.column, "op": "side_word"})


def _symbol_from_trade_text(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """No symbol column: the security the order descriptions name ('Vanguard FTSE ... ETF 1000 @ 4500.00',
    'Sell 4 AVIVA@496 GBX'), when every description giving a quantity and a price names one."""
    if not _missing(fields, "symbol"):
        return
    for profile in profiles:
        if profile.numeric or not profile.count:
            continue
        sep = "," if profile.decimal_sep == "," else None
        parsed = [parse_trade_text(value, sep) for value in profile.values]
        priced = [(value, found) for value, found in zip(profile.values, parsed, strict=True) if "price" in found]
        if priced and all("name" in found for _, found in priced):
            example = priced[0][0][:60]
            reason = (
                f"no symbol column; the security named in the order descriptions of '{profile.column}' "
                f"({len(priced)}/{profile.count} samples, e.g. '{example}')"
            )
            fields["symbol"] = field_spec([profile.column], "trade_text", {"take": "name"}, 0.5, reason)
            return


def _comma_decimals(values: list[str]) -> bool:
    """'33,9' or '1.234,50' after '@': the price is written with a decimal comma."""
    for value in values:
        after = value.split("@", 1)[1].split() if "@" in value else []
        if after:
            token = after[0]
            if "," in token and (len(token.rsplit(",", 1)[1]) != 3 or "." in token):
                return True
    return False


def _example(profile: Profile, parsed: list[dict[str, Any]]) -> str:
    for value, found in zip(profile.values, parsed, strict=False):
        if "price" in found:
            return value[:60]
    return profile.values[0][:60]


def _prefer_isin_over_names(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """'VICI PROPERTIES INC. C' (a product name, cut short) identifies less than the ISIN next to it."""
    spec = fields.get("symbol") or {}
    columns = spec.get("columns") or []
    if len(columns) != 1 or spec.get("converter") != "text":
        return
    by_column = _by_column(profiles)
    current = by_column[columns[0]]
    names = sum(1 for value in current.values if " " in value.strip() or len(value) > 12)
    if not current.count or names < 0.5 * current.count:
        return
    used = _used(fields)
    for profile in profiles:
        if profile.column in used or not profile.count:
            continue
        isins = sum(1 for value in profile.values if _ISIN_SHAPE.fullmatch(value.upper()))
        if isins >= 0.8 * profile.count:
            reason = (
                f"'{profile.column}' holds ISINs ({isins}/{profile.count} samples), which identify the security "
                f"better than the names in '{current.column}'"
            )
            fields["symbol"] = field_spec(
                [profile.column], "text", {"upper": True}, max(spec.get("confidence", 0), 0.8), reason
            )
            return


def _symbol_from_pairs(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """A symbol column of pairs ('BTC-USDT') gives the asset as symbol and the quote as currency."""
    spec = fields.get("symbol") or {}
    columns = spec.get("columns") or []
    if len(columns) != 1 or spec.get("converter") != "text" or (spec.get("options") or {}).get("split_on"):
        return
    profile = _by_column(profiles)[columns[0]]
    pairs = [split_pair(value) for value in profile.values]
    hits = sum(pair is not None for pair in pairs)
    if not profile.count or hits < 0.8 * profile.count or any("." in value for value in profile.values):
        return
    example = profile.values[0]
    reason = f"'{profile.column}' holds trading pairs ({hits}/{profile.count} samples, e.g. '{example}'): the asset"
    fields["symbol"] = field_spec(columns, "pair", {"take": "base"}, min(spec.get("confidence", 0.6), 0.8), reason)
    if _weak(fields, "currency"):
        quotes = sorted({pair[1] for pair in pairs if pair})
        reason = f"the quote of the pairs in '{profile.column}' ({', '.join(quotes[:4])})"
        fields["currency"] = field_spec(columns, "pair", {"take": "quote"}, 0.75, reason)


def _symbol_from_units(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """'2.00000000 ETH' in the quantity column: the unit is what was traded."""
    if not _missing(fields, "symbol"):
        return
    quantity = (fields.get("quantity") or {}).get("columns") or []
    if len(quantity) != 1:
        return
    profile = _by_column(profiles)[quantity[0]]
    units = [unit_of(value) for value in profile.values]
    codes = [unit for unit in units if unit and unit.isalpha()]
    if profile.count and len(codes) >= 0.8 * profile.count:
        reason = f"the unit of the quantities in '{profile.column}' (e.g. '{profile.values[0]}')"
        fields["symbol"] = field_spec(quantity, "unit", {}, 0.7, reason)


def _symbol_from_isin_text(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """'APPLE INC / US0378331005': the ISIN inside the chosen symbol column identifies the security."""
    spec = fields.get("symbol") or {}
    columns = spec.get("columns") or []
    if len(columns) != 1 or spec.get("converter") != "text":
        return
    profile = _by_column(profiles)[columns[0]]
    inside = sum(1 for value in profile.values if isin_in(value) and isin_in(value) != value.strip().upper())
    if profile.count and inside >= 0.8 * profile.count:
        reason = f"'{profile.column}' holds names with their ISIN ({inside}/{profile.count} samples): the ISIN"
        fields["symbol"] = field_spec(columns, "isin", {}, spec.get("confidence", 0.6), reason)


def _symbol_from_codes(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """No symbol yet: an unused column of asset codes (Bitvavo's 'Currency' next to 'Quote Currency'), not
    one of fiat currency codes only (a fee's currency)."""
    if not _missing(fields, "symbol"):
        return
    used = _used(fields)
    for profile in profiles:
        if profile.column in used or profile.numeric or not profile.count or profile.date is not None:
            continue
        codes = [value for value in profile.values if _CODE.fullmatch(value)]
        fiat = [code for code in codes if code in ISO_4217]
        if len(codes) >= 0.8 * profile.count and len(fiat) < 0.5 * len(codes):
            shown = ", ".join(sorted(set(codes))[:4])
            reason = f"no symbol column; '{profile.column}' holds asset codes ({shown})"
            fields["symbol"] = field_spec([profile.column], "text", {"upper": True}, 0.55, reason)
            return


_CODE = re.compile(r"[A-Z][A-Z0-9]{1,9}")
# An ISIN's shape (exports hold test ISINs whose check digit is off; the column is an ISIN column still).
_ISIN_SHAPE = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")


def _price_from_amount(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """No price column: price = |amount| ÷ quantity, from the column holding each trade's money amount."""
    if not _missing(fields, "price"):
        return
    quantity = fields.get("quantity") or {}
    if quantity.get("converter") != "decimal" or len(quantity.get("columns") or []) != 1:
        return
    by_column = _by_column(profiles)
    q = by_column[quantity["columns"][0]]
    used = _used(fields)
    candidates = [
        profile
        for profile in profiles
        if profile.numeric >= 0.5 * max(profile.count, 1)
        and profile.column not in used
        and any(word in profile.key.split() or profile.key.startswith(word) for word in AMOUNT_WORDS)
    ]
    if not candidates:
        return
    # The amount whose ratio to the quantity varies least in size across rows is the trade's value.
    amount = candidates[0]
    options: dict[str, Any] = {"abs": True}
    if amount.decimal_sep == "," or q.decimal_sep == ",":
        options["decimal_sep"] = ","
    reason = f"no price column; price = |'{amount.column}'| ÷ '{q.column}' (the amount includes any fees)"
    fields["price"] = field_spec([amount.column, q.column], "quotient", options, 0.6, reason)


def _currency_from_symbol(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """No currency: the symbols' exchange suffix ('SPYL.DE' -> EUR) or a pair's quote names it."""
    if not _missing(fields, "currency"):
        return
    columns = (fields.get("symbol") or {}).get("columns") or []
    if len(columns) != 1:
        return
    profile = _by_column(profiles)[columns[0]]
    codes = [exchange_currency_of(value) for value in profile.values]
    hits = [code for code in codes if code]
    if profile.count and len(hits) >= 0.8 * profile.count:
        shown = ", ".join(sorted(set(hits)))
        reason = f"no currency column; the exchange of the tickers in '{profile.column}' trades in {shown}"
        fields["currency"] = field_spec(columns, "exchange_currency", {}, 0.6, reason)


# 'Base Currency', 'Account currency:', 'Währung', 'Valuta' as the label of a preamble row.
_CURRENCY_LABEL = re.compile(
    r"(?:(?:base|account|reporting|portfolio|settlement) )?(?:currency|ccy|währung|devise|valuta|moneda|divisa|"
    r"měna|waluta)",
    re.IGNORECASE,
)


def _currency_from_context(fields: dict[str, Any], context: list[list[str]]) -> None:
    """No currency yet: a row outside the table that names one ('Base Currency,GBP', 'Currency: EUR')."""
    if not _missing(fields, "currency"):
        return
    for cells in context:
        for index, cell in enumerate(cells):
            label, _, after = cell.partition(":")
            if not _CURRENCY_LABEL.fullmatch(" ".join(label.split())):
                continue
            value = (after or (cells[index + 1] if index + 1 < len(cells) else "")).strip().upper()
            if value in ISO_4217:
                reason = f"no currency column; the file's heading says '{label.strip()}' {value}"
                fields["currency"] = field_spec([], "constant", {"value": value}, 0.5, reason)
                return


# 'GBP 0.4106', '@ USD 12.5', '1.20 EUR': a currency code written against a number (not a bare word such as TRY).
_CODE_BY_NUMBER = re.compile(r"(?<![A-Za-z])([A-Z]{3}) ?(?=[\d.])|(?<=\d) ?([A-Z]{3})(?![A-Za-z])")


def _currency_mentioned_in_context(fields: dict[str, Any], context: list[list[str]]) -> None:
    """No currency yet: the rows outside the table (a cash table above the trades, a summary) write one
    currency code, and only one, against their numbers ('DIV: FOO.XLON.GB @ GBP 0.4106')."""
    if not _missing(fields, "currency"):
        return
    seen: Counter = Counter()
    for cells in context:
        for cell in cells:
            for match in _CODE_BY_NUMBER.finditer(cell[:200]):
                code = match.group(1) or match.group(2)
                if code in ISO_4217:
                    seen[code] += 1
    if len(seen) == 1:
        code, count = seen.most_common(1)[0]
        reason = f"no currency column; the rows around the table write amounts in {code} ({count}×): check it"
        fields["currency"] = field_spec([], "constant", {"value": code}, 0.4, reason)


def _commission_not_the_total(fields: dict[str, Any], profiles: list[Profile], rows: list[list[str]]) -> None:
    """A 'Cost' column that equals quantity × price on the rows is the trade's total, not its commission."""
    commission, quantity, price = (fields.get(name) or {} for name in ("commission", "quantity", "price"))
    if not all(len(spec.get("columns") or []) == 1 for spec in (commission, quantity, price)):
        return
    by_column = _by_column(profiles)
    c, q, p = (by_column[spec["columns"][0]] for spec in (commission, quantity, price))
    totals = 0
    compared = 0
    for row in rows:
        fee, size, unit = (_number_in(row, x.index, x.decimal_sep) for x in (c, q, p))
        if fee is None or not size or not unit:
            continue
        compared += 1
        value = abs(size * unit)
        if value and abs(abs(fee) - value) <= value * Decimal("0.01"):
            totals += 1
    if compared >= 2 and totals >= compared * 0.8:
        del fields["commission"]


# Time zones that name one country's (or one currency area's) market: 'EDT' on every time is a US export.
_ZONE_CURRENCIES = {
    "USD": {"EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT", "ET", "CT", "MT", "PT"},
    "GBP": {"BST"}, "JPY": {"JST"}, "HKD": {"HKT"}, "SGD": {"SGT"}, "AUD": {"AEST", "AEDT", "ACST", "AWST"},
    "NZD": {"NZST", "NZDT"},
}  # fmt: skip


def _currency_from_time_zone(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """No currency yet: the trade times carry the abbreviation of one market's time zone ('09:31:02 EDT')."""
    if not _missing(fields, "currency"):
        return
    when = fields.get("executed_at") or {}
    by_column = _by_column(profiles)
    for column in when.get("columns") or []:
        zones = {value.rpartition(" ")[2] for value in by_column[column].values if " " in value}
        for code, names in _ZONE_CURRENCIES.items():
            if zones and zones <= names:
                reason = (
                    f"no currency column; the trade times are in {', '.join(sorted(zones))}: {code} assumed, check it"
                )
                fields["currency"] = field_spec([], "constant", {"value": code}, 0.3, reason)
                return


_CUSIP = re.compile(r"[0-9]{3}[0-9A-Z]{5}[0-9]")


def _currency_from_cusips(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """No currency yet: the securities are identified by CUSIPs (US and Canadian securities; Firstrade,
    Fidelity): USD, at the weakest confidence, check it."""
    if not _missing(fields, "currency"):
        return
    for profile in profiles:
        if "cusip" not in profile.key.split():
            continue
        filled = [value for value in profile.values if value]
        if filled and sum(1 for value in filled if _CUSIP.fullmatch(value)) >= 0.8 * len(filled):
            reason = (
                f"nothing in the file names a currency; '{profile.column}' holds CUSIPs (US securities): "
                "USD assumed, check it"
            )
            fields["currency"] = field_spec([], "constant", {"value": "USD"}, 0.3, reason)
            return


# Header words only one language uses, and the currency of the countries writing it: the weakest evidence
# for a currency, used when nothing in the file names one (confidence 0.3, the words named in the reason).
_LANGUAGE_WORDS = {
    "EUR": ("Dutch/German", {"aantal", "waarde", "koers", "omschrijving", "transactietype", "belasting", "anzahl",
                             "betrag", "wertpapier", "buchungstag", "gebühren", "stückzahl", "kosten"}),
    "SEK": ("Swedish", {"belopp", "värdepapper", "vardepapper", "transaktionstyp", "courtage"}),
    "DKK": ("Danish", {"beløb", "handelsdato", "værdipapir"}),
    "NOK": ("Norwegian", {"beløp", "verdipapir", "handelsdag"}),
    "CZK": ("Czech", {"počet", "pocet", "hodnota", "částka", "castka"}),
    "PLN": ("Polish", {"ilość", "ilosc", "kwota", "wartość", "wartosc"}),
}  # fmt: skip


def _currency_from_language(fields: dict[str, Any], profiles: list[Profile]) -> None:
    if not _missing(fields, "currency"):
        return
    words = {word for profile in profiles for word in profile.header.casefold().replace("(", " ").split()}
    for code, (language, vocabulary) in _LANGUAGE_WORDS.items():
        seen = sorted(words & vocabulary)
        if seen:
            reason = (
                f"nothing in the file names a currency; the headers are {language} ({', '.join(seen[:3])}): "
                f"{code} assumed, check it"
            )
            fields["currency"] = field_spec([], "constant", {"value": code}, 0.3, reason)
            return


# Columns naming the kind of instrument, and the kinds that are currency conversions rather than trades of
# a security (IBKR's 'Forex' rows: EUR.USD bought with USD).
_ASSET_CLASS_KEYS = {"asset category", "asset class", "assetclass", "asset type", "instrument type", "security type"}
_CONVERSION_KINDS = {"forex", "fx", "currency", "currencies", "cash", "fx conversion"}


def _skip_currency_conversions(filters: list[dict[str, Any]], profiles: list[Profile]) -> None:
    for profile in profiles:
        if profile.key not in _ASSET_CLASS_KEYS:
            continue
        kinds = {value for value in profile.values if value.casefold() not in _CONVERSION_KINDS}
        if kinds:
            # Also when the sample holds none: IBKR puts its Forex table after the stocks, past the sample.
            seen = {value for value in profile.values if value.casefold() in _CONVERSION_KINDS}
            values = sorted(seen | {"Forex", "Cash"}, key=str.casefold)
            filters.append({"column": profile.column, "op": "not_in", "values": values})
            return


def _currency_from_marks(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """No currency yet: the marks the money columns are written with ('$185.20', '-$1852.00' -> USD)."""
    if not _missing(fields, "currency"):
        return
    marks: dict[str, int] = {}
    columns: list[str] = []
    for profile in profiles:
        if profile.currency_marks and profile.numeric >= 0.5 * max(profile.count, 1):
            columns.append(profile.column)
            for code, n in profile.currency_marks.items():
                marks[code] = marks.get(code, 0) + n
    if len(marks) == 1:
        code = next(iter(marks))
        shown = ", ".join(f"'{column}'" for column in columns[:3])
        reason = f"no currency column; the amounts in {shown} are written in {code}"
        fields["currency"] = field_spec([], "constant", {"value": code}, 0.45, reason)


# Buy/sell as one letter, by language: B/S (English), K/V (Dutch koop/verkoop, German Kauf/Verkauf), A/V
# (French achat/vente), C/V (Spanish, Italian, Portuguese compra/venta), K/S (Swedish köp/sälj), N/P (Czech
# nákup/prodej). Both letters of a pair must appear, so a column of 'A'/'B' grades is not read as sides.
_LETTER_PAIRS = (("B", "S"), ("K", "V"), ("A", "V"), ("C", "V"), ("K", "S"), ("N", "P"))
_SIDE_HEADER_WORDS = {"side", "type", "typ", "action", "direction", "b s", "buy sell", "sens", "art", "richting"}


def _side_from_codes(fields: dict[str, Any], filters: list[dict[str, Any]], profiles: list[Profile]) -> None:
    """No side yet: a column of one-letter codes that pair up as buy/sell in a language ('K'/'V')."""
    side = fields.get("side") or {}
    if side.get("columns") and not (side.get("converter") == "side_from_sign" and side.get("confidence", 0) < 0.5):
        return
    for profile in profiles:
        if profile.numeric or not profile.count:
            continue
        letters = {value.strip().upper() for value in profile.values}
        for buy, sell in _LETTER_PAIRS:
            hits = sum(1 for value in profile.values if value.strip().upper() in (buy, sell))
            named = profile.key in _SIDE_HEADER_WORDS
            if {buy, sell} <= letters and (named or hits == profile.count) and hits >= 0.5 * profile.count:
                codes = {value.strip() for value in profile.values if value.strip().upper() in (buy, sell)}
                mapping = {code: ("BUY" if code.upper() == buy else "SELL") for code in sorted(codes)}
                reason = (
                    f"'{profile.column}' holds one-letter codes {buy}/{sell} ({hits}/{profile.count} samples): "
                    f"{buy} = buy, {sell} = sell"
                )
                fields["side"] = field_spec([profile.column], "side", {"map": mapping}, 0.7, reason)
                if hits < profile.count:
                    filters.append({"column": profile.column, "op": "in", "values": sorted(codes)})
                return


def _number_in(row: list[str], index: int, decimal_sep: str | None) -> Any:
    try:
        return parse_decimal(row[index], decimal_sep) if index < len(row) else None
    except ConversionError:
        return None


def _side_from_amount_sign(fields: dict[str, Any], profiles: list[Profile], rows: list[list[str]]) -> None:
    """No buy/sell column and unsigned quantities: the sign of the trade's money amount tells the side
    (Hargreaves Lansdown: 'Value' -150,006.84 for a buy, 44,988.05 for a sell): money paid out is a buy."""
    side = fields.get("side") or {}
    if side.get("columns") and not (side.get("converter") == "side_from_sign" and side.get("confidence", 0) < 0.5):
        return
    quantity = fields.get("quantity") or {}
    if quantity.get("converter") != "decimal" or len(quantity.get("columns") or []) != 1:
        return
    by_column = _by_column(profiles)
    q = by_column[quantity["columns"][0]]
    for amount in profiles:
        if amount is q or not amount.numeric or not any(word in amount.key.split() for word in AMOUNT_WORDS):
            continue
        signs = []
        for row in rows:
            size, money = _number_in(row, q.index, q.decimal_sep), _number_in(row, amount.index, amount.decimal_sep)
            if size and money:
                signs.append(money < 0)
        if signs and any(signs) and (not all(signs) or len(signs) >= 3):
            paid = sum(signs)
            reason = (
                f"no buy/sell column and '{q.column}' is never negative; '{amount.column}' is negative on "
                f"{paid} of {len(signs)} trade rows: money paid out = BUY, received = SELL"
            )
            fields["side"] = _side_spec([amount], "side_from_sign", {"negative_is": "BUY"}, reason)
            return


# Header pairs naming money paid out and money received, each as a column of its own.
_MONEY_OUT_IN = (
    ("debit", "credit"), ("paid out", "paid in"), ("money out", "money in"), ("outflow", "inflow"),
    ("soll", "haben"), ("debet", "credit"), ("af", "bij"), ("débit", "crédit"), ("cargo", "abono"),
    ("uscite", "entrate"), ("withdrawals", "deposits"),
)  # fmt: skip


def _side_spec(columns: list[Profile], converter: str, options: dict[str, Any], reason: str) -> dict[str, Any]:
    """A side read from money columns (at confidence 0.6), with their decimal comma when they use one."""
    if columns[0].decimal_sep == ",":
        options = {**options, "decimal_sep": ","}
    return field_spec([profile.column for profile in columns], converter, options, 0.6, reason)


def _side_from_money_columns(fields: dict[str, Any], profiles: list[Profile], rows: list[list[str]]) -> None:
    """No buy/sell column and unsigned quantities, but the money goes to one of two columns (Interactive
    Investor: 'Debit' for a buy, 'Credit' for a sale): the column a trade row fills tells its side."""
    side = fields.get("side") or {}
    if side.get("columns") and not (side.get("converter") == "side_from_sign" and side.get("confidence", 0) < 0.5):
        return
    quantity = fields.get("quantity") or {}
    if len(quantity.get("columns") or []) != 1:
        return
    by_column = _by_column(profiles)
    q = by_column[quantity["columns"][0]]
    by_key = {profile.key: profile for profile in profiles if profile.key}
    for out_word, in_word in _MONEY_OUT_IN:
        out = next((p for key, p in by_key.items() if key == out_word or key.startswith(out_word + " ")), None)
        into = next((p for key, p in by_key.items() if key == in_word or key.startswith(in_word + " ")), None)
        if out is None or into is None or out is into:
            continue
        sides = []
        for row in rows:
            if not _number_in(row, q.index, q.decimal_sep):
                continue
            paid, received = (bool(_number_in(row, p.index, p.decimal_sep)) for p in (out, into))
            sides.append("BUY" if paid and not received else "SELL" if received and not paid else None)
        if len(sides) >= 2 and sides.count(None) <= len(sides) * 0.2:
            reason = (
                f"no buy/sell column and '{q.column}' is never negative; trade rows put their money in "
                f"'{out.column}' ({sides.count('BUY')}×: BUY) or '{into.column}' ({sides.count('SELL')}×: SELL)"
            )
            fields["side"] = _side_spec([out, into], "side_from_columns", {"first_is": "BUY"}, reason)
            return


def _skip_rows_without_quantity(
    fields: dict[str, Any], filters: list[dict[str, Any]], profiles: list[Profile], rows: list[list[str]]
) -> None:
    """No filter yet and rows whose quantity is 'n/a', '-' or empty beside rows with a number (fees,
    interest, deposits in a table of trades): those rows are skipped, never invalid."""
    quantity = fields.get("quantity") or {}
    if filters or quantity.get("converter") != "decimal" or len(quantity.get("columns") or []) != 1:
        return
    q = _by_column(profiles)[quantity["columns"][0]]
    cells = [row[q.index].strip() if q.index < len(row) else "" for row in rows]
    placeholders = sorted({cell for cell in cells if cell.casefold() in PLACEHOLDERS})
    if not placeholders or not q.numeric:
        return
    written = [cell for cell in placeholders if cell]
    if written:
        filters.append({"column": q.column, "op": "not_in", "values": written})
    if "" in placeholders:
        filters.append({"column": q.column, "op": "not_empty"})


# Rows that record an order that never happened or was undone: skipped, never imported as a trade.
CANCEL_WORDS = frozenset(
    "cancelled canceled cancel cancellation storniert storno annulé annulée annule annulation anulado anulada "
    "cancelado cancelada geannuleerd annullato annullata zrušeno zruseno rejected expired reversed reversal "
    "void voided".split()
)


def _skip_cancelled(filters: list[dict[str, Any]], profiles: list[Profile]) -> None:
    for profile in profiles:
        if profile.numeric or not profile.count:
            continue
        cancelled = sorted({value for value in profile.values if value.strip().casefold() in CANCEL_WORDS})
        if cancelled and len(cancelled) < len(set(profile.values)):
            if not any(rule.get("column") == profile.column and rule.get("op") == "in" for rule in filters):
                filters.append({"column": profile.column, "op": "not_in", "values": cancelled})


def _varying_trade_date(fields: dict[str, Any], profiles: list[Profile]) -> None:
    """A date column with one value on every row is the export's date, not the trades': another date
    column whose values vary is taken instead (its formats as the suggestion guessed them)."""
    spec = fields.get("executed_at") or {}
    columns = spec.get("columns") or []
    if not columns:
        return
    by_column = _by_column(profiles)
    chosen = by_column[columns[0]]
    if chosen.count < 3 or len(set(chosen.values)) != 1:
        return
    used = _used(fields)
    for profile in profiles:
        guess = profile.date
        if profile.column in used or guess is None or guess.ratio < 0.8 or len(set(profile.values)) < 2:
            continue
        reason = (
            f"'{chosen.column}' holds the same date on every row (the export's date); '{profile.column}' holds "
            f"dates that vary ({', '.join(guess.formats)})"
        )
        fields["executed_at"] = field_spec(
            [profile.column], "datetime", {"formats": guess.formats, "tz": "UTC"}, 0.7, reason
        )
        return
