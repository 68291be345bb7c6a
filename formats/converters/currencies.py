"""Currency codes a price may be quoted in: ISO 4217 for fiat, and the asset codes of crypto trades."""

from __future__ import annotations

# ISO 4217 active codes (2024 list), plus the precious metals and CNH (offshore yuan, used by brokers).
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD
    CDF CHF CLP CNY CNH COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
    GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
    LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB
    PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP
    SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW
    ZWL XAU XAG XPT XPD GBX ZAC ILA
    """.split()
)
# Three-letter crypto asset codes (the ones that look like fiat codes and so need listing); longer codes
# such as USDT, USDC, DOGE or MATIC are accepted by their shape (see currency_problem).
CRYPTO_3 = frozenset(
    """
    BTC ETH XRP ADA SOL DOT LTC TRX BNB BCH ETC XLM XMR EOS UNI ZEC NEO XTZ VET FIL ICP APE OKB CRO LEO DAI
    BAT ENJ ZIL ICX ONT OMG ZRX LRC REN KNC GRT FTM AXS SNX MKR YFI CRV CEL CHZ HOT KSM RSR SXP SUN JST
    BTT WIN GMT OGN OXT NMR REP ANT GNO MLN POL ARB SUI SEI TIA JTO JUP BLZ ONE XEM DGB RVN ZEN KDA FET
    PAX XBT XDG STX CFX ACH ALT OMI TON NOT WLD PYR TRB LPT API ENS IMX RPL BAL SKL GLM
    """.split()
)
MAX_CODE = 10
# Names of fiat money written where a code belongs: shaped like asset codes, but no asset is called so.
FIAT_NAMES = frozenset(
    "EURO EUROS DOLLAR DOLLARS POUND POUNDS STERLING FRANC FRANCS KRONA KRONE KRONOR KRONER ZLOTY RUBLE RUBLES "
    "RUPEE RUPEES PESO PESOS REAL REAIS YUAN FORINT LIRA CASH NONE NULL".split()
)


def currency_problem(code: str) -> str | None:
    """Why `code` is not a currency a price can be quoted in, or None when it is.

    Three letters: an ISO 4217 code or a known crypto asset (BTC, ETH); 2 or 4-10 upper-case letters or
    digits: a crypto asset code (USDT, DOGE, 1INCH). Anything else is refused with what was expected."""
    if not isinstance(code, str) or not code:
        return "currency is required"
    if len(code) > MAX_CODE or not code.isascii() or not code.isalnum() or code != code.upper():
        return (
            f"'{code[:20]}' is not a currency code: expected an ISO 4217 code such as EUR or USD, "
            "or a crypto asset code such as BTC or USDT"
        )
    if len(code) == 3 and code.isalpha():
        if code in ISO_4217 or code in CRYPTO_3:
            return None
        return f"'{code}' is not an ISO 4217 currency code (such as EUR, USD, GBP) nor a known crypto asset"
    if code in FIAT_NAMES:
        return f"'{code}' names a currency but is not a code: expected its ISO 4217 code (such as EUR, USD, GBP)"
    if len(code) < 2 or code.isdigit():
        return f"'{code}' is not a currency code: expected an ISO 4217 code such as EUR or a crypto asset code"
    return None
