"""The instruments target's writer: master data validated (ISIN check digit, MIC), identified by ISIN (else ticker
and exchange) and upserted, so that importing a refreshed list updates the owner's records instead of doubling them.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from django.db import connection

from formats.converters.currencies import currency_problem
from imports.models import Instrument
from imports.targets.base import MARKUP_CHARACTERS, TargetRow, TargetWriter

_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_MIC = re.compile(r"[A-Z0-9]{4}")
_LIMITS = {"ticker": 64, "name": 200, "asset_class": 40}
_ALIAS_LIMIT, _ALIASES_MAX = 64, 50


def isin_check_digit_ok(isin: str) -> bool:
    """ISO 6166: letters become two digits (A=10 ... Z=35), then the Luhn check over the digits holds."""
    digits = "".join(str(int(char, 36)) for char in isin)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _clean(values: dict[str, Any]) -> dict[str, str]:
    """The text values as stored: codes upper-cased, blanks stripped, absent ones empty."""
    cleaned = {name: str(values.get(name) or "").strip() for name in ("isin", "ticker", "mic", "name", "asset_class")}
    for name in ("isin", "ticker", "mic"):
        cleaned[name] = cleaned[name].upper()
    cleaned["currency"] = str(values.get("currency") or "").strip()
    return cleaned


def aliases_of(values: dict[str, Any]) -> list[str]:
    """'AAPL.US; Apple' -> ['AAPL.US', 'Apple']: distinct, in order, blanks dropped."""
    seen: dict[str, None] = {}
    for alias in str(values.get("aliases") or "").split(";"):
        alias = " ".join(alias.split())
        if alias:
            seen.setdefault(alias, None)
    return list(seen)


def validate_instrument(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Target-level checks after conversion; [] when valid. Each message says what was expected."""
    v = _clean(values)
    errors: list[dict[str, Any]] = []
    if not v["isin"] and not v["ticker"]:
        errors.append({"field": "isin", "value": "", "message": "an ISIN or a ticker is required"})
    if v["isin"] and (len(v["isin"]) != 12 or not _ISIN.fullmatch(v["isin"])):
        message = "ISIN must be 12 characters: 2 letters (country), 9 letters or digits, 1 check digit"
        errors.append({"field": "isin", "value": v["isin"][:80], "message": message})
    elif v["isin"] and not isin_check_digit_ok(v["isin"]):
        message = "ISIN check digit does not match: a typo in the code?"
        errors.append({"field": "isin", "value": v["isin"], "message": message})
    if v["mic"] and not _MIC.fullmatch(v["mic"]):
        message = "exchange must be a 4-character ISO 10383 MIC (XNAS, XETR...)"
        errors.append({"field": "mic", "value": v["mic"][:80], "message": message})
    if not v["name"]:
        errors.append({"field": "name", "value": "", "message": "Name is required"})
    for name, limit in _LIMITS.items():
        if len(v[name]) > limit:
            errors.append(
                {"field": name, "value": v[name][:80], "message": f"{name} is longer than {limit} characters"}
            )
    for name in ("ticker", "name"):
        if MARKUP_CHARACTERS.intersection(v[name]):
            shown = " ".join(sorted(MARKUP_CHARACTERS.intersection(v[name])))
            errors.append({"field": name, "value": v[name][:80], "message": f"{name} contains {shown}"})
    if v["currency"]:
        problem = currency_problem(v["currency"])
        if problem:
            errors.append({"field": "currency", "value": v["currency"][:80], "message": problem})
    aliases = aliases_of(values)
    if len(aliases) > _ALIASES_MAX or any(len(alias) > _ALIAS_LIMIT for alias in aliases):
        message = f"at most {_ALIASES_MAX} aliases of at most {_ALIAS_LIMIT} characters each, separated by ';'"
        errors.append({"field": "aliases", "value": str(values.get("aliases"))[:80], "message": message})
    return errors


def instrument_identity(values: dict[str, Any]) -> str:
    """One instrument per ISIN; without one, per ticker and exchange (Instrument.identity)."""
    v = _clean(values)
    return Instrument.identity(v["isin"], v["ticker"], v["mic"])


def instrument_key(values: dict[str, Any]) -> str:
    """The dedupe key of an instrument (Instrument.key)."""
    v = _clean(values)
    return Instrument.key(v["isin"], v["ticker"], v["mic"])


# Changed records only: an unchanged row of a refreshed list updates nothing and is reported as a duplicate of the
# record that has it. A line this file already wrote (a re-run) is left alone, whatever its key is now.
_UPSERT_SQL = """
INSERT INTO imports_instrument AS i (owner_id, isin, ticker, mic, name, currency, asset_class, aliases,
                                     source_file_id, source_line, dedupe_key, created_at)
SELECT %(owner)s, v.isin, v.ticker, v.mic, v.name, v.currency, v.asset_class, v.aliases::jsonb, %(file)s, v.line,
       v.dedupe_key, now()
FROM unnest(%(isin)s::text[], %(ticker)s::text[], %(mic)s::text[], %(name)s::text[], %(currency)s::text[],
            %(asset_class)s::text[], %(aliases)s::text[], %(line)s::int[], %(dedupe_key)s::text[])
     AS v(isin, ticker, mic, name, currency, asset_class, aliases, line, dedupe_key)
WHERE NOT EXISTS (SELECT 1 FROM imports_instrument w WHERE w.source_file_id = %(file)s AND w.source_line = v.line)
ON CONFLICT (owner_id, dedupe_key) DO UPDATE SET
    isin = EXCLUDED.isin, ticker = EXCLUDED.ticker, mic = EXCLUDED.mic, name = EXCLUDED.name,
    currency = EXCLUDED.currency, asset_class = EXCLUDED.asset_class, aliases = EXCLUDED.aliases,
    updated_by_file_id = EXCLUDED.source_file_id, updated_at = now()
WHERE (i.isin, i.ticker, i.mic, i.name, i.currency, i.asset_class, i.aliases)
      IS DISTINCT FROM (EXCLUDED.isin, EXCLUDED.ticker, EXCLUDED.mic, EXCLUDED.name, EXCLUDED.currency,
                        EXCLUDED.asset_class, EXCLUDED.aliases)
RETURNING i.dedupe_key
"""


def instruments_upsert(*, owner_id: int, file_id: int, rows: list[TargetRow]) -> set[int]:
    """Insert new instruments and update changed ones in one statement; returns the lines written.

    Every row gets its identity key (also with de-duplication off: an instrument is one record by nature). Two
    rows of one batch with the same identity: the later line wins, the earlier is reported as its duplicate.
    """
    last: dict[str, TargetRow] = {}
    for row in rows:
        row.dedupe_key = row.dedupe_key or instrument_key(row.values)
        last[row.dedupe_key] = row
    if not last:
        return set()
    batch = sorted(last.values(), key=lambda row: row.dedupe_key)
    cleaned = [_clean(row.values) for row in batch]
    params: dict[str, Any] = {"owner": owner_id, "file": file_id}
    for name in ("isin", "ticker", "mic", "name", "currency", "asset_class"):
        params[name] = [values[name] for values in cleaned]
    params["aliases"] = [_json_list(aliases_of(row.values)) for row in batch]
    params["line"] = [row.line for row in batch]
    params["dedupe_key"] = [row.dedupe_key for row in batch]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_SQL, params)
        written = {key for (key,) in cursor.fetchall()}
    return {row.line for row in batch if row.dedupe_key in written}


def _json_list(items: list[str]) -> str:
    return orjson.dumps(items).decode()


WRITER = TargetWriter(
    name="instruments",
    model=Instrument,
    validate=validate_instrument,
    identity=instrument_identity,
    insert=instruments_upsert,
)
