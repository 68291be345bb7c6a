"""Derived values: a field read out of a cell that holds more than that field.

A closed set the admin sees and can change, no user regex, no eval, each a single left-to-right pass:
- `trade_text`: side, quantity, price or currency from an order description such as 'Koop 1 @ 33,9 USD'
  (DEGIRO), 'OPEN BUY 34/42.5658 @ 11.7480' (XTB) or 'Bought 1,550 Foo ETF (FOO)';
- `pair`: the base or the quote of a trading pair ('BTC-USDT', 'ETH/EUR', 'ETHUSD', 'BINANCE:BTCUSDT');
- `unit`: the asset or currency code of a number-plus-unit cell ('2.00000000 ETH', '€35.20', '50 SEK');
- `exchange_currency`: the currency a ticker trades in, from its exchange suffix ('SPYL.DE' -> EUR) or a
  pair's quote;
- `isin`: the ISIN inside a cell such as 'APPLE INC / US0378331005' (else the cell as it is).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from config.errors import ConversionError
from formats.converters.currencies import CRYPTO_3, ISO_4217, currency_problem
from formats.converters.numbers import CURRENCY_MARKS, parse_decimal
from formats.converters.types import TextCleaner
from formats.converters.words import CURRENCY_SYMBOLS, side_of

PRICE_MARKERS = frozenset({"@", "at", "à", "a", "zu", "za", "till", "til", "kurs", "koers", "prix", "prezzo"})
TRADE_TEXT_PARTS = ("side", "quantity", "price", "currency", "name")
# One-letter sides only as the first word of a '<B|S> <quantity> <name> @ <price>' text (upper case).
_LEADING_SIDE_CODES = {"B": "BUY", "S": "SELL"}


def _number(token: str, decimal_sep: str | None) -> Decimal | None:
    """The number a token starts with ('34/42.5658' -> 34, '1,550' -> 1550, '$12.50' -> 12.50), or None."""
    token = token.strip("()[],;:")
    head = token.split("/", 1)[0]
    if not head or not any(char.isdigit() for char in head):
        return None
    try:
        return parse_decimal(head, decimal_sep)
    except ConversionError:
        return None


def _currency_token(token: str) -> str | None:
    """A currency named by a token: a code ('USD', 'eur.') or a mark ('$', '€')."""
    token = token.strip("()[],;:.")
    if token in CURRENCY_SYMBOLS:
        return CURRENCY_SYMBOLS[token]
    code = token.upper()
    if len(code) == 3 and code.isalpha() and code in ISO_4217:
        return code
    return None


def parse_trade_text(text: str, decimal_sep: str | None = None) -> dict[str, Any]:
    """The parts of an order description: {'side', 'quantity', 'price', 'currency', 'name'} (those found).

    The side is the first word naming a buy or a sell; the quantity the first number after it; the price
    the number after '@' (or a word such as 'at', 'zu', 'à'); the currency a code or mark next to the price;
    the name the other words after the side (upper-cased). Without a side word, '<name> <quantity> @ <price>'.
    """
    tokens = text.replace("@", " @ ").split()  # 'AVIVA@496 GBX'
    found: dict[str, Any] = {}
    start = None
    for index, token in enumerate(tokens):
        if token.endswith(":") or token == ":":
            # 'STOCK DIVIDEND: Koop 999 @ 0', 'PRODUCTWIJZIGING : Verkoop 500 @ 0,039': a corporate action
            # described as a buy or a sell, not a trade.
            return found
        word = token.strip("()[],;:.")
        side = side_of(word) if len(word) > 2 else None  # 'b' or 's' inside a description is no side
        if index == 0 and word in _LEADING_SIDE_CODES and "@" in tokens and _number(tokens[1], decimal_sep) is not None:
            side = _LEADING_SIDE_CODES[word]  # CommSec: 'B 100 CBA @ 115.50', 'S 200 BHP @ 44.10'
        if side is not None:
            found["side"], start = side, index + 1
            break
    name: list[str] = []
    if start is None:
        # No side word: '<name> <quantity> @ <price>' ('Vanguard FTSE Developed World UCITS ETF 1000 @ 4500.00')
        at = tokens.index("@") if "@" in tokens else -1
        if at < 1 or _number(tokens[at - 1], decimal_sep) is None:
            return found  # ('10@172.50', moomoo's 'Filled@Avg Price': a quantity and a price, no name)
        start, name = at - 1, tokens[: at - 1]
    price_at = None
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.casefold() in PRICE_MARKERS and "quantity" in found:
            price_at = index + 1
            break
        if "quantity" not in found:
            number = _number(token, decimal_sep)
            if number is not None:
                found["quantity"] = abs(number)
                continue
        if "side" in found:
            name.append(token)  # 'Sell 4 AVIVA@496 GBX', 'Bought 1,550 Foo ETF (FOO)'
    if name:
        found["name"] = " ".join(name).upper()
    if price_at is not None and price_at < len(tokens):
        token = tokens[price_at]
        if price_at + 1 < len(tokens) and _number(token, decimal_sep) is None:
            # '@ USD 12.50': the currency first
            found["currency"] = _currency_token(token)
            price_at += 1
            token = tokens[price_at]
        price = _number(token, decimal_sep)
        if price is not None:
            found["price"] = abs(price)
            mark = token.lstrip("+-")[:1]
            if mark in CURRENCY_MARKS and "currency" not in found:
                found["currency"] = CURRENCY_SYMBOLS.get(mark)
            if price_at + 1 < len(tokens) and not found.get("currency"):
                found["currency"] = _currency_token(tokens[price_at + 1])
    if not found.get("currency"):
        found.pop("currency", None)
    return found


def trade_text_builder(options: dict[str, Any]) -> TextCleaner:
    """One part of an order description ('take': side, quantity, price or currency)."""
    take = options["take"]
    decimal_sep = options.get("decimal_sep")

    def convert(text: str) -> Any:
        value = parse_trade_text(text, decimal_sep).get(take)
        if value is None:
            raise ConversionError(
                f"no {take} in '{text[:80]}': expected an order description such as 'Buy 10 @ 12.50 USD'"
            )
        return value

    return convert


# Quote codes a pair can end with, longest first so 'USDT' wins over 'USD' in 'BTCUSDT'.
PAIR_QUOTES = sorted(
    {"USDT", "USDC", "BUSD", "TUSD", "FDUSD", "DAI", "EUR", "USD", "GBP", "CHF", "JPY", "AUD", "CAD", "TRY", "BRL"}
    | {"BTC", "ETH", "BNB", "XBT", "ZEUR", "ZUSD", "ZGBP", "PLN", "SEK", "NOK", "DKK", "CZK", "HUF", "SGD", "KRW"},
    key=len,
    reverse=True,
)
_KRAKEN = {"XBT": "BTC", "XDG": "DOGE"}
_KRAKEN_CRYPTO = frozenset({"XBT", "XDG", "ETH", "LTC", "XRP", "XLM", "XMR", "ZEC", "ETC", "REP", "MLN"})


def asset_code(text: str) -> str:
    """An asset's code with Kraken's legacy prefixes unwrapped: X for crypto, Z for fiat ('XXBT' -> 'BTC',
    'XETH' -> 'ETH', 'ZEUR' -> 'EUR', 'XBT' -> 'BTC'); any other code as it is (upper-cased)."""
    code = text.strip().upper()
    if len(code) == 4 and code.isalpha():
        rest = code[1:]
        if (code[0] == "Z" and rest in ISO_4217) or (code[0] == "X" and rest in _KRAKEN_CRYPTO):
            code = rest
    return _KRAKEN.get(code, code)


def split_pair(text: str) -> tuple[str, str] | None:
    """('BTC', 'USDT') from 'BTC-USDT', 'BTC/USDT', 'BTC_USDT', 'BINANCE:BTCUSDT' or 'BTCUSDT'; else None."""
    value = text.strip().upper()
    if ":" in value:
        value = value.rsplit(":", 1)[1]  # an exchange prefix
    for separator in ("-", "/", "_"):
        if value.count(separator) == 1:
            base, quote = (part.strip() for part in value.split(separator))
            if base.isalnum() and quote.isalnum() and 1 <= len(base) <= 12 and 2 <= len(quote) <= 6:
                return asset_code(base), asset_code(quote)
            return None
    if not value.isalnum() or len(value) > 16:
        return None
    for quote in PAIR_QUOTES:
        if value.endswith(quote) and len(value) - len(quote) >= 2:
            return asset_code(value[: -len(quote)]), asset_code(quote)
    return None


def pair_builder(options: dict[str, Any]) -> TextCleaner:
    """The base ('take': 'base') or the quote ('take': 'quote') of a trading pair."""
    index = 0 if options["take"] == "base" else 1

    def convert(text: str) -> str:
        pair = split_pair(text)
        if pair is None:
            raise ConversionError(f"'{text[:80]}' is not a trading pair such as BTC-USDT, ETH/EUR or ETHUSD")
        return pair[index]

    return convert


def unit_of(text: str) -> str | None:
    """The code or mark written with a number: '2.00000000 ETH' -> ETH, '€35.20' -> EUR, '12' -> None."""
    value = text.strip()
    if not any(char.isdigit() for char in value):
        return None
    letters = [token for token in value.replace("(", " ").replace(")", " ").split() if token.isalpha()]
    if len(letters) == 1 and 2 <= len(letters[0]) <= 10 and letters[0].isupper():
        return letters[0]
    for mark, code in sorted(CURRENCY_SYMBOLS.items(), key=lambda item: -len(item[0])):
        if not mark.isalpha() and mark in value:
            return code
    return None


def unit_builder(options: dict[str, Any]) -> TextCleaner:
    def convert(text: str) -> str:
        unit = unit_of(text)
        if unit is None:
            raise ConversionError(f"'{text[:80]}' has no unit: expected a number with a code such as '2.5 ETH'")
        return unit

    return convert


# Exchange suffixes of tickers (Yahoo/Bloomberg style) and the currency their listings trade in.
EXCHANGE_CURRENCIES = {
    "DE": "EUR", "F": "EUR", "XETRA": "EUR", "PA": "EUR", "AS": "EUR", "MI": "EUR", "MC": "EUR", "BR": "EUR",
    "HE": "EUR", "VI": "EUR", "LS": "EUR", "IR": "EUR", "L": "GBP", "LN": "GBP", "UK": "GBP", "US": "USD",
    "N": "USD", "OQ": "USD", "SW": "CHF", "S": "CHF", "VX": "CHF", "ST": "SEK", "CO": "DKK", "OL": "NOK",
    "TO": "CAD", "V": "CAD", "AX": "AUD", "HK": "HKD", "T": "JPY", "WA": "PLN", "PR": "CZK", "BD": "HUF",
    "SI": "SGD", "NZ": "NZD", "JO": "ZAR", "SA": "BRL", "MX": "MXN", "IS": "TRY", "KS": "KRW", "TW": "TWD",
}  # fmt: skip


def exchange_currency_of(text: str) -> str | None:
    """'SPYL.DE' -> EUR, 'VOD.L' -> GBP, 'BTC-EUR' -> EUR; None when the ticker names no exchange."""
    value = text.strip().upper()
    if "." in value:
        suffix = value.rsplit(".", 1)[1]
        if suffix in EXCHANGE_CURRENCIES:
            return EXCHANGE_CURRENCIES[suffix]
    pair = split_pair(value)
    if pair is not None and currency_problem(pair[1]) is None and (pair[1] in ISO_4217 or pair[1] in CRYPTO_3):
        return pair[1]
    return None


def exchange_currency_builder(options: dict[str, Any]) -> TextCleaner:
    def convert(text: str) -> str:
        code = exchange_currency_of(text)
        if code is None:
            raise ConversionError(
                f"'{text[:80]}' names no exchange: expected a ticker with a suffix such as 'SPYL.DE' or a pair"
            )
        return code

    return convert


def isin_in(text: str) -> str | None:
    """The ISIN inside a cell ('APPLE INC / US0378331005' -> 'US0378331005'), checked by its check digit."""
    for token in text.replace("/", " ").replace("(", " ").replace(")", " ").replace(",", " ").split():
        candidate = token.strip().upper()
        if len(candidate) == 12 and candidate[:2].isalpha() and candidate.isalnum() and isin_valid(candidate):
            return candidate
    return None


def isin_valid(code: str) -> bool:
    """The ISIN check digit (Luhn over the letters expanded to numbers)."""
    if len(code) != 12 or not code[-1].isdigit():
        return False
    digits = "".join(str(int(char, 36)) for char in code[:-1])
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char) * (2 if position % 2 == 0 else 1)
        total += number // 10 + number % 10
    return (10 - total % 10) % 10 == int(code[-1])


def isin_builder(options: dict[str, Any]) -> TextCleaner:
    def convert(text: str) -> str:
        return isin_in(text) or text.strip()

    return convert
