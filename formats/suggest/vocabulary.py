"""What headers say: synonym strengths, words that rule a field out, score thresholds, header normalisation."""

from __future__ import annotations

import re
import unicodedata

ISO_CURRENCIES = frozenset(
    "AED ARS AUD BGN BRL CAD CHF CLP CNH CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR ISK JPY KES KRW KWD "
    "MAD MXN MYR NGN NOK NZD PEN PHP PKR PLN QAR RON RSD RUB SAR SEK SGD THB TRY TWD UAH USD VND ZAR".split()
)

# Synonyms too generic to be sure of on their own: an exact match counts less than a specific one.
WEAK = {
    "symbol": {
        "product",
        "produkt",
        "produit",
        "stock",
        "security",
        "securities",
        "instrument",
        "investment",
        "bezeichnung",
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
    "quantity": {"amount", "volume", "vol", "nominal", "size", "lots"},
    "price": {"rate", "cours"},
    "commission": {"costs", "charges", "kosten", "fees", "fee"},
    "executed_at": {"date", "time", "datum", "tijd", "data", "zeit", "heure", "hora", "ora", "tid", "cas"},
    "broker_trade_id": {"id", "reference", "ref", "order"},
    "account": {"portfolio", "depot"},
}
# Header words that mean "not this field" ('Settlement Date' is no execution time, 'Exchange rate' no price).
NEGATIVE = {
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
        "fiat",
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
        "price",
        "qty",
        "quantity",
        "amount",
        "time",
        "date",
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
VALUE_STRENGTH = {
    "executed_at": 0.6,
    "side": 0.7,
    "currency": 0.6,
    "symbol": 0.35,
    "quantity": 0.15,
    "price": 0.15,
    "commission": 0.1,
    "broker_trade_id": 0.3,
    "account": 0.05,
    # instruments
    "isin": 0.7,
    "ticker": 0.35,
    "mic": 0.5,
    "name": 0.05,
    "asset_class": 0.05,
    "aliases": 0.05,
}
MIN_SCORE = {"account": 0.5, "commission": 0.45, "broker_trade_id": 0.5}
DEFAULT_MIN_SCORE = 0.3

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NON_WORD = re.compile(r"[\W_]+")


MAX_HEADER_KEY = 120


def learned_key(header_cell: str) -> str:
    """The normalised header text used as key of learned evidence (and for synonym matching).

    No header names a field in more than MAX_HEADER_KEY characters: a longer cell is cut, so fuzzy matching
    against the synonyms stays cheap whatever a file's header holds."""
    text = _CAMEL.sub(" ", header_cell.replace("\ufeff", "")[:MAX_HEADER_KEY])
    text = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    return _NON_WORD.sub(" ", text.casefold()).strip()


def compact_key(text: str) -> str:
    """The text without spaces ('trade id' and 'tradeid' compare equal)."""
    return text.replace(" ", "")
