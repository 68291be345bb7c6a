"""Target schemas: the production tables a CSV can be mapped onto, with their fields and header synonyms.

Schema only (no Django models): the mapping suggestion, the admin and the converters read it; the
model that stores rows of a target lives in `imports/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.errors import MappingError

KINDS = ("text", "side", "decimal", "currency", "datetime")


@dataclass(frozen=True)
class TargetField:
    """One field of a target: its kind, whether it is required, and header synonyms for suggestions."""

    name: str
    kind: str
    required: bool
    label: str
    synonyms: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Target:
    """A production table a CSV can be imported into. `trades`: its rows are trades, so the suggestion's trade
    derivations (a side from a signed amount, a symbol from a description...) and the "holds no trades" verdict
    apply to it."""

    name: str
    label: str
    fields: tuple[TargetField, ...]
    trades: bool = False

    def field(self, name: str) -> TargetField:
        """The field with this name; MappingError if the target has none."""
        for field in self.fields:
            if field.name == name:
                return field
        known = ", ".join(field.name for field in self.fields)
        raise MappingError(f"Target '{self.name}' has no field '{name}'. Fields: {known}.", details={"field": name})

    def required_fields(self) -> tuple[TargetField, ...]:
        """The fields every row must have."""
        return tuple(field for field in self.fields if field.required)


# Synonyms are matched against header cells after normalisation (lower case, accents removed,
# punctuation collapsed to spaces; camelCase split), so 'Comm/Fee', 'comm fee' and 'CommFee' all match.
# They include real broker headers from the corpus (Avanza, DEGIRO, IBKR, Schwab, Trading 212...).
_ACCOUNT = (
    "account",
    "account number",
    "account no",
    "account id",
    "account name",
    "accountid",
    "acct",
    "client account id",
    "clientaccountid",
    "client id",
    "account alias",
    "portfolio",
    "konto",
    "kontonummer",
    "rekening",
    "rekeningnummer",
    "depot",
    "depotnummer",
    "compte",
    "numero de compte",
    "ucet",
    "cuenta",
    "conto",
)
_SYMBOL = (
    "symbol",
    "ticker",
    "ticker symbol",
    "instrument symbol",
    "symbole",
    "simbolo",
    "symbool",
    "product",
    "produkt",
    "produit",
    "stock",
    "stock symbol",
    "security",
    "security symbol",
    "securities",
    "instrument",
    "instrument name",
    "security name",
    "investment",
    "investment name",
    "fund name",
    "wkn",
    "bezeichnung",
    "wertpapierbezeichnung",
    "värdepapper",
    "vardepapper",
    "värdepapper beskrivning",
    "asset",
    "coin",
    "code",
    "underlying symbol",
    "root symbol",
    "fondsname",
    "titel",
    "titre",
    "valeur",
    "wertpapier",
    "aktie",
    "cenny papir",
    "tikr",
    "market symbol",
    "epic",
    "pair",
    "trading pair",
    "market",
)
_SIDE = (
    "action",
    "side",
    "buy sell",
    "buy/sell",
    "type",
    "transaction type",
    "trade type",
    "order type side",
    "transactietype",
    "type transactie",
    "soort",
    "typ av transaktion",
    "transaktionstyp",
    "typ",
    "operation",
    "direction",
    "buy or sell",
    "b s",
    "bs",
    "activity",
    "transaction",
    "type de transaction",
    "sens",
    "operation type",
    "tipo",
    "tipo de operacion",
    "tipo operazione",
    "segno",
    "kauf verkauf",
    "art",
    "transaktionsart",
    "buchungsart",
    "typ transakce",
    "smer",
    "trade side",
    "order side",
    "event",
)
_QUANTITY = (
    "qty",
    "quantity",
    "shares",
    "units",
    "no of shares",
    "number of shares",
    "amount of shares",
    "antal",
    "aantal",
    "pocet",
    "počet",
    "quantité",
    "quantite",
    "anzahl",
    "stuck",
    "stück",
    "cantidad",
    "quantita",
    "quantità",
    "size",
    "filled qty",
    "filled quantity",
    "executed quantity",
    "exec qty",
    "shares traded",
    "share quantity",
    "nominal",
    "volume",
    "amount",
    "quantity transacted",
    "qty filled",
    "lots",
    "vol",
    "stück nom",
    "menge",
    "stuks",
    "pieces",
)
_PRICE = (
    "price",
    "trade price",
    "t price",
    "tradeprice",
    "unit price",
    "price per share",
    "price share",
    "share price",
    "kurs",
    "koers",
    "cena",
    "prix",
    "prix unitaire",
    "precio",
    "prezzo",
    "avg price",
    "average price",
    "fill price",
    "execution price",
    "exec price",
    "rate",
    "price per unit",
    "deal price",
    "koers per eenheid",
    "prijs",
    "kurs je stuck",
    "preis",
    "ausfuhrungskurs",
    "ausführungskurs",
    "price at transaction",
    "price per share in account currency",
    "cena za kus",
    "jednotkova cena",
    "prix d execution",
    "cours",
    "quote price",
    "price *",
    "cost per share",
    "cost per unit",
    "unit cost",
    "executed price",
    "kurssi",
    "kurz",
)
_COMMISSION = (
    "commission",
    "commissions",
    "comm fee",
    "comm/fee",
    "fees & comm",
    "fees and comm",
    "fees comm",
    "ibcommission",
    "ib commission",
    "courtage",
    "kosten",
    "transactiekosten",
    "fees",
    "fee",
    "brokerage",
    "brokerage fee",
    "commission payee",
    "commission payée",
    "commission paid",
    "costs",
    "charges",
    "transaction fee",
    "trading fee",
    "provision",
    "gebuhr",
    "gebühr",
    "gebuhren",
    "gebühren",
    "poplatek",
    "poplatky",
    "comision",
    "commissione",
    "frais",
    "transaction and or third",
    "fees and or spread",
    "brokerage *",
    "commission amount",
    "fee amount",
    "total fees",
)
_CURRENCY = (
    "currency",
    "ccy",
    "currencyprimary",
    "currency primary",
    "devise",
    "devise du prix",
    "valuta",
    "měna",
    "mena",
    "transaktionsvaluta",
    "price currency",
    "currency price share",
    "instrument currency",
    "trade currency",
    "quote currency",
    "moneda",
    "divisa",
    "währung",
    "wahrung",
    "munt",
    "valuta prijs",
    "settlement currency",
    "currency code",
    "instrumentvaluta",
    "currency of price",
    "local currency",
    "mena ceny",
    "devise de l instrument",
)
_EXECUTED_AT = (
    "date",
    "time",
    "datetime",
    "date time",
    "date/time",
    "trade date",
    "timestamp",
    "run date",
    "execution time",
    "execution date",
    "transaction date",
    "trade time",
    "order time",
    "datum",
    "tijd",
    "čas",
    "cas",
    "datum cas",
    "date de transaction",
    "date de l operation",
    "date operation",
    "fecha",
    "fecha de operacion",
    "data",
    "data operazione",
    "handelsdatum",
    "handelstag",
    "ausfuhrungsdatum",
    "transaktionsdatum",
    "affärsdag",
    "affarsdag",
    "tradedate",
    "trade date time",
    "date executed",
    "executed at",
    "filled at",
    "created at",
    "trade created at",
    "datum en tijd",
    "datum obchodu",
    "utc time",
    "timestamp utc",
    "date utc",
    "time utc",
    "zeit",
    "uhrzeit",
    "heure",
    "hora",
    "ora",
    "tid",
)
_BROKER_TRADE_ID = (
    "trade id",
    "tradeid",
    "order id",
    "orderid",
    "order",
    "order #",
    "order no",
    "order number",
    "order nr",
    "ordernummer",
    "transaction id",
    "transactionid",
    "id",
    "reference",
    "ref",
    "ibexecid",
    "exec id",
    "execution id",
    "ib order id",
    "iborderid",
    "id objednávky",
    "id objednavky",
    "referens",
    "verifikationsnummer",
    "auftragsnummer",
    "referenz",
    "numero d ordre",
    "référence",
    "reference number",
    "confirmation number",
    "deal id",
    "fill id",
    "brokerage order id",
    "transaction reference",
)

ORDERS = Target(
    name="orders",
    label="Broker trade orders",
    trades=True,
    fields=(
        TargetField("account", "text", False, "Account", _ACCOUNT, "The broker account id."),
        TargetField("symbol", "text", True, "Symbol", _SYMBOL, "Ticker or symbol, upper-cased."),
        TargetField("side", "side", True, "Side", _SIDE, "BUY or SELL."),
        TargetField(
            "quantity", "decimal", True, "Quantity", _QUANTITY, "Number of units, greater than 0 (the sign is in side)."
        ),
        TargetField("price", "decimal", True, "Price", _PRICE, "Price per unit, 0 or more."),
        TargetField(
            "commission",
            "decimal",
            False,
            "Commission",
            _COMMISSION,
            "Fees and commission, 0 or more (absolute); 0 when absent.",
        ),
        TargetField(
            "currency", "currency", True, "Currency", _CURRENCY, "ISO 4217 code of the price, 3 upper-case letters."
        ),
        TargetField(
            "executed_at",
            "datetime",
            True,
            "Executed at",
            _EXECUTED_AT,
            "When the trade was executed (timezone-aware).",
        ),
        TargetField(
            "broker_trade_id", "text", False, "Broker trade id", _BROKER_TRADE_ID, "The broker's trade or order id."
        ),
    ),
)

_ISIN = ("isin", "isin code", "isin number", "security isin", "isin kod", "isin-code", "isin nummer", "code isin")
_TICKER = ("ticker", "symbol", "ticker symbol", "trading symbol", "code", "instrument code", "short name", "kod")
_MIC = ("mic", "exchange", "market", "exchange mic", "mic code", "venue", "listing exchange", "börse", "bourse")
_NAME = ("name", "instrument", "instrument name", "security", "security name", "description", "company", "product")
_ASSET_CLASS = ("asset class", "asset type", "type", "security type", "instrument type", "category", "class")
_ALIASES = ("aliases", "alias", "other names", "other symbols", "also known as")

INSTRUMENTS = Target(
    name="instruments",
    label="Instruments (master data)",
    fields=(
        TargetField("isin", "text", False, "ISIN", _ISIN, "ISO 6166 code, 12 characters with its check digit."),
        TargetField("ticker", "text", False, "Ticker", _TICKER, "The exchange's symbol, upper-cased."),
        TargetField("mic", "text", False, "Exchange (MIC)", _MIC, "ISO 10383 market identifier code, 4 characters."),
        TargetField("name", "text", True, "Name", _NAME, "The instrument's name."),
        TargetField("currency", "currency", False, "Currency", _CURRENCY, "The trading currency (ISO 4217)."),
        TargetField("asset_class", "text", False, "Asset class", _ASSET_CLASS, "Equity, ETF, bond, crypto..."),
        TargetField("aliases", "text", False, "Aliases", _ALIASES, "Other names or symbols, separated by ';'."),
    ),
)

TARGETS: dict[str, Target] = {target.name: target for target in (ORDERS, INSTRUMENTS)}


def get_target(name: str) -> Target:
    """The target with this name; MappingError naming the known targets otherwise."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(TARGETS))
        message = f"Unknown target {name!r}. Known targets: {known}."
        raise MappingError(message, details={"target": name}) from None
