"""Words and codes: buy/sell vocabularies, lookup tables, currencies, and plain text."""

from __future__ import annotations

import re
from typing import Any

from config.errors import ConversionError
from formats.converters.currencies import currency_problem
from formats.converters.numbers import QUOTIENT_JOINER, decimal_builder
from formats.converters.types import PLACEHOLDERS, TextCleaner

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
        "kjøpt",
        "købt",
        "køb",
        "köpa",
        "osto",
        "ostettu",
        "comprado",
        "acquistato",
        "kupno",
        "kupiono",
        "alış",
        "покупка",
        "買付",
        "買い",
        "买入",
        "買入",
        "reinvestment",
        "reinvested",
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
        "såld",
        "sålda",
        "solgt",
        "sælg",
        "myyty",
        "vendido",
        "venduto",
        "sprzedano",
        "satış",
        "продажа",
        "売付",
        "売り",
        "卖出",
        "賣出",
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
# Platforms that report positions (eToro, CFD brokers) name the opening and the closing of one. Read as a
# long position's buy and sell only by a suggestion, spelled out in its side map for the admin to check (a
# short position opens with a sell): the side converter itself never guesses them.
POSITION_SIDES = {
    "open position": "BUY",
    "position opened": "BUY",
    "opened position": "BUY",
    "position closed": "SELL",
    "close position": "SELL",
    "closed position": "SELL",
}
# Words recognised inside longer values ('Market buy', 'BUY - MARKET', 'YOU BOUGHT ...', 'Stocks/ETF sale').
_BUY_TOKENS = frozenset(word for word in BUY_WORDS if len(word) > 2 and " " not in word)
_SELL_TOKENS = frozenset(word for word in SELL_WORDS if len(word) > 2 and " " not in word)
# Buy words only as the first word: 'Reinvest Shares' buys, 'Qual Div Reinvest' is the dividend's cash.
_LEADING_BUY_WORDS = frozenset({"reinvest"})
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
    found = _WORD.findall(value)
    words = set(found)
    buy, sell = bool(words & _BUY_TOKENS), bool(words & _SELL_TOKENS)
    # A value that starts with its side ('REINVESTMENT VANGUARD ... TAX EXEMPT BD', 'Reinvest Shares'), unless
    # the next word says otherwise ('Reinvest Dividend'): later words name the security, not the kind of row.
    if found and (len(found) < 2 or found[1] not in NON_TRADE_WORDS):
        buy = buy or found[0] in _LEADING_BUY_WORDS
        if found[0] in _BUY_TOKENS | _SELL_TOKENS | _LEADING_BUY_WORDS and buy != sell:
            return "BUY" if buy else "SELL"
    if words & NON_TRADE_WORDS:
        return None
    if buy != sell:
        return "BUY" if buy else "SELL"
    return None


def side_builder(options: dict[str, Any]) -> TextCleaner:
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


def side_from_sign_builder(options: dict[str, Any]) -> TextCleaner:
    """BUY or SELL from the sign of a number."""
    negative = options.get("negative_is", "SELL").upper()
    positive = "BUY" if negative == "SELL" else "SELL"
    parse = decimal_builder({"decimal_sep": options["decimal_sep"]} if "decimal_sep" in options else {})

    def convert(text: str) -> str:
        number = parse(text)
        if number == 0:
            raise ConversionError(f"'{text}' is zero: cannot tell buy from sell")
        return negative if number < 0 else positive

    return convert


def side_from_columns_builder(options: dict[str, Any]) -> TextCleaner:
    """BUY or SELL from which of two money columns a row fills ('Debit' / 'Credit', 'Paid out' / 'Paid in'):
    the two cells arrive joined by QUOTIENT_JOINER; the first column's side is `first_is` (default BUY: money
    paid out buys)."""
    first = options.get("first_is", "BUY").upper()
    second = "SELL" if first == "BUY" else "BUY"
    parse = decimal_builder({"decimal_sep": options["decimal_sep"]} if "decimal_sep" in options else {})

    def filled(text: str) -> bool:
        value = text.strip()
        if not value or value.casefold() in PLACEHOLDERS:
            return False
        try:
            return parse(value) != 0
        except ConversionError:
            return False

    def convert(text: str) -> str:
        parts = text.split(QUOTIENT_JOINER)
        if len(parts) != 2:
            raise ConversionError("needs two columns (money out, money in)")
        out, into = filled(parts[0]), filled(parts[1])
        if out == into:
            shown = " / ".join(part.strip()[:30] or "empty" for part in parts)
            raise ConversionError(f"'{shown}': exactly one of the two columns must hold an amount to tell the side")
        return first if out else second

    return convert


def map_builder(options: dict[str, Any]) -> TextCleaner:
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


def currency_builder(options: dict[str, Any]) -> TextCleaner:
    """3-letter currency codes from codes, symbols or amounts."""
    extra = {key.strip().upper(): value.upper() for key, value in options.get("map", {}).items()}

    def convert(text: str) -> str:
        value = text.upper()
        code = extra.get(value) or CURRENCY_SYMBOLS.get(value) or value
        if currency_problem(code) is not None:
            code = currency_in_amount(value) or code
        problem = currency_problem(code)
        if problem is not None:
            raise ConversionError(problem)
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


_NUMBER_WORD = re.compile(r"[-+]?\d[\d.,']*")


def drop_trailing_numbers(value: str) -> str:
    """'ACME ETF 1000 12.5' -> 'ACME ETF': whitespace-separated numbers at the end removed, the first word kept.

    Walks words from the right, each character looked at once, so it is linear in the length of the text
    where a regex with a repeated group searched from every position was quadratic."""
    end = len(value)
    while end > 0 and value[end - 1].isspace():
        end -= 1
    kept = end
    while True:
        start = end
        while start > 0 and not value[start - 1].isspace():
            start -= 1
        if start == 0 or not _NUMBER_WORD.fullmatch(value, start, end):
            return value[:kept]
        end = start
        while end > 0 and value[end - 1].isspace():
            end -= 1
        kept = end


def text_builder(options: dict[str, Any]) -> TextCleaner:
    """Trimmed text, optionally upper-cased and without trailing numbers."""
    upper = options.get("upper", False)
    if options.get("drop_trailing_numbers", False):

        def text(value: str) -> str:
            value = drop_trailing_numbers(value).strip()
            return value.upper() if upper else value

        return text
    if upper:
        return str.upper
    return str
