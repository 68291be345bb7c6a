"""Reconciliation: every order's symbol matched to one of its owner's instruments, so one position stays one position
whichever way a broker spells the instrument ('AAPL', 'US0378331005', 'APPLE INC', 'AAPL.US', 'AAPL:xnas').

Set-based first, in SQL over a file's orders (or all of an owner's waiting ones): the decisions on a value (an
InstrumentLink for the file's format, then one for any format), an exact ISIN, an exact ticker (when only one of the
owner's instruments has it), an alias from the instruments list. Then, once per distinct value still unmatched, in
Python: the value without its exchange or pair suffix ('AAPL.US', 'AAPL:XNAS', 'ETH-EUR', Kraken's 'XETHZ'), else a
fuzzy match (rapidfuzz) on names and tickers. Above AIRLOCK_RECONCILE_AUTO_SCORE, with a clear lead over the next
candidate, the link is made and recorded with its score; below, the value waits in the admin's reconciliation
queue for a decision (link to a candidate, create an instrument from the order's data, or leave it unlinked),
which applies to every order with that value, past and future, and is audited with its actor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from rapidfuzz import fuzz, process, utils

from audit.services import record
from config.errors import Conflict, InvalidRequest
from imports.models import ImportFile, Instrument, InstrumentLink, Order

# The value of an order as decisions and matches see it.
VALUE_SQL = "upper(btrim(o.symbol))"
_SUFFIX = re.compile(r"^([A-Z0-9]{1,12})[.:]([A-Z0-9]{1,6})$")  # AAPL.US, AAPL:XNAS, BRK.B stays a ticker below
_PAIR = re.compile(r"^([A-Z0-9]{2,10})[-/]([A-Z]{3,4})$")  # ETH-EUR, BTC/USDT
_KRAKEN = re.compile(r"^[XZ]([A-Z]{3})[XZ]?([A-Z]{3})?$")  # XETHZ, XXBTZ, XETHZEUR
_KRAKEN_NAMES = {"XBT": "BTC", "XDG": "DOGE"}
CANDIDATES = 5


@dataclass
class Counts:
    """Orders of a file (or of an owner) by how they stand after reconciliation."""

    linked: int = 0
    waiting: int = 0
    unlinked: int = 0  # left unlinked by a decision


def _auto_score() -> float:
    return float(settings.AIRLOCK.get("RECONCILE_AUTO_SCORE", 0.92))


# The instrument each value means for one owner and one file's format (the SQL function of migration
# imports/0014_instrument_map: decisions, then ISIN, unique ticker, unique alias). The inserts of the SQL and Python
# paths join it, so orders are linked as they are written; the pass after a file joins it again.
INSTRUMENT_MAP_SQL = "airlock_instrument_map(%(owner)s, %(file)s)"

_LINK_SQL = f"""
UPDATE imports_order o SET instrument_id = m.instrument_id FROM {INSTRUMENT_MAP_SQL} m
WHERE o.source_file_id = %(file)s AND o.owner_id = %(owner)s AND o.instrument_id IS NULL
  AND m.instrument_id IS NOT NULL AND m.value = {VALUE_SQL} AND {VALUE_SQL} = ANY(%(values)s)
"""


def orders_reconcile(*, owner_id: int, file_id: int | None = None) -> None:
    """Link the orders of a file (None: every file with waiting orders of the owner) that are still without an
    instrument. Most were linked as they were inserted; this catches what changed since (a decision, a new
    instruments list) and tries, once per distinct value, the suffix and fuzzy rules. Idempotent: only orders
    without an instrument change, so a job killed part-way simply runs it again."""
    with connection.cursor() as cursor:  # (after every file: plain SQL, the ORM's EXISTS costs ~3x its answer)
        cursor.execute("SELECT EXISTS (SELECT 1 FROM imports_instrument WHERE owner_id = %s)", [owner_id])
        if not cursor.fetchone()[0]:
            return  # nothing to match against (the first files of a new owner)
    if file_id is None:
        waiting_files = Order.objects.filter(owner_id=owner_id, instrument__isnull=True).values("source_file")
        file_ids = list(waiting_files.distinct().values_list("source_file", flat=True))
    else:
        file_ids = [file_id]
    for one in file_ids:
        _reconcile_file(owner_id, one)


def _reconcile_file(owner_id: int, file_id: int) -> None:
    values = _waiting_values(owner_id, file_id)
    if not values:
        return
    _link(owner_id, file_id, values)
    decided = set(InstrumentLink.objects.filter(owner_id=owner_id, value__in=values).values_list("value", flat=True))
    left = [value for value in _waiting_values(owner_id, file_id) if value not in decided]
    made = [link.value for link in (_auto_link(owner_id, value) for value in left) if link is not None]
    if made:
        _link(owner_id, file_id, made)


def _link(owner_id: int, file_id: int, values: list[str]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LINK_SQL, {"owner": owner_id, "file": file_id, "values": values})


def orders_reconcile_waiting(*, owner_id: int, file_id: int | None = None) -> None:
    """After an instruments file: every order of the owner still waiting may match the new or changed records."""
    orders_reconcile(owner_id=owner_id)


def _orders(owner_id: int, file_id: int | None) -> Any:
    orders = Order.objects.filter(owner_id=owner_id)
    return orders.filter(source_file_id=file_id) if file_id else orders


def _left_unlinked(owner_id: int) -> set[str]:
    return set(
        InstrumentLink.objects.filter(owner_id=owner_id, instrument__isnull=True).values_list("value", flat=True)
    )


def _waiting_values(owner_id: int, file_id: int) -> list[str]:
    """The distinct values of the file's orders still without an instrument."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT {VALUE_SQL} FROM imports_order o WHERE o.source_file_id = %(file)s "
            "AND o.owner_id = %(owner)s AND o.instrument_id IS NULL",
            {"owner": owner_id, "file": file_id},
        )
        return [value for (value,) in cursor.fetchall() if value]


def file_reconcile_counts(file: ImportFile) -> Counts:
    """How the file's orders stand: linked to an instrument, waiting for a decision, left unlinked by one."""
    return _counts(file.owner_id, file.pk)


def _counts(owner_id: int, file_id: int | None) -> Counts:
    orders = _orders(owner_id, file_id)
    figures = orders.aggregate(all=Count("id"), linked=Count("instrument"))
    unlinked = _left_unlinked(owner_id)
    skipped = orders.filter(instrument__isnull=True, symbol__in=unlinked).count() if unlinked else 0
    linked = figures["linked"] or 0
    return Counts(linked=linked, waiting=(figures["all"] or 0) - linked - skipped, unlinked=skipped)


def variants(value: str) -> list[str]:
    """What the value may be without an exchange or pair suffix: 'AAPL.US' -> ['AAPL'], 'ETH-EUR' -> ['ETH'],
    'XETHZ' -> ['ETH'], 'XXBTZ' -> ['BTC']."""
    found: list[str] = []
    for pattern in (_SUFFIX, _PAIR):
        match = pattern.fullmatch(value)
        if match:
            found.append(match.group(1))
    kraken = _KRAKEN.fullmatch(value)
    if kraken and len(value) in (5, 8):
        found.append(_KRAKEN_NAMES.get(kraken.group(1), kraken.group(1)))
    return [item for item in dict.fromkeys(found) if item != value]


@dataclass
class Candidate:
    instrument: Instrument
    score: float
    why: str


def candidates(owner_id: int, value: str, limit: int = CANDIDATES) -> list[Candidate]:
    """The owner's instruments that may be this value, best first, each with its score (0..1) and why."""
    instruments = list(Instrument.objects.filter(owner_id=owner_id))
    found: dict[int, Candidate] = {}

    def offer(instrument: Instrument, score: float, why: str) -> None:
        if instrument.pk not in found or found[instrument.pk].score < score:
            found[instrument.pk] = Candidate(instrument, round(score, 3), why)

    for variant in variants(value):
        for instrument in instruments:
            if variant in (instrument.ticker, instrument.isin):
                offer(instrument, 1.0, f"'{value}' is {variant} with an exchange or pair suffix")
    names = {instrument.pk: instrument.name for instrument in instruments}
    tickers = {instrument.pk: instrument.ticker for instrument in instruments if instrument.ticker}
    by_pk = {instrument.pk: instrument for instrument in instruments}
    for label, choices in (("name", names), ("ticker", tickers)):
        for _, score, pk in process.extract(
            value, choices, scorer=fuzz.WRatio, processor=utils.default_process, limit=limit
        ):
            offer(by_pk[pk], score / 100 * (1.0 if label == "name" else 0.95), f"{label} '{choices[pk]}' is close")
    return sorted(found.values(), key=lambda c: (-c.score, c.instrument.name))[:limit]


def _auto_link(owner_id: int, value: str) -> InstrumentLink | None:
    """Link the value automatically when one candidate is above the threshold with a clear lead; else None."""
    found = candidates(owner_id, value, limit=2)
    if not found or found[0].score < _auto_score():
        return None
    if len(found) > 1 and found[0].score - found[1].score < 0.05:
        return None  # two instruments fit about as well: a person decides
    best = found[0]
    method = InstrumentLink.Method.NORMALIZED if "suffix" in best.why else InstrumentLink.Method.FUZZY
    link, made = InstrumentLink.objects.get_or_create(
        owner_id=owner_id,
        value=value,
        format=None,
        defaults={"instrument": best.instrument, "method": method, "score": best.score},
    )
    if made:
        record(
            action="instrument.matched",
            obj=best.instrument,
            summary=f"'{value}' matched to {best.instrument} automatically ({best.score:.0%}: {best.why})",
            details={"value": value, "owner": owner_id, "score": best.score, "why": best.why},
        )
    return link


@dataclass
class Waiting:
    """One value that waits for a decision: how many orders, in which files, and the candidates."""

    owner_id: int
    owner: str
    value: str
    orders: int
    files: list[ImportFile]
    candidates: list[Candidate]

    @property
    def formats(self) -> list[Any]:
        """The formats of those files, once each (a decision may be for the files of one of them only)."""
        return list({file.format_id: file.format for file in self.files if file.format_id}.values())


def reconcile_queue(*, owner_id: int | None = None, limit: int = 100) -> list[Waiting]:
    """The values waiting for a decision, most orders first (every owner's for the admin)."""
    orders = Order.objects.filter(instrument__isnull=True)
    if owner_id:
        orders = orders.filter(owner_id=owner_id)
    groups = (
        orders.values("owner_id", "owner__username", "symbol")
        .annotate(n=Count("id"))
        .order_by("-n", "symbol")[: limit * 2]
    )
    waiting: list[Waiting] = []
    unlinked: dict[int, set[str]] = {}
    for group in groups:
        owner, value = group["owner_id"], group["symbol"].strip().upper()
        if value in unlinked.setdefault(owner, _left_unlinked(owner)):
            continue
        files = list(
            ImportFile.objects.select_related("format")
            .filter(pk__in=orders.filter(owner_id=owner, symbol=group["symbol"]).values("source_file"))
            .order_by("pk")[:5]
        )
        waiting.append(Waiting(owner, group["owner__username"], value, group["n"], files, candidates(owner, value)))
        if len(waiting) >= limit:
            break
    return waiting


def reconcile_decide(
    *,
    actor: Any,
    owner_id: int,
    value: str,
    action: str,
    instrument_id: int | None = None,
    format_id: int | None = None,
) -> int:
    """A person's decision on one value: 'link' (to instrument_id), 'create' (a new instrument from an order's
    data) or 'leave' (unlinked). Applies to every order of the owner with that value (in files of `format_id`
    only, when given); returns how many orders it changed."""
    value = value.strip().upper()
    if action not in ("link", "create", "leave"):
        raise InvalidRequest("A decision is 'link', 'create' or 'leave'.", code="invalid_decision")
    if not value or len(value) > 64:
        raise InvalidRequest("The value is a symbol as orders hold it: 1 to 64 characters.", code="invalid_value")
    orders = Order.objects.filter(owner_id=owner_id, symbol__iexact=value)
    if format_id:
        orders = orders.filter(source_file__format_id=format_id)
    if not orders.exists():
        where = " in files of that format" if format_id else ""
        raise Conflict(f"No order of this owner holds '{value}'{where}: nothing to decide.", code="no_orders")
    with transaction.atomic():
        instrument = None
        if action == "link":
            instrument = Instrument.objects.filter(owner_id=owner_id, pk=instrument_id).first()
            if instrument is None:
                raise InvalidRequest("Choose one of the owner's instruments to link to.", code="invalid_instrument")
        elif action == "create":
            instrument = _instrument_from_order(owner_id, value, orders)
        method = InstrumentLink.Method.CREATED if action == "create" else InstrumentLink.Method.DECISION
        InstrumentLink.objects.update_or_create(
            owner_id=owner_id,
            value=value,
            format_id=format_id,
            defaults={"instrument": instrument, "method": method, "score": None, "decided_by": actor},
        )
        changed = orders.filter(~Q(instrument=instrument) if instrument else Q(instrument__isnull=False))
        changed = changed.update(instrument=instrument)
        record(
            action="instrument.decided",
            actor=actor,
            obj=instrument,
            summary=(
                f"{actor.get_username()} decided that '{value}' "
                + (f"is {instrument}" if instrument else "stays unlinked")
                + f" ({'files of format ' + str(format_id) if format_id else 'every format'}): {changed} orders"
            ),
            details={"value": value, "owner": owner_id, "action": action, "format": format_id, "orders": changed},
        )
    return changed


def _instrument_from_order(owner_id: int, value: str, orders: Any) -> Instrument:
    """A new instrument from the order's data: an ISIN-shaped value is the ISIN, else the value is the ticker."""
    order = orders.order_by("pk").first()
    if order is None:
        raise Conflict(f"No order holds '{value}': nothing to make an instrument from.", code="no_orders")
    isin = value if re.fullmatch(r"[A-Z]{2}[A-Z0-9]{9}[0-9]", value) else ""
    instrument, _ = Instrument.objects.get_or_create(
        owner_id=owner_id,
        dedupe_key=Instrument.key(isin, "" if isin else value, ""),
        defaults={
            "isin": isin,
            "ticker": "" if isin else value[:64],
            "name": order.symbol[:200],
            "currency": order.currency,
            "source_file_id": order.source_file_id,
            "source_line": order.source_line,
        },
    )
    return instrument
