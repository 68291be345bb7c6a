"""Readable names for new formats: the broker or platform when its header says so, else the target and the
columns its mapping reads ('Orders: Trade Date, Ticker, Buy or Sell, Shares, Fill Price'), never the name
of the first file uploaded (that stays on the format as first_seen_file_name)."""

from __future__ import annotations

from typing import Any

from formats.targets import get_target

# Column names only one platform's exports use, all of a set together (compared case-insensitively): the
# header says which platform it is. A header matching none is named by its columns instead.
PLATFORM_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(columns.split("|")))
    for name, columns in (
        ("Interactive Brokers", "datadiscriminator|asset category"),
        ("Interactive Brokers", "currencyprimary|buy/sell"),
        ("Interactive Brokers", "currencyprimary|type|settledate"),
        ("Trading 212", "no. of shares|price / share"),
        ("eToro", "position id|realized equity change"),
        ("Binance", "utc_time|operation|coin|change"),
        ("Coinbase", "quantity transacted|price at transaction"),
        ("Coinbase Pro", "amount/balance unit|trade id|order id"),
        ("Charles Schwab", "action|symbol|fees & comm"),
        ("Fidelity", "run date|action|symbol"),
        ("DEGIRO", "product|isin|venue|order id"),
        ("DEGIRO", "datum|product|isin|omschrijving|mutatie"),
        ("Crypto.com", "transaction kind|native amount"),
        ("Bitvavo", "quote currency|received / paid currency"),
        ("Freetrade", "price per share in account currency"),
        ("Swissquote", "order #|unit price|accrued interest"),
        ("Saxo", "client id|instrument isin|instrument symbol"),
        ("tastytrade", "root symbol|underlying symbol"),
        ("KuCoin", "tradecreatedat|feecurrency"),
        ("Avanza", "typ av transaktion|värdepapper/beskrivning"),
    )
)
# Platforms a line above the table may name ('Trading 212 account statement', 'IBKR activity'), as whole
# words, case-insensitively. Only the file's context (its preamble, other sections' cells) is read, never the
# rows: a trade's description may name anything.
PLATFORM_WORDS: tuple[tuple[str, str], ...] = tuple(
    dict.fromkeys(
        [(name.casefold(), name) for name, _ in PLATFORM_SIGNATURES]
        + [("ibkr", "Interactive Brokers"), ("schwab", "Charles Schwab"), ("degiro", "DEGIRO")]
    )
)
_MAX_CONTEXT_CELLS = 200
_KEY_FIELDS = ("executed_at", "symbol", "side", "quantity", "price")
MAX_NAME = 200


def platform_of(header: list[str]) -> str | None:
    """The platform whose signature columns the header holds, if any."""
    cells = {" ".join(cell.split()).casefold() for cell in header if cell}
    for name, signature in PLATFORM_SIGNATURES:
        if signature <= cells:
            return name
    return None


def platform_named_in(context: list[list[str]]) -> str | None:
    """The platform a cell above the table names as whole words ('Trading 212 - Account statement'), if any
    (linear in the cells read: each is reduced to its words once, then looked up by substring)."""
    cells = [cell for row in context for cell in row if cell][:_MAX_CONTEXT_CELLS]
    for cell in cells:
        words = (
            " " + " ".join("".join(ch if ch.isalnum() or ch == "." else " " for ch in cell.casefold()).split()) + " "
        )
        for word, name in PLATFORM_WORDS:
            if f" {word} " in words:
                return name
    return None


def readable_format_name(
    *,
    target: str,
    header: list[str],
    mapping: dict[str, Any],
    section: str | None = None,
    context: list[list[str]] | None = None,
) -> str:
    """'Trading 212 orders (19 columns)', or 'Orders: Trade Date, Ticker, Buy or Sell, Shares, Fill Price'.

    The platform comes from the header's distinctive columns, else from a line above the table naming it."""
    label = get_target(target).name.capitalize()
    where = f" [{section}]" if section else ""
    platform = platform_of(header) or platform_named_in(context or [])
    if platform:
        return f"{platform} {label.lower()}{where} ({len(header)} columns)"[:MAX_NAME]
    fields = mapping.get("fields") or {}
    columns: list[str] = []
    for name in _KEY_FIELDS:
        for column in (fields.get(name) or {}).get("columns") or []:
            if column not in columns:
                columns.append(column)
    if not columns:
        columns = [cell for cell in header if cell][:5]
    shown = ", ".join(columns[:6]) + (", …" if len(columns) > 6 else "")
    return f"{label}{where}: {shown}"[:MAX_NAME]
