"""Set-based migration fast path: the mapping compiled to SQL, with the Python converters as referee.

`plan_for` derives, from the same mapping spec that `formats.converters.compile_mapping` compiles, a
SQL conversion for the subset of specs whose results Postgres can reproduce exactly (plain numbers and
US money, printable-ASCII text, numeric date formats and the common ISO shapes in UTC or as dates in a zone
without midnight clock changes, the built-in buy/sell words, a side from a number's sign, 3-letter currency
codes), with row filters, defaults, split_on/part and columns joined like `join_cells`.
Each cell gets an acceptance test that is deliberately narrower than the Python converter: a cell the
SQL would not convert *identically* is never converted by SQL. A row with any such cell, or that fails a
target check, is handed to the per-row Python path (`CompiledFormat.convert`), which produces the same
values and the same error messages as before; a row filter works the same way (a row SQL is not sure
it keeps goes to Python, which skips it with its reason). Specs outside the subset (the side_word filter,
other converters, dates in a local zone with de-duplication...) make `plan_for` return None and the whole
file takes the Python path. De-duplication keys are computed in SQL: a trade-id key whole, a fingerprint
key as its digest, to which the occurrence counter is added in line order when the batch is written.

Per batch (one transaction, as in the Python path): the staged rows are claimed (deleted: an imported
row lives on as its order) and converted by one INSERT ... SELECT into a temp table; only the rows SQL
declined travel to Python; all valid rows (both kinds) are written by one INSERT ordered like the Python
path's (dedupe key, line), so which of two rows with the same trade identity wins is the same; the rows
that did not become an order are staged again with their outcome.
Each batch has two halves, `*_prepare` (claim or COPY, and convert: touches only the batch's own rows)
and `*_finish` (write orders, stage or mark what failed), so that imports/pipeline/sessions.py can prepare the
next batch in a second session while this one finishes.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from psycopg.errors import DataError, UniqueViolation

from config.errors import ConversionError, MappingError
from formats.converters import BUY_WORDS, CURRENCY_SYMBOLS, PLACEHOLDERS, SELL_WORDS
from formats.converters.currencies import CRYPTO_3, ISO_4217, currency_problem
from formats.converters.registry import build_text_cleaner
from formats.converters.words import side_builder
from formats.targets import get_target
from imports.models import ImportFile
from imports.pipeline.convert import BatchOutcome, CompiledFormat, Mark
from imports.reading.blocks import Block, BlockRefused
from imports.services.reconciliation import INSTRUMENT_MAP_SQL
from imports.targets.base import (
    MARKUP_CHARACTERS,
    OCCURRENCES_ADD,
    OCCURRENCES_TABLE,
    DedupeKeys,
    TargetRow,
    duplicate_errors,
    occurrences_sql,
)
from imports.targets.orders import EARLIEST_TRADE_YEAR, ORDER_VALUE_FIELDS, WRITER, order_columns
from staging.models import StagedStatus
from staging.services import staged_rows_write_outcomes

# Cells the fast path accepts at all: printable ASCII, no surrounding blanks (so Python's strip(),
# casefold() and upper() agree with Postgres's), and not a placeholder such as '-' or 'n/a'.
_ASCII_TEXT = r"^[!-~]([ -~]*[!-~])?$"
# Numbers SQL reads itself: (pattern, most characters). The length test comes first and keeps the cast from
# ever seeing a huge number; the patterns use '+', not '{1,20}': Postgres runs a bounded repetition about three
# times slower, and both paths read any run of digits exactly (Decimal, numeric), so the bound is the length.
_PLAIN_NUMBER = (r"^[+-]?[0-9]+(\.[0-9]+)?$", 42)
_PLAIN_INTEGER = (r"^[+-]?[0-9]+$", 21)
# What decimal_builder reads with a currency mark in front ('$1.00', '€3302.65', '£5'; Revolut, Coinbase, Schwab)
# or with a decimal comma ('154,665276': Avanza, Degiro): the mark dropped, the comma read as the point.
_MARKS = ("$", "€", "£")
_MARKED_NUMBER = (r"^([+-]?|[$€£])[0-9]+(\.[0-9]+)?$", 43)
_MARKED_COMMA_NUMBER = (r"^([+-]?|[$€£])[0-9]+(,[0-9]+)?$", 43)
_US_MONEY = (r"^([+-]?[0-9]+(\.[0-9]+)?|\$?([0-9]{1,3}(,[0-9]{3}){1,6}|[0-9]+)(\.[0-9]+)?)$", 49)
# Its commonest cells ('$352.68', '0.65', '12'), by a pattern of a few states that reads a cell in a third of the
# time (see _shaped); cells with thousands groups or a sign go on to the whole pattern.
_US_MONEY_PLAIN = r"^\$?[0-9]+(\.[0-9]+)?$"
_ASCII_PLACEHOLDERS = sorted(p for p in PLACEHOLDERS if p and p.isascii())
_DATE_DIRECTIVES = {
    "%Y": ("y", "[0-9]{4}"),
    "%y": ("yy", "[0-9]{2}"),  # strptime: exactly two digits, 69-99 -> 19xx, 00-68 -> 20xx
    "%m": ("m", "[0-9]{1,2}"),
    "%d": ("d", "[0-9]{1,2}"),
    "%H": ("h", "[0-9]{1,2}"),
    "%M": ("mi", "[0-9]{1,2}"),
    "%S": ("s", "[0-9]{1,2}"),
}
# A directive's digits in the format's zero-padded shape (_shaped): '2024-03-05', not '2024-3-5'.
_DIRECTIVE_DIGITS = {"%Y": 4}
# Zones whose clocks have never changed at midnight since 1970, so a date's midnight exists exactly once
# in them (Python's zoneinfo and Postgres then agree on it).
_MIDNIGHT_ZONES = frozenset(
    {"UTC", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London"}
)
_TEXT_LIMITS = {"symbol": 64, "account": 64, "broker_trade_id": 128}


def _lit(value: str) -> str:
    """A SQL string literal (values come from the mapping spec and module constants only); a '%' is
    written as chr(37), so the text reads the same whether or not psycopg fills in parameters."""
    if "%" not in value:
        return "'" + value.replace("'", "''") + "'"
    # In parentheses: || binds no tighter than ~, so a bare concatenation would change what a match reads.
    return "(" + " || chr(37) || ".join("'" + piece.replace("'", "''") + "'" for piece in value.split("%")) + ")"


def _lits(values: list[str]) -> str:
    return ", ".join(_lit(v) for v in values)


# upper() and lower() of text the checks have shown to be printable ASCII (or of a value made only of such
# text and ASCII constants): in the C collation, as Python's upper() and lower() read ASCII, and about a third
# cheaper than in the database's locale, which converts every cell to wide characters and back.
def _upper(text: str) -> str:
    return f'upper({text} COLLATE "C")'


def _lower(text: str) -> str:
    return f'lower({text} COLLATE "C")'


@dataclass
class _Field:
    """One target field in SQL: `ok` (never raises) and `value` (evaluated only when every ok holds)."""

    name: str
    ok: str
    value: str
    pre: tuple[tuple[str, str], ...] = ()  # (alias, expression over the cells), computed once per row
    post: tuple[tuple[str, str], ...] = ()  # (alias, expression over `pre`), computed once per row
    zone: str = "UTC"  # the timezone of a datetime field's values
    fraction: bool = False  # a datetime field whose values may carry microseconds


@dataclass(frozen=True)
class FastPlan:
    """The SQL conversion of one mapping against one file's columns (shared: plan_for caches it)."""

    fields: dict[str, _Field]
    width: int
    cells: list[int]
    dedupe_by_trade_id: bool
    # De-duplication by the fill's own fields (no trade id mapped): SQL computes each row's fingerprint
    # digest; the occurrence counters ('#1', '#2' for identical fills in one file) are assigned in line
    # order together with the Python-converted rows when the batch is written (_write_orders).
    dedupe_by_fingerprint: bool = False
    statuses: int = 3  # how many open statuses the claim takes (params status_0, status_1...)
    keep: list[str] = field(default_factory=list)  # the row filters' conditions (see _keep)
    # (alias, expression over the cells): a field's source text when it is not one whole cell (a split
    # part, joined columns), computed once per row before the converters see it; NULL = SQL declines.
    sources: tuple[tuple[str, str], ...] = ()

    def select_sql(self, *, dense: bool = False) -> str:
        """INSERT INTO the temp table: claim a batch of staged rows and convert what SQL can convert exactly.
        `dense`: the batch's ids lie close together (claim_params), and are found by one range of the primary key."""
        cells = ", ".join(f"coalesce(raw ->> {i}, '') AS c{i}" for i in self.cells) or "1 AS c_none"
        # The claim deletes the rows in the same pass that locks them: a migrated row lives on as its order
        # (no second copy, no new row version to write); the rows that end otherwise (invalid, skipped,
        # duplicate) are staged again, under their own ids, from the temp table's copy of their cells.
        # The status test is written so that no index can take it (IS TRUE: the same answer, status is never
        # NULL): the rows are found by their ids alone. Planned from statistics taken before the file was staged
        # (they say no row is open), Postgres otherwise read the status index, every open row of every file,
        # for each batch: quadratic in the file's size.
        # A dense batch (nearly always: a file's rows are staged by one COPY, their ids consecutive) is read by one
        # range scan of the primary key, its ids then tested by a hash of them (IS TRUE again keeps that test out of
        # the index), instead of a descent of the index per id: a claim of 20,000 rows 454 -> 328 ms, its DELETE
        # alone 195 -> 69 ms; and a plan the statistics cannot turn into a scan of the whole table (seen with ANY
        # alone: 658,000 rows read for a batch of 20,000).
        found = "s.id = ANY(%(ids)s::bigint[])"
        if dense:
            found = f"s.id BETWEEN %(first_id)s AND %(last_id)s AND ({found}) IS TRUE"
        claimed = f"""
            WITH claimed AS (
                DELETE FROM staging_stagedrow AS s
                WHERE {found} AND (s.status IN ({self._statuses()})) IS TRUE
                RETURNING s.id, s.line, s.raw
            )"""
        return claimed + self._convert_sql(
            f"SELECT id, line, jsonb_array_length(raw) AS width, raw, {cells} FROM claimed"
        )

    def incoming_sql(self) -> tuple[str, str]:
        """For rows read straight from the file: the temp table their cells are COPYed into, and the
        INSERT that converts them (`id` is the line: there is no staged row). Built once per plan."""
        return self._incoming

    @functools.cached_property
    def _incoming(self) -> tuple[str, str]:
        columns = ", ".join(f"c{i} text" for i in self.cells) or "c_none int DEFAULT 1"
        create = f"CREATE TEMP TABLE airlock_incoming (line int, width int, {columns}) ON COMMIT DROP"
        return create, self._convert_sql(self._cells_of("pg_temp.airlock_incoming"))

    def block_sql(self, width: int) -> str:
        """The conversion of a block's rows, COPYed by Postgres into block_table(width); built once per width."""
        built = self._block_sqls.get(width)
        if built is None:
            built = self._block_sqls[width] = self._convert_sql(self._cells_of(block_table(width)))
        return built

    def _cells_of(self, table: str) -> str:
        """The rows of a temp table of cells read straight from a file, as the conversion reads them (`id` is the
        line: there is no staged row)."""
        names = ", ".join(f"c{i}" for i in self.cells) or "c_none"
        return f"SELECT line AS id, line, width, NULL::jsonb AS raw, {names} FROM {table}"

    @functools.cached_property
    def _block_sqls(self) -> dict[int, str]:
        return {}

    def _convert_sql(self, source: str) -> str:
        raw_names = ", ".join(f"c{i}" for i in self.cells) or "c_none"
        cell_names = ", ".join([raw_names, *(alias for alias, _ in self.sources)])
        sourced = ", ".join([raw_names, *(f"{expr} AS {alias}" for alias, expr in self.sources)])
        pre = [f"{expr} AS {alias}" for f in self.fields.values() for alias, expr in f.pre]
        pre_names = ", ".join([cell_names, *[alias for f in self.fields.values() for alias, _ in f.pre]])
        post = [f"{expr} AS {alias}" for f in self.fields.values() for alias, expr in f.post]
        post_names = ", ".join([pre_names, *[alias for f in self.fields.values() for alias, _ in f.post]])
        checks = [
            f"width <= {self.width}",
            *[f"({k})" for k in self.keep],
            *[f"({f.ok})" for f in self.fields.values()],
        ]
        ok = f"coalesce({' AND '.join(checks)}, false)"  # NULL (a declined source) is a decline, never a pass
        converted = ", ".join(f"CASE WHEN ok THEN {f.value} END AS v_{name}" for name, f in self.fields.items())
        values = ", ".join(self._value(name) for name in ORDER_VALUE_FIELDS)
        key = "''"
        # imports.targets.orders.order_identity, term by term: account upper-cased, numbers normalised
        # (plain_decimal = trim_scale), the time's isoformat (UTC, whole seconds: see plan_for).
        account = _upper(f"coalesce({self._value('account')}, '')")
        # The converters give aware times in UTC (whatever the mapping's zone), so the isoformat ends '+00:00';
        # Python writes microseconds only when there are some ('...:05.120000+00:00').
        when = """to_char(v_executed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00'"""
        executed = self.fields.get("executed_at")
        if executed is not None and executed.fraction:
            utc = "v_executed_at AT TIME ZONE 'UTC'"
            when = (
                f"""CASE WHEN to_char({utc}, 'US') = '000000' THEN to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') """
                f"""ELSE to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS.US') END || '+00:00'"""
            )
        identity = ""
        if self.dedupe_by_trade_id:
            identity = (
                f"'id|' || {account} || '|' || v_broker_trade_id || '|' || trim_scale(v_quantity)::text "
                f"|| '|' || {when}"
            )
        elif self.dedupe_by_fingerprint:
            # The digest, numbered here within the batch ('#1', '#2'... in line order): the numbers stand unless
            # an earlier batch of the file had the same fill, which _assign_keys finds out and corrects.
            identity = (
                f"'fp|' || {account} || '|' || {_upper('v_symbol')} || '|' || v_side || '|' || "
                f"trim_scale(v_quantity)::text || '|' || trim_scale(v_price)::text || '|' || {when}"
            )
        digest = "NULL::text"
        if identity:
            # imports.targets.orders.order_digest: the trade's UTC date, then 128 bits of the identity's sha256.
            hashed = (
                "CASE WHEN ok THEN to_char(v_executed_at AT TIME ZONE 'UTC', 'YYYYMMDD') || "
                f"encode(substring(sha256(convert_to({identity}, 'UTF8')) FROM 1 FOR 16), 'hex') END"
            )
            key = f"coalesce({hashed}, '')"
            if self.dedupe_by_fingerprint:
                digest, key = hashed, "CASE WHEN ok THEN digest || '#' || n ELSE '' END"
        if self.sources:
            source = f"SELECT id, line, width, raw, {sourced} FROM ({source}) AS cells OFFSET 0"
        # OFFSET 0 keeps each layer from being inlined into the next, so a regex is run once per cell.
        # `raw` (a staged row's cells; NULL for rows read straight from the file) rides along untouched.
        # (Grouped by the digest's bytes: the same groups as in the locale's order, sorted a third faster.)
        # `copies`: on the last row of each digest, its number is how many rows of the batch have it (the file's
        # counters are added to from these, _assign_keys): read off the numbering's own pass, not a second grouping.
        numbered, copies = "0 AS n", "NULL::int"
        if self.dedupe_by_fingerprint:
            window = '(PARTITION BY digest COLLATE "C" ORDER BY line)'
            numbered = f"row_number() OVER {window} AS n, lead(line) OVER {window} AS next_line"
            copies = "CASE WHEN next_line IS NULL AND digest IS NOT NULL THEN n END"
        return f"""
            INSERT INTO pg_temp.airlock_fast (id, line, ok, {", ".join(ORDER_VALUE_FIELDS)}, dedupe_key, digest, copies,
                                              raw)
            SELECT id, line, ok, {values}, {key}, digest, {copies}, raw
            FROM (SELECT *, {numbered} FROM (SELECT *, {digest} AS digest FROM (
                SELECT id, line, ok, raw, {converted}
                FROM (
                    SELECT id, line, raw, {post_names}, ({ok}) AS ok
                    FROM (
                        SELECT id, line, width, raw, {", ".join([pre_names, *post])}
                        FROM (
                            SELECT id, line, width, raw, {", ".join([cell_names, *pre])}
                            FROM ({source}) AS cells OFFSET 0
                        ) AS parsed OFFSET 0
                    ) AS derived OFFSET 0
                ) AS checked OFFSET 0
            ) AS converted OFFSET 0) AS digested) AS numbered
        """

    def _statuses(self) -> str:
        return ", ".join(f"%(status_{n})s" for n in range(self.statuses))

    def claim_sql(self) -> str:
        """The ids and lines of the next batch of open rows after line `after`, in line order.

        One ordered index scan per status, merged: `status = ANY(...)` would make Postgres read and sort
        every remaining row of the file for each batch (quadratic in the file's size). The ids then go back
        as an array, which keeps the planner on the primary key (with a join it sometimes chose to scan
        the whole staging table). No FOR UPDATE: the claim's UPDATE locks the rows, it re-checks their
        status if another transaction changed them first, and the file's advisory lock (imports/pipeline/locks.py)
        already keeps a second migrator away.
        """
        return (
            "SELECT id, line FROM ("
            + " UNION ALL ".join(
                f"(SELECT id, line FROM staging_stagedrow WHERE file_id = %(file_id)s AND status = %(status_{n})s "
                f"AND line > %(after)s ORDER BY line LIMIT %(limit)s)"
                for n in range(self.statuses)
            )
            + ") AS open_rows ORDER BY line LIMIT %(limit)s"
        )

    def _value(self, name: str) -> str:
        if name in self.fields:
            return f"v_{name}"
        return {"account": "''", "broker_trade_id": "''", "commission": "0"}[name]


def plan_for(mapping: dict[str, Any], columns: list[str], *, dedupe: bool) -> FastPlan | None:
    """The SQL plan for this mapping, or None when any part of it is outside the exact subset.

    Compiled once per mapping, columns and de-duplication in a process (its SQL text too): a worker importing
    many small files of one format builds it once, not per file (1.4 ms of a 1,000-row file)."""
    if not settings.AIRLOCK.get("FAST_PATH", True):
        return None
    try:
        key = orjson.dumps(mapping, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # (not JSON: not a stored mapping; compiled each time)
        return _plan(mapping, list(columns), dedupe=dedupe)
    return _plan_cached(key, tuple(columns), dedupe)


@functools.lru_cache(maxsize=256)
def _plan_cached(mapping: bytes, columns: tuple[str, ...], dedupe: bool) -> FastPlan | None:
    return _plan(orjson.loads(mapping), list(columns), dedupe=dedupe)


def _plan(mapping: dict[str, Any], columns: list[str], *, dedupe: bool) -> FastPlan | None:
    positions = {column: index for index, column in enumerate(columns)}
    keep: list[str] = []
    kept_cells: set[int] = set()
    for rule in mapping.get("filters") or []:
        built = _keep(rule, positions) if isinstance(rule, dict) else None
        if built is None:
            return None
        keep.append(built[0])
        kept_cells.add(built[1])
    specs = mapping.get("fields") or {}
    required = {field.name for field in get_target("orders").required_fields()}
    if not required <= set(specs) or not set(specs) <= set(ORDER_VALUE_FIELDS):
        return None
    fields: dict[str, _Field] = {}
    used: set[int] = set(kept_cells)
    sources: list[tuple[str, str]] = []
    for name, spec in specs.items():
        if not isinstance(spec, dict):
            return None
        source = spec.get("columns") or []
        options = dict(spec.get("options") or {})
        if any(column not in positions for column in source):
            return None
        converter = spec.get("converter", "text")
        if converter == "constant":
            if set(options) - {"value"}:
                return None
            built = _constant(name, options.get("value"))
        else:
            if not source:
                return None
            indexes = [positions[column] for column in source]
            used.update(indexes)
            cell = _source(name, indexes, options, sources)
            if cell is None:
                return None
            core = {key: value for key, value in options.items() if key not in ("default", "split_on", "part")}
            if converter == "side" and len(source) == 1:
                built = _side(name, cell, core, known=_filtered_values(mapping, source[0]))
            else:
                built = _BUILDERS.get(converter, _unsupported)(name, cell, core)
            if built is not None and "default" in options:
                built = _with_default(built, cell, converter, options)
        if built is None:
            return None
        fields[name] = built
    trade_id_mapped = "broker_trade_id" in fields
    if dedupe and trade_id_mapped:
        # Rows without a trade id get fingerprint keys counted in file order: leave them to Python.
        tid = fields["broker_trade_id"]
        fields["broker_trade_id"] = _Field(
            tid.name, f"({tid.ok}) AND ({tid.value}) IS NOT NULL", tid.value, tid.pre, tid.post
        )
    return FastPlan(
        fields=fields,
        width=len(columns),
        cells=sorted(used),
        dedupe_by_trade_id=dedupe and trade_id_mapped,
        dedupe_by_fingerprint=dedupe and not trade_id_mapped,
        sources=tuple(sources),
        keep=keep,
    )


def _filtered_values(mapping: dict[str, Any], column: str) -> tuple[str, ...]:
    """The values an 'in' row filter lets through in this column (the rows SQL keeps hold one of them)."""
    return tuple(
        value
        for rule in mapping.get("filters") or []
        if isinstance(rule, dict) and rule.get("op", "in") == "in" and rule.get("column") == column
        for value in rule.get("values") or []
        if isinstance(value, str)
    )


# Row filters SQL decides exactly: a printable-ASCII cell, trimmed of spaces and lower-cased, is what
# formats.filters compares (str.strip().casefold() of such a cell). A row SQL does not keep (filtered out,
# or a cell with other characters) goes to the Python path, which skips it with its reason or keeps it.
_FILTER_OPS = ("in", "not_in", "not_empty", "empty", "startswith")
_PRINTABLE_ASCII = "^[ -~]*$"


def _keep(rule: dict[str, Any], positions: dict[str, int]) -> tuple[str, int] | None:
    """(the SQL condition under which the filter keeps a row, the cell it reads), or None for Python."""
    op, column = rule.get("op", "in"), rule.get("column")
    if op not in _FILTER_OPS or column not in positions:
        return None
    index = positions[column]
    cell = f"c{index}"
    values = rule.get("values") or ([rule["value"]] if "value" in rule else [])
    wanted = sorted({str(value).strip().casefold() for value in values})  # formats.filters' normalisation
    norm = f"lower(btrim({cell}, ' '))"
    listed = f"{norm} IN ({_lits(wanted)})" if wanted else "FALSE"
    condition = {
        "in": listed,
        "not_in": f"NOT ({listed})",
        "not_empty": f"btrim({cell}, ' ') <> ''",
        "empty": f"btrim({cell}, ' ') = ''",
        "startswith": " OR ".join(f"starts_with({norm}, {_lit(p)})" for p in wanted) or "FALSE",
    }[op]
    kept = f"{cell} ~ {_lit(_PRINTABLE_ASCII)} AND ({condition})"
    if op == "in":
        # Values beyond ASCII ('Köp', 'Sälj'): each usual spelling the filter keeps, compared case-exactly.
        exact = {s for v in values if not str(v).isascii() for s in _spellings(str(v)) if s.casefold() in wanted}
        if exact:
            kept = f"({kept}) OR {cell} IN ({_lits(sorted(exact))})"
    return kept, index


def _spellings(text: str) -> set[str]:
    """The usual spellings of a word as a cell holds it (as written, lower, upper, capitalised, title case)."""
    word = text.strip()
    return {s for s in (word, word.lower(), word.upper(), word.capitalize(), word.title()) if s and s == s.strip()}


def _source(name: str, indexes: list[int], options: dict[str, Any], sources: list[tuple[str, str]]) -> str | None:
    """The SQL name of the text a field's converter reads: the cell itself, or a computed source
    (registry.build_text_cleaner: columns joined as join_cells joins them, then split_on/part)."""
    if len(indexes) == 1:
        text = f"c{indexes[0]}"
    else:
        # join_cells: each cell stripped, placeholders dropped, joined by a space. SQL joins only cells of
        # printable ASCII without surrounding blanks that are not placeholders (so nothing is dropped).
        clean = " AND ".join(f"{f'c{i}'} ~ {_lit(_ASCII_TEXT)} AND {_not_placeholder(f'c{i}')}" for i in indexes)
        joined = " || ' ' || ".join(f"c{i}" for i in indexes)
        text = f"CASE WHEN {clean} THEN {joined} END"
    if "split_on" in options:
        split_on, part = options["split_on"], options.get("part", 0)
        if not isinstance(split_on, str) or not split_on or not isinstance(part, int) or isinstance(part, bool):
            return None
        if not split_on.isascii():
            return None
        # str.split and split_part both cut at every occurrence from the left; Python raises when part is
        # out of range, split_part gives '': such rows are declined (NULL) by counting the occurrences.
        t = f"({text})"
        count = f"((length({t}) - length(replace({t}, {_lit(split_on)}, ''))) / {len(split_on)})"
        needed = part if part >= 0 else -part - 1
        position = part + 1 if part >= 0 else part
        # strip() of the piece: ASCII spaces here; any other blank left fails every converter's pattern.
        text = f"CASE WHEN {count} >= {needed} THEN btrim(split_part({t}, {_lit(split_on)}, {position}), ' ') END"
    elif "part" in options:
        return None
    if text == f"c{indexes[0]}" and len(indexes) == 1:
        return text
    alias = f"s_{name}"
    sources.append((alias, text))
    return alias


def _with_default(field: _Field, cell: str, converter: str, options: dict[str, Any]) -> _Field | None:
    """A field whose empty cell takes the mapping's default, converted as Python converts it."""
    # Python gives the default for an empty piece whatever the split: convert it without split_on/part.
    unsplit = {key: value for key, value in options.items() if key not in ("split_on", "part")}
    try:
        value = build_text_cleaner(converter, unsplit)("")
    except (ConversionError, MappingError):
        return None
    if isinstance(value, Decimal) and field.name in ("quantity", "price", "commission"):
        minimum_ok = value > 0 if field.name == "quantity" else value >= 0
        if not (value.is_finite() and minimum_ok and value < Decimal("1e18")):
            return None  # validate_order would refuse it: Python's message
        literal = f"{format(value, 'f')}::numeric"
    elif isinstance(value, str) and field.name in ("account", "symbol", "broker_trade_id"):
        constant = _constant(field.name, value)
        if constant is None or (field.name == "symbol" and set(value) & set(MARKUP_CHARACTERS)):
            return None
        literal = constant.value
    else:
        return None
    return replace(
        field, ok=f"{cell} = '' OR ({field.ok})", value=f"CASE WHEN {cell} = '' THEN {literal} ELSE {field.value} END"
    )


def _is_number(cell: str, number: tuple[str, int], *, quick: str | None = None) -> str:
    """`quick`: a cheaper pattern for the commonest cells, a subset of the number's own, tried first."""
    pattern, longest = number
    matches = f"{cell} ~ {_lit(pattern)}"
    if quick is not None:
        matches = f"({cell} ~ {_lit(quick)} OR {matches})"
    return f"length({cell}) <= {longest} AND {matches}"


def _unsupported(name: str, cell: str, options: dict[str, Any]) -> _Field | None:
    return None


def _not_placeholder(cell: str) -> str:
    # A cell longer than every placeholder is none of them: lower() is not needed for it.
    longest = max(map(len, _ASCII_PLACEHOLDERS))
    return f"(length({cell}) > {longest} OR {_lower(cell)} NOT IN ({_lits(_ASCII_PLACEHOLDERS)}))"


def _text(name: str, cell: str, options: dict[str, Any]) -> _Field | None:
    if set(options) - {"upper"}:
        return None
    value = _upper(cell) if options.get("upper") else cell
    limit = _TEXT_LIMITS.get(name)
    if name in ("side", "currency") or limit is None:
        return None  # those fields have their own checks; text mapped onto them goes to Python
    accept = f"{cell} ~ {_lit(_ASCII_TEXT)} AND {_not_placeholder(cell)} AND length({cell}) <= {limit}"
    if name == "symbol":
        # validate_order refuses markup characters in a symbol; such rows go to Python for its message.
        markup = "".join(sorted(MARKUP_CHARACTERS))
        return _Field(name, f"{accept} AND {cell} = translate({cell}, {_lit(markup)}, '')", value)
    # Optional text: an empty cell is None in Python, written as ''.
    return _Field(name, f"{cell} = '' OR ({accept})", f"CASE WHEN {cell} = '' THEN NULL ELSE {value} END")


def _decimal(name: str, cell: str, options: dict[str, Any]) -> _Field | None:
    if set(options) - {"abs", "negate", "decimal_sep", "thousands_sep"} or name not in (
        "quantity",
        "price",
        "commission",
    ):
        return None
    if options.get("decimal_sep") is not None and options.get("decimal_sep") == options.get("thousands_sep"):
        return None
    # decimal_builder: a thousands '.' makes the comma the decimal separator.
    comma = options.get("decimal_sep") == "," or options.get("thousands_sep") == "."
    pattern = _MARKED_COMMA_NUMBER if comma else _MARKED_NUMBER
    bare = f"CASE WHEN left({cell}, 1) IN ({_lits(list(_MARKS))}) THEN substr({cell}, 2) ELSE {cell} END"
    number = f"replace({bare}, ',', '.')::numeric" if comma else f"({bare})::numeric"
    quick = None
    if options.get("thousands_sep") == "," and options.get("decimal_sep", ".") == ".":
        # US money as Schwab writes it ('$1,234.56', '500,135'): a '$' and 3-digit groups, no sign.
        pattern, quick = _US_MONEY, _US_MONEY_PLAIN
        number = f"replace(replace({cell}, '$', ''), ',', '')::numeric"
    if options.get("abs"):
        number = f"abs({number})"
    elif options.get("negate"):
        number = f"(-{number})"
    alias = f"n_{name}"
    pre = ((alias, f"CASE WHEN {_is_number(cell, pattern, quick=quick)} THEN {number} END"),)
    # The target's checks (validate_order), so a row that would be invalid goes to Python for its message.
    check = {"quantity": "> 0 AND {v} < 1e18", "price": ">= 0 AND {v} < 1e18", "commission": ">= 0 AND {v} < 1e18"}
    ok = f"{alias} IS NOT NULL AND {alias} {check[name].format(v=alias)}"
    if name == "commission":
        # Optional: an empty cell is None in Python, written as 0.
        return _Field(name, f"{cell} = '' OR ({ok})", f"CASE WHEN {cell} = '' THEN 0 ELSE {alias} END", pre)
    return _Field(name, ok, alias, pre)


def _datetime(name: str, cell: str, options: dict[str, Any]) -> _Field | None:
    zone = options.get("tz", "UTC")
    if set(options) - {"formats", "tz"} or zone not in _MIDNIGHT_ZONES or name != "executed_at":
        return None
    formats = options.get("formats", ["iso"])
    if not isinstance(formats, list) or not formats or not all(isinstance(fmt, str) for fmt in formats):
        return None
    # Python tries the formats in order: a cell SQL reads with the first one, Python reads with the first one
    # too (SQL accepts less than it does); a cell in another of the formats goes to Python.
    first = formats[0]
    if first == "%Y%m%d":
        return _compact_date(name, cell, zone)
    if first == "%Y%m%d;%H%M%S":
        return _compact_date(name, cell, zone, with_time=True) if zone == "UTC" else None
    if first == "iso":
        return _iso_date(name, cell) if zone == "UTC" else None
    pattern, names, separators = [], [], set()
    shape: list[str] | None = []  # the zero-padded shape ('____-__-__'), None with a month's name or AM/PM
    months: list[str] = []  # the month's names, for %b ('Jan') and %B ('January')
    previous_was_directive = False
    for token in re.split(r"(%.)", first):
        if token in _MONTH_WORDS or token in ("%I", "%p"):
            part = {"%I": "hi", "%p": "p"}.get(token, "m")
            if part in names or previous_was_directive:
                return None
            if part == "m":
                months = _MONTH_WORDS[token]
            names.append(part)
            pattern.append({"hi": "[0-9]{1,2}", "p": "(am|pm)", "m": "(" + "|".join(months) + ")"}[part])
            shape = None
            previous_was_directive = True
        elif token.startswith("%"):
            if token not in _DATE_DIRECTIVES or _DATE_DIRECTIVES[token][0] in names or previous_was_directive:
                return None  # adjacent numbers ('%Y%m%d') are split differently by the two regex engines
            part, regex = _DATE_DIRECTIVES[token]
            names.append(part)
            pattern.append(regex)
            if shape is not None:
                shape.append("_" * _DIRECTIVE_DIGITS.get(token, 2))
            previous_was_directive = True
        elif token:
            if not re.fullmatch(r"[ /:.T,-]+", token):
                return None
            # The Python fast parser reads a space in the format as \s+; ASCII spaces are the safe subset.
            pattern.append("".join(" +" if ch == " " else "\\" + ch if ch in "." else ch for ch in token))
            if shape is not None:
                shape.append(token)
            separators.update(token)
            previous_was_directive = False
    if not ({"y", "m", "d"} <= set(names) or {"yy", "m", "d"} <= set(names)):
        return None
    if ("hi" in names) != ("p" in names) or "hi" in names and "h" in names:
        return None  # a 12-hour clock with its AM/PM, or none
    if zone != "UTC" and {"h", "hi", "mi", "s"} & set(names):
        return None  # in another zone, dates only: local times can fall in a DST gap or overlap
    # A month name: Python reads the cell with strptime, which ignores case (the whole format's) and drops a
    # dot after the month ('%b.', 'Jan.') first: such formats, and a 'T' (split case-sensitively here), go to it.
    insensitive = bool(months) or "p" in names
    if insensitive and ("%b." in first or "T" in separators or "%b" in first and "%B" in first):
        return None
    match = f"m_{name}"
    # Once the cell matches, its numbers are exactly the runs of digits between the separators, in the
    # format's order: splitting on the separators is several times cheaper than regexp_match's groups.
    parts = f"array_remove(string_to_array({_spaced(cell, separators)}, ' '), '')"
    matches = "~*" if insensitive else "~"
    general = f"WHEN {cell} {matches} {_lit('^' + ''.join(pattern) + '$')} THEN {parts}"
    if shape is not None:
        # The zero-padded shape (nearly every cell of a real export) first, by its cheaper test; it is a
        # subset of the pattern, split the same way, so the numbers are the same either way.
        zero_padded = "".join(shape)
        fast = parts if re.search(r"[^_]{2}", zero_padded) else f"string_to_array({_spaced(cell, separators)}, ' ')"
        general = f"WHEN {_shaped(cell, [zero_padded])} THEN {fast} {general}"
    pre = ((match, f"CASE {general} END"),)
    post = []
    for i, n in enumerate(names):
        if n == "m" and months:
            post.append((f"dt_{n}", _month_number(f"{match}[{i + 1}]", months)))
        elif n == "hi":
            # strptime: 12 AM is 0, 12 PM is 12; an hour outside 1-12 becomes 99, which the checks refuse.
            hour, half = f"({match}[{i + 1}])::int", f"lower({match}[{names.index('p') + 1}])"
            post.append(
                (
                    "dt_h",
                    f"CASE WHEN {hour} NOT BETWEEN 1 AND 12 THEN 99 WHEN {half} = 'am' THEN mod({hour}, 12) "
                    f"ELSE mod({hour}, 12) + 12 END",
                )  # fmt: skip
            )
        elif n != "p":
            post.append((f"dt_{n}", f"({match}[{i + 1}])::int"))
    names = [{"hi": "h"}.get(n, n) for n in names if n != "p"]
    return _date_field(name, zone, match, pre, tuple(post), names)


_MONTH_WORDS = {
    "%b": [month.lower() for month in calendar.month_abbr[1:]],  # the C locale's, as strptime reads them
    "%B": [month.lower() for month in calendar.month_name[1:]],
}


def _month_number(part: str, months: list[str]) -> str:
    cases = " ".join(f"WHEN {_lit(month)} THEN {n}" for n, month in enumerate(months, start=1))
    return f"CASE lower({part}) {cases} END"


# datetime.fromisoformat's common shapes, where SQL reads exactly what Python reads: a date, a time to the
# minute, second or microsecond (1 to 6 digits), UTC written 'Z', '+00:00', ' UTC' or ' GMT' after a time (Coinbase;
# dates._parse_iso) or not at all (the mapping's UTC). Other offsets, 7+ digits, week dates, '2024-1-5'... go to
# Python.
_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|\+00:00| UTC| GMT)?)?$"
# Its shapes without a suffix, for _shaped: a date, a time to the minute, the second or 1 to 6 decimals of it.
_ISO_SHAPES = [
    "____-__-__",
    *(f"____-__-__{t}__:__{s}" for s in ["", ":__", *(":__." + "_" * n for n in range(1, 7))] for t in " T"),
]


def _shaped(cell: str, shapes: list[str]) -> str:
    """SQL: the cell is exactly one of these shapes ('_' an ASCII digit, any other character itself).

    What a regex spelling out each position answers, at half its cost or less: Postgres builds a regex's automaton
    states anew for every cell, about one per position, so the positions go to LIKE, the characters to a regex of
    two states, and 'no separator where a digit goes' to a count of the separators. Shapes of one length must
    have their separators in the same number."""
    separators = sorted({ch for shape in shapes for ch in shape} - {"_"}, key=lambda ch: (ch == "-", ch))
    if set(separators) & set("%\\]^["):
        raise ValueError(f"not a separator _shaped can test: {separators}")
    groups: dict[int, list[str]] = {}
    for shape in shapes:
        groups.setdefault(len(shape), []).append(shape)
    counts = {length: {len(shape) - shape.count("_") for shape in group} for length, group in groups.items()}
    if any(len(count) != 1 for count in counts.values()):
        raise ValueError(f"shapes of one length with different separators: {shapes}")
    separators_at = {length: min(count) for length, count in counts.items()}  # (the one count of each length)

    def likes(group: list[str]) -> str:
        return " OR ".join(f"{cell} LIKE {_lit(shape)}" for shape in group)

    if len(groups) == 1:
        ((length, group),) = groups.items()
        positions, expected = f"({likes(group)})", str(separators_at[length])
    else:
        cases = " ".join(f"WHEN {n} THEN {likes(group)}" for n, group in groups.items())
        positions = f"CASE length({cell}) {cases} ELSE false END"
        expected = f"CASE length({cell}) {' '.join(f'WHEN {n} THEN {c}' for n, c in separators_at.items())} END"
    if not separators:
        return f"{positions} AND {cell} ~ '^[0-9]+$'"
    without = cell
    for separator in separators:
        without = f"replace({without}, {_lit(separator)}, '')"
    characters = _lit("^[0-9" + "".join(separators) + "]+$")
    return f"{positions} AND {cell} ~ {characters} AND length({cell}) - length({without}) = {expected}"


def _spaced(text: str, separators: set[str]) -> str:
    """The text with each of these separators written as a space (replace() runs about three times faster
    than translate(), which reads every character for a multibyte match)."""
    for separator in sorted(separators - {" "}):
        text = f"replace({text}, {_lit(separator)}, ' ')"
    return text


def _iso_date(name: str, cell: str) -> _Field:
    """'iso' in UTC: the numbers split on the separators once the cell matches _ISO (the zone suffix dropped)."""
    match = f"m_{name}"
    bare = f"CASE WHEN right({cell}, 1) = 'Z' THEN left({cell}, -1) WHEN right({cell}, 6) = '+00:00' " \
        f"THEN left({cell}, -6) WHEN right({cell}, 4) IN (' UTC', ' GMT') THEN left({cell}, -4) " \
        f"ELSE {cell} END"  # fmt: skip
    parts = f"string_to_array({_spaced(bare, set('-T:.'))}, ' ')"
    # The shapes without a zone suffix first, by their cheaper test (a subset of _ISO, split the same way).
    shaped = f"string_to_array({_spaced(cell, set('-T:.'))}, ' ')"
    general = f"WHEN {cell} ~ {_lit(_ISO)} THEN {parts}"
    pre = ((match, f"CASE WHEN {_shaped(cell, _ISO_SHAPES)} THEN {shaped} {general} END"),)
    names = ["y", "m", "d", "h", "mi", "s", "us"]
    post = tuple(
        (
            f"dt_{n}",
            f"coalesce(rpad({match}[{i + 1}], 6, '0'), '0')::int"
            if n == "us"
            else f"coalesce({match}[{i + 1}], '0')::int",
        )  # fmt: skip
        for i, n in enumerate(names)
    )
    return replace(_date_field(name, "UTC", match, pre, post, names), fraction=True)


def _compact_date(name: str, cell: str, zone: str, *, with_time: bool = False) -> _Field:
    """'%Y%m%d' (IBKR Flex: '20240315'), or '%Y%m%d;%H%M%S' ('20240315;093005'): Python's parser reads 8 digits
    as 4 + 2 + 2 (its month and day groups are greedy) and 6 as 2 + 2 + 2, so SQL takes them by position;
    other lengths go to Python."""
    match = f"m_{name}"
    names = ["y", "m", "d", "h", "mi", "s"] if with_time else ["y", "m", "d"]
    starts = [1, 5, 7, 10, 12, 14][: len(names)]
    parts = "ARRAY[" + ", ".join(f"substr({cell}, {start}, {4 if start == 1 else 2})" for start in starts) + "]"
    shape = "________;______" if with_time else "________"  # exactly '^[0-9]{8};[0-9]{6}$', '^[0-9]{8}$'
    pre = ((match, f"CASE WHEN {_shaped(cell, [shape])} THEN {parts} END"),)
    post = tuple((f"dt_{n}", f"({match}[{i + 1}])::int") for i, n in enumerate(names))
    return _date_field(name, zone, match, pre, post, names)


def _date_field(
    name: str,
    zone: str,
    match: str,
    pre: tuple[tuple[str, str], ...],
    post: tuple[tuple[str, str], ...],
    names: list[str],
) -> _Field:
    """The datetime field from the numbers `post` extracts: checked like datetime(), then made in the zone."""
    part = {n: f"dt_{n}" for n in names}
    if "yy" in part:
        part["y"] = f"(CASE WHEN {part['yy']} < 69 THEN 2000 + {part['yy']} ELSE 1900 + {part['yy']} END)"
    y, m, d = part["y"], part["m"], part["d"]
    h, mi, s = part.get("h", "0"), part.get("mi", "0"), part.get("s", "0")
    microseconds = f" + {part['us']} * interval '1 microsecond'" if "us" in part else ""
    leap = f"(mod({y}, 4) = 0 AND (mod({y}, 100) <> 0 OR mod({y}, 400) = 0))"  # no '%': psycopg placeholders
    days = f"CASE WHEN {m} IN (4, 6, 9, 11) THEN 30 WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END ELSE 31 END"
    # datetime() raises on these in Python; make_timestamptz would raise too (aborting the batch), so
    # they are checked first and such rows go to Python for its message.
    valid = f"{y} >= 1 AND {m} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {days} AND {h} <= 23 AND {mi} <= 59 AND {s} <= 59"
    value = f"(make_timestamptz({y}, {m}, {d}, {h}, {mi}, {s}, {_lit(zone)}){microseconds})"
    # validate_order's range (trade_date_problem): from 1900 to tomorrow; CASE keeps make_timestamptz from
    # seeing an impossible date. Rows outside go to Python for its message.
    # Another zone's offsets before 1970 may differ between Python's tz database and Postgres's: Python.
    earliest = EARLIEST_TRADE_YEAR if zone == "UTC" else max(EARLIEST_TRADE_YEAR, 1970)
    in_range = f"{y} >= {earliest} AND {value} <= now() + interval '1 day'"
    ok = f"CASE WHEN {match} IS NULL THEN false WHEN {valid} THEN {in_range} ELSE false END"
    return _Field(name, ok, value, pre, post, zone=zone)


def _side(name: str, cell: str, options: dict[str, Any], known: tuple[str, ...] = ()) -> _Field | None:
    """words.side_builder: the admin's map first (its keys stripped and case-folded; 'BUY - MARKET', 'Market
    buy'), then the built-in buy/sell words. SQL compares printable-ASCII cells lower-cased; a word with other
    letters ('Köp', 'Sälj', 'sprzedaż') it compares case-exactly in each usual spelling (Postgres's lower()
    depends on the database's locale, Python's casefold() does not). Python's verdict on every word is taken
    as it is; any other cell goes to Python.

    `known`: values the column is known to hold (a row filter's list, such as Schwab's 'Sell Short', 'Buy to
    Open'): Python's own verdict on each (words.side_of reads phrases word by word) joins the table."""
    if set(options) - {"map"} or name != "side":
        return None
    python = side_builder(options)
    extra: dict[str, str] = {}  # lower-cased printable ASCII -> side
    exact: dict[str, str] = {}  # a spelling of a word with other letters, as the cell must hold it -> side
    others: list[str] = []
    for key, value in (options.get("map") or {}).items():
        word, side = str(key).strip(), str(value).upper()
        if side not in ("BUY", "SELL"):
            return None  # a value validate_order refuses: Python
        if re.fullmatch(_ASCII_TEXT, word):
            extra[word.lower()] = side
        else:
            others.append(word)
    words = {word: "BUY" for word in BUY_WORDS} | {word: "SELL" for word in SELL_WORDS}
    others += [w for w in words if not w.isascii()]
    words = {w: side for w, side in words.items() if re.fullmatch(r"[a-z]+( [a-z]+)*", w) and w not in extra}
    for value in known:
        # A cell SQL reads is printable ASCII without surrounding blanks: Python's verdict on it depends on its
        # lower-cased text only (the map's casefold(), side_of's strip().casefold()), so one call decides it.
        word = value.strip()
        if not word.isascii():
            others.append(word)
        elif re.fullmatch(_ASCII_TEXT, word) and word.lower() not in extra and word.lower() not in words:
            try:
                extra[word.lower()] = python(word)
            except ConversionError:
                continue  # Python refuses it: such rows go to Python for its message
    for word in others:
        for spelling in _spellings(word):
            try:
                exact[spelling] = python(spelling)
            except ConversionError:
                continue
    table = {**extra, **words}
    # Both tables' words are printable ASCII without surrounding blanks, and lower() in the C collation changes
    # ASCII letters only: a cell lower-cased that way is one of them only when it is that word in some case, so
    # no pattern has to say first that the cell is ASCII (two regexes a row less). A placeholder the map lists
    # ('n/a') is Python's: the text cleaner reads it as empty.
    accepted = sorted(word for word in table if word not in _ASCII_PLACEHOLDERS)
    ok = f"{_lower(cell)} IN ({_lits(accepted)})"
    # `value` is only read where `ok` holds, so the cell is one of the tables' words: a hashed IN of the
    # buying ones says which (a CASE of 60 words compares them one by one).
    buying = sorted(word for word, side in table.items() if side == "BUY")
    # A spelling beyond ASCII is never a lower-cased ASCII word: the two lists cannot both claim a cell.
    buys = [f"{_lower(cell)} IN ({_lits(buying)})"]
    if exact:
        ok = f"({ok}) OR {cell} IN ({_lits(sorted(exact))})"
        exact_buying = sorted(word for word, side in exact.items() if side == "BUY")
        if exact_buying:
            buys.append(f"{cell} IN ({_lits(exact_buying)})")
    return _Field(name, ok, f"CASE WHEN {' OR '.join(buys)} THEN 'BUY' ELSE 'SELL' END")


def _side_from_sign(name: str, cell: str, options: dict[str, Any]) -> _Field | None:
    """BUY or SELL from the sign of a plain number (words.side_from_sign_builder); zero, and any number that is
    not plain ('(5)', '1,234', ' 5 '), goes to Python for its message or its own reading."""
    negative = str(options.get("negative_is", "SELL")).upper()
    if set(options) - {"negative_is", "decimal_sep"} or name != "side" or negative not in ("BUY", "SELL"):
        return None
    pattern = _PLAIN_INTEGER if options.get("decimal_sep") == "," else _PLAIN_NUMBER
    positive = "BUY" if negative == "SELL" else "SELL"
    alias = f"n_{name}"
    pre = ((alias, f"CASE WHEN {_is_number(cell, pattern)} THEN ({cell})::numeric END"),)
    value = f"CASE WHEN {alias} < 0 THEN {_lit(negative)} ELSE {_lit(positive)} END"
    return _Field(name, f"{alias} IS NOT NULL AND {alias} <> 0", value, pre)


def _currency(name: str, cell: str, options: dict[str, Any]) -> _Field | None:
    if options or name != "currency":
        return None
    # words.currency_builder: the upper-cased cell, renamed when it is one of CURRENCY_SYMBOLS' codes ('CAN' is
    # Desjardins' CAD, 'RMB' the CNY), then the codes validate_order accepts (currency_problem); other codes (USDT,
    # '€', '50.00 SEK') go to Python.
    renamed = {
        key: CURRENCY_SYMBOLS[key]
        for key in CURRENCY_SYMBOLS
        if len(key) == 3 and key.isascii() and key.isalpha() and currency_problem(CURRENCY_SYMBOLS[key]) is None
    }
    blocked = {key for key in CURRENCY_SYMBOLS if len(key) == 3 and key.isascii() and key.isalpha()}
    accepted = sorted(code for code in ISO_4217 | CRYPTO_3 if code not in blocked)
    # A code written in capitals (nearly every cell) is found without the pattern and upper().
    codes = _lits(accepted)
    ok = f"({cell} IN ({codes}) OR ({cell} ~ '^[A-Za-z]{{3}}$' AND {_upper(cell)} IN ({_lits([*accepted, *renamed])})))"
    value = _upper(cell)
    if renamed:
        cases = " ".join(f"WHEN {_lit(key)} THEN {_lit(code)}" for key, code in sorted(renamed.items()))
        value = f"CASE {value} {cases} ELSE {value} END"
    return _Field(name, ok, value)


def _constant(name: str, value: Any) -> _Field | None:
    if not isinstance(value, str) or value != value.strip() or not value.isascii():
        return None
    good = {
        "currency": currency_problem(value) is None,
        "side": value in ("BUY", "SELL"),
        "symbol": 0 < len(value) <= 64,
        "account": len(value) <= 64,
        "broker_trade_id": 0 < len(value) <= 128,
    }.get(name, False)
    if not good:
        return None
    return _Field(name, "true", _lit(value))


_BUILDERS: dict[str, Callable[[str, str, dict[str, Any]], _Field | None]] = {
    "text": _text,
    "decimal": _decimal,
    "datetime": _datetime,
    "side": _side,
    "side_from_sign": _side_from_sign,
    "currency": _currency,
}

_TEMP_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS airlock_fast (
    id bigint, line int, ok bool, account text, symbol text, side text, quantity numeric, price numeric,
    commission numeric, currency text, executed_at timestamptz, broker_trade_id text, dedupe_key text,
    digest text, copies int, raw jsonb
) ON COMMIT DELETE ROWS
"""

# Orders are linked to their instrument as they are written (INSTRUMENT_MAP_SQL, as imports/targets/orders.py does).
# The batch's rows: the ones SQL converted (the temp table) and the ones Python converted (the arrays).
_ORDER_ROWS = """
    SELECT line, account, symbol, side, quantity, price, commission, currency, executed_at, broker_trade_id,
           dedupe_key FROM pg_temp.airlock_fast WHERE ok
    UNION ALL
    SELECT * FROM unnest(%(line)s::int[], %(account)s::text[], %(symbol)s::text[], %(side)s::text[],
                         %(quantity)s::numeric[], %(price)s::numeric[], %(commission)s::numeric[],
                         %(currency)s::text[], %(executed_at)s::timestamptz[], %(broker_trade_id)s::text[],
                         %(dedupe_key)s::text[])
"""
# In key order: two transactions writing overlapping keys wait for each other in the same order (no deadlock).
# Byte order (COLLATE "C", as Python's sort of the per-row path orders them): the keys are ASCII, any fixed order
# does, and it sorts a batch about a third faster than the database's locale.
# `{instrument}`: the join to the instrument map, or NULL when the owner has no instrument to link to.
_ORDER_INSERT = """
    INSERT INTO imports_order (owner_id, account, symbol, side, quantity, price, commission, currency,
                               executed_at, broker_trade_id, source_file_id, source_line, dedupe_key, created_at,
                               instrument_id)
    SELECT %(owner)s, coalesce(account, ''), symbol, side, quantity, price, coalesce(commission, 0), currency,
           executed_at, coalesce(broker_trade_id, ''), %(file)s, line, dedupe_key, now(), {instrument}
    ORDER BY dedupe_key COLLATE "C", line
"""
_LINKED = f"m.instrument_id FROM rows LEFT JOIN {INSTRUMENT_MAP_SQL} m ON m.value = upper(btrim(rows.symbol))"
_UNLINKED = "NULL::bigint FROM rows"
# Nearly every batch conflicts with nothing: a plain INSERT first, about 30% cheaper than ON CONFLICT's
# speculative insertion (which probes both unique indexes before each row). A unique violation rolls it back
# (a savepoint) and the batch is written again with the ON CONFLICT form, which sorts the conflicting rows out.
_INSERT_ORDERS_PLAIN = "WITH rows AS ({rows}) {insert}"
_INSERT_ORDERS = """
WITH rows AS ({rows}), inserted AS ({insert}
    ON CONFLICT DO NOTHING
    RETURNING source_line
)
SELECT (SELECT count(*) FROM inserted),
       coalesce((SELECT array_agg(r.line) FROM rows r WHERE r.line NOT IN (SELECT source_line FROM inserted)),
                '{{}}'), (SELECT count(*) FROM rows)
"""
# (plain, with conflicts) x (linked, unlinked)
_ORDER_WRITES = {
    (conflicts, linked): template.format(
        rows=_ORDER_ROWS, insert=_ORDER_INSERT.format(instrument=_LINKED if linked else _UNLINKED)
    )
    for conflicts, template in ((False, _INSERT_ORDERS_PLAIN), (True, _INSERT_ORDERS))
    for linked in (True, False)
}


def _unless_unique_violation(cursor: Any, sql: str, params: dict[str, Any]) -> int | None:
    """Run an INSERT in a savepoint: its row count, or None (nothing written) when it hit a unique violation."""
    try:
        with transaction.atomic():
            cursor.execute(sql, params)
            return cursor.rowcount
    except IntegrityError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != UniqueViolation.sqlstate:
            raise
    return None


def _insert_orders(cursor: Any, params: dict[str, Any]) -> tuple[list[int], int]:
    """Write a batch's valid rows as orders: (the lines that hit a conflict, how many rows there were).

    They are linked to their instruments as they are written, unless the owner has none yet (then every link
    would be empty: the join is left out, a millisecond of a 1,000-row file; orders_reconcile after the file
    links them should instruments have come meanwhile)."""
    cursor.execute("SELECT EXISTS (SELECT 1 FROM imports_instrument WHERE owner_id = %s)", [params["owner"]])
    linked = cursor.fetchone()[0]
    written = _unless_unique_violation(cursor, _ORDER_WRITES[False, linked], params)
    if written is not None:
        return [], written
    cursor.execute(_ORDER_WRITES[True, linked], params)
    _, not_inserted, writable = cursor.fetchone()
    return list(not_inserted or []), writable


def _claim_params(
    plan: FastPlan, file_id: int, statuses: tuple[str, ...], limit: int, after: int = 0
) -> dict[str, Any]:
    if len(statuses) != plan.statuses:
        raise ValueError(f"the plan claims rows of {plan.statuses} statuses, not {len(statuses)}")
    return {
        "file_id": file_id,
        "limit": limit,
        "after": after,
        **{f"status_{n}": status for n, status in enumerate(statuses)},
    }


# A batch of staged rows is dense (claimed by one range of ids, select_sql) when its ids span at most this many times
# as many ids as it has rows: a file staged alongside others has its ids interleaved with theirs, and the range scan
# then reads their rows too (and drops them). 4 bounds that waste; it is not a measured crossover.
DENSE_SPAN = 4


def claim_params(
    plan: FastPlan, file_id: int, statuses: tuple[str, ...], ids: list[int]
) -> tuple[dict[str, Any], bool]:
    """The parameters of the claim of these staged rows (select_sql), and whether the batch is dense."""
    params = {**_claim_params(plan, file_id, statuses, len(ids)), "ids": ids}
    if not ids:
        return params, False
    params["first_id"], params["last_id"] = min(ids), max(ids)
    return params, params["last_id"] - params["first_id"] < DENSE_SPAN * len(ids)


def batch_size() -> int:
    """Rows per fast-path batch (one transaction each): set-based work needs big batches to pay off."""
    return max(settings.AIRLOCK["BATCH_SIZE"], settings.AIRLOCK.get("FAST_BATCH_SIZE", 20_000))


def open_rows(
    *, plan: FastPlan, file_id: int, statuses: tuple[str, ...], limit: int, after: int = 0
) -> tuple[list[int], int]:
    """The ids of the next `limit` open staged rows of a file after line `after`, in line order, and the
    last of their lines (0 when there are none)."""
    with connection.cursor() as cursor:
        cursor.execute(plan.claim_sql(), _claim_params(plan, file_id, statuses, limit, after))
        rows = cursor.fetchall()
    return [row_id for row_id, _ in rows], (rows[-1][1] if rows else 0)


# ON COMMIT DELETE ROWS only empties it at a real commit; inside an outer transaction it must be cleared.
_FRESH_TEMP_TABLE = f"{_TEMP_TABLE}; DELETE FROM pg_temp.airlock_fast"


def _fresh_temp_table(cursor: Any) -> None:
    cursor.execute(_FRESH_TEMP_TABLE)  # (both in one round trip)


Declined = list[tuple[int, int, list[str]]]  # (staged row id or line, line, cells) of the rows SQL declined


def batch_prepare(*, plan: FastPlan, file_id: int, ids: list[int], statuses: tuple[str, ...]) -> Declined:
    """Claim these staged rows (deleted: see select_sql) and convert them in SQL; returns the rows SQL declined.

    Runs inside the caller's transaction, which `batch_finish` then completes."""
    assert connection.in_atomic_block, "claim staged rows inside the caller's transaction"
    with connection.cursor() as cursor:
        _fresh_temp_table(cursor)
        params, dense = claim_params(plan, file_id, statuses, ids)
        cursor.execute(plan.select_sql(dense=dense), params)
        cursor.execute("SELECT id, line, raw FROM pg_temp.airlock_fast WHERE NOT ok ORDER BY line")
        return [
            (row_id, line, raw if isinstance(raw, list) else orjson.loads(raw))
            for row_id, line, raw in cursor.fetchall()
        ]


def batch_finish(
    file: ImportFile,
    compiled: CompiledFormat,
    dedupe: DedupeKeys | None,
    declined: Declined,
    outcome: BatchOutcome,
    *,
    plan: FastPlan,
) -> None:
    """Write the orders of a prepared batch and stage again, with their outcome, its rows that did not become one."""
    with connection.cursor() as cursor:
        marks = _write_orders(
            cursor, file, compiled, dedupe, declined, outcome, fingerprints=plan.dedupe_by_fingerprint
        )
        if not marks:
            return
        # The claim deleted every row of the batch: the invalid, skipped and duplicate ones come back.
        cursor.execute(
            "SELECT id, line, raw FROM pg_temp.airlock_fast WHERE id = ANY(%s::bigint[])", [[m[0] for m in marks]]
        )
        claimed = {row_id: (line, raw if isinstance(raw, list) else orjson.loads(raw)) for row_id, line, raw in cursor}
    staged_rows_write_outcomes(
        file_id=file.pk,
        format_id=file.format_id,
        rows=[(*claimed[row_id], status, errors) for row_id, status, errors in marks],
        ids=[row_id for row_id, _, _ in marks],
    )


def chunk_prepare(records: list[tuple[int, list[str]]], *, plan: FastPlan) -> Declined:
    """Rows read straight from the file of an approved format: their cells are COPYed into a temp table
    and converted by the same SQL as staged rows. Returns the rows SQL declined (id = line).

    Runs inside the caller's transaction, which `chunk_finish` then completes."""
    assert connection.in_atomic_block, "import a chunk inside the caller's transaction"
    create, convert = plan.incoming_sql()
    names = ", ".join(["line", "width", *(f"c{i}" for i in plan.cells)])
    with connection.cursor() as cursor:
        _fresh_temp_table(cursor)
        cursor.execute("DROP TABLE IF EXISTS pg_temp.airlock_incoming")
        cursor.execute(create)
        with cursor.cursor.copy(f"COPY pg_temp.airlock_incoming ({names}) FROM STDIN") as copy:
            wanted = plan.cells
            for line, cells in records:
                width = len(cells)
                copy.write_row((line, width, *[cells[i] if i < width else "" for i in wanted]))
        cursor.execute(convert)
        cursor.execute("SELECT line FROM pg_temp.airlock_fast WHERE NOT ok ORDER BY line")
        declined = {line for (line,) in cursor.fetchall()}
    return [(line, line, cells) for line, cells in records if line in declined]


# A session keeps at most this many prepared conversions (one per format and width it imported blocks of); past
# it they are all let go, so a worker that meets thousands of formats does not grow without bound.
PREPARED_PER_SESSION = 32


def _prepared_name(sql: str) -> str:
    return "airlock_" + hashlib.sha256(sql.encode()).hexdigest()[:24]


def prepared_state_sql(sql: str) -> str:
    """The one-row query (prepared?, how many of ours) that _execute_prepared asks the session before running `sql`;
    a caller may have it answered in a round trip of its own (block_copy's check) and pass the answer on."""
    return (
        f"SELECT coalesce(bool_or(name = '{_prepared_name(sql)}'), false), count(*) FROM pg_prepared_statements "
        "WHERE name LIKE 'airlock%'"
    )


def _execute_prepared(cursor: Any, sql: str, *, state: tuple[bool, int] | None = None, then: str = "") -> None:
    """Run a statement without parameters that the session runs again and again (a format's conversion of a
    block: ~10 KB of SQL) as a prepared statement: parsed and planned once per session, not once per block
    (~2 ms of a 1,000-row file). Whether it is prepared is asked of the session itself (pg_prepared_statements),
    so a new or reset session simply prepares it again. `state`: the answer to prepared_state_sql(sql), when the
    caller asked it in the same transaction; `then`: a statement without parameters sent in the same round trip,
    whose result the cursor then holds."""
    name = _prepared_name(sql)
    if state is None:
        cursor.execute(prepared_state_sql(sql))
        state = cursor.fetchone()
    prepared, count = state
    if not prepared:
        if count >= PREPARED_PER_SESSION:  # (ours only: the driver may hold prepared statements of its own)
            cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'airlock%'")
            cursor.execute("".join(f"DEALLOCATE {old};" for (old,) in cursor.fetchall()))
        cursor.execute(f"PREPARE {name} AS {sql}")
    if not then:
        cursor.execute(f"EXECUTE {name}")
        return
    cursor.execute(f"EXECUTE {name}; {then}")
    cursor.nextset()


def _cell_names(width: int) -> str:
    """The columns a block's cells are COPYed into: c0, c1... (one per column of the file)."""
    return ", ".join(f"c{i}" for i in range(width))


def block_table(width: int) -> str:
    """The temp table a block of a file of `width` columns is parsed into: (line, width, c0...), one row per line.

    It stays for the session (emptied at each commit), so the statements that read it stay valid: the conversion
    of a format's blocks is prepared once per session (_execute_prepared), not parsed and planned per block."""
    return f"pg_temp.airlock_block_{int(width)}"


def block_copy(
    cursor: Any, block: Block, *, width: int, delimiter: str, header_name: str, before: str = "", asked: str = ""
) -> tuple[Any, ...]:
    """A block of a CSV file's lines (imports/reading/blocks.py) parsed by Postgres into the session's (empty)
    block_table(width), one row per line; raises BlockRefused (the caller's transaction must then roll back)
    when that parse is not the reader's. Round trips saved for the caller: `before` (statements without
    parameters) is run in the one that readies the table, and the answer to `asked` (a one-row query) comes back
    with the check's, as the returned tuple."""
    names = _cell_names(width)
    columns = ", ".join(f"c{i} text" for i in range(width))
    table = block_table(width)
    # `line` numbers the rows in the order COPY reads them: the block's lines, one row each (checked below).
    # (Emptied first: ON COMMIT DELETE ROWS only empties it at a real commit, not inside an outer transaction.)
    cursor.execute(
        (f"{before}; " if before else "")
        + f"CREATE TEMP TABLE IF NOT EXISTS {table.removeprefix('pg_temp.')} (line int GENERATED ALWAYS AS IDENTITY "
        f"(MINVALUE 0), width int DEFAULT {int(width)}, c_none int DEFAULT 1, {columns}) ON COMMIT DELETE ROWS; "
        f"DELETE FROM {table}; "
        f"SELECT setval(pg_get_serial_sequence('{table}', 'line'), {int(block.first_line)}, false)"
    )
    try:
        with cursor.cursor.copy(
            f"COPY {table} ({names}) FROM STDIN "
            f"(FORMAT csv, DELIMITER {_lit(delimiter)}, QUOTE '\"', FORCE_NOT_NULL ({names}), ENCODING 'UTF8')"
        ) as copy:
            copy.write(block.data)
    except DataError as exc:  # a row of another width, an unclosed quote, bytes that are not UTF-8...
        raise BlockRefused(f"lines {block.first_line}-{block.last_line}: {exc.diag.message_primary}") from exc
    # What the bytes could not show: a quoted line break (two lines, one row), a row the reader would look at
    # twice (second cell empty: blank, text line; first cell the header's first name: repeated header).
    odd = "c1 = '' OR c0 = %s"
    if block.spaced:  # (the reader trims such cells: "a, b" is 'b' to it, ' b' to COPY)
        odd += "".join(f" OR c{i} LIKE ' %%' OR c{i} LIKE '%% '" for i in range(width))
    check = f"SELECT count(*), min(line) FILTER (WHERE {odd}) FROM {table}"
    if asked:
        check = f"SELECT * FROM ({check}) AS checked, ({asked.replace('%', '%%')}) AS asked"
    cursor.execute(check, [header_name])
    rows, odd, *answer = cursor.fetchone()
    if rows != block.rows or odd is not None:
        raise BlockRefused(
            f"lines {block.first_line}-{block.last_line}: {rows} rows for {block.rows} lines"
            + (f", line {odd} is not a plain record" if odd is not None else "")
        )
    return tuple(answer)


def block_prepare(block: Block, *, plan: FastPlan, width: int, delimiter: str, header_name: str) -> Declined:
    """A block of plain lines parsed by Postgres (block_copy) into the temp table `chunk_prepare` COPYs cells
    into, then converted by the same SQL. Returns the rows SQL declined; raises BlockRefused (see block_copy).

    Runs inside the caller's transaction, which `chunk_finish` then completes."""
    assert connection.in_atomic_block, "import a block inside the caller's transaction"
    names = _cell_names(width)
    convert = plan.block_sql(width)
    with connection.cursor() as cursor:
        # Three round trips: the temp tables readied, the block checked (with whether the session has the
        # conversion prepared), the conversion run with the read of what it declined.
        state = block_copy(
            cursor,
            block,
            width=width,
            delimiter=delimiter,
            header_name=header_name,
            before=_FRESH_TEMP_TABLE,
            asked=prepared_state_sql(convert),
        )
        _execute_prepared(
            cursor,
            convert,
            state=(state[0], state[1]),
            then=(
                f"SELECT line, ARRAY[{names}] FROM {block_table(width)} "
                "WHERE line IN (SELECT line FROM pg_temp.airlock_fast WHERE NOT ok) ORDER BY line"
            ),
        )
        return [(line, line, cells) for line, cells in cursor.fetchall()]


def block_cells(lines: list[int], *, width: int) -> dict[int, list[str]]:
    """The cells of these lines of the block `block_prepare` parsed (in the same transaction)."""
    # (Every list of numbers is cast to its column's type: psycopg sends numbers below 32,768 as a smallint[], which
    # Postgres compares with an int column element by element instead of hashing: 20,000 lines, 1.5 s, not 8 ms.)
    names = _cell_names(width)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT line, ARRAY[{names}] FROM {block_table(width)} WHERE line = ANY(%s::int[])", [lines])
        return dict(cursor.fetchall())


def chunk_finish(
    file: ImportFile,
    compiled: CompiledFormat,
    dedupe: DedupeKeys | None,
    cells_of: Callable[[list[int]], dict[int, list[str]]],
    declined: Declined,
    *,
    format_id: int,
    outcome: BatchOutcome,
    plan: FastPlan,
) -> None:
    """Write the orders of a prepared chunk; only the rows that do not become an order (invalid, skipped,
    duplicate) are staged, with their errors, for the reports and re-runs. `cells_of`: the cells of lines."""
    with connection.cursor() as cursor:
        marks = _write_orders(
            cursor, file, compiled, dedupe, declined, outcome, fingerprints=plan.dedupe_by_fingerprint
        )
    if marks:
        # The rows Python converted came with their cells (most marks: a format's skipped rows); only the others
        # (duplicates SQL converted) are read again.
        by_line = {row_id: cells for row_id, _, cells in declined}  # (id = line: rows read from the file)
        others = [row_id for row_id, _, _ in marks if row_id not in by_line]
        if others:
            by_line.update(cells_of(others))
        staged_rows_write_outcomes(
            file_id=file.pk,
            format_id=format_id,
            rows=[(line, by_line[line], status, errors) for line, status, errors in marks],
        )


def _write_orders(
    cursor: Any,
    file: ImportFile,
    compiled: CompiledFormat,
    dedupe: DedupeKeys | None,
    declined: list[tuple[int, int, list[str]]],
    outcome: BatchOutcome,
    *,
    fingerprints: bool,
) -> list[Mark]:
    """Convert the declined rows in Python, write every valid row of the batch, and return the marks
    [(id, status, errors)] of the rows that did not become an order; counts go to `outcome`."""
    marks: list[Mark] = []
    python_valid: list[tuple[int, TargetRow]] = []
    for row_id, line, cells in declined:
        verdict, values, errors = compiled.convert(cells)
        if outcome.route(row_id, verdict, errors, marks):
            python_valid.append((row_id, TargetRow(line, values, "")))
    if dedupe is not None:
        _assign_keys(cursor, dedupe, python_valid, fingerprints=fingerprints)
    columns = order_columns([order for _, order in python_valid])
    not_inserted, writable = _insert_orders(cursor, {"owner": file.owner_id, "file": file.pk, **columns})
    # Rows that hit a conflict: another file's (or another line's) order with the same trade identity
    # is a duplicate; this very row written by an earlier run of the batch counts as migrated.
    duplicates = 0
    if not_inserted:
        cursor.execute(
            "SELECT line, dedupe_key, id FROM pg_temp.airlock_fast WHERE ok AND line = ANY(%s::int[])", [not_inserted]
        )
        fast_missing = {line: (key, row_id) for line, key, row_id in cursor.fetchall()}
        missed = set(not_inserted)
        python_missing = {o.line: (o.dedupe_key, row_id) for row_id, o in python_valid if o.line in missed}
        missing = {**fast_missing, **python_missing}
        earlier = WRITER.existing_by_key(owner_id=file.owner_id, keys=[k for k, _ in missing.values()])
        for line, (key, row_id) in sorted(missing.items()):
            source = earlier.get(key)
            if source and source != (file.pk, line):
                duplicates += 1
                marks.append((row_id, StagedStatus.DUPLICATE, duplicate_errors(key, source)))
    outcome.duplicate += duplicates
    outcome.imported += writable - duplicates
    return marks


_RENUMBER_AFTER_EARLIER_BATCHES = f"""
WITH batch AS (
    SELECT digest, count(*)::int AS n FROM pg_temp.airlock_fast WHERE ok AND digest IS NOT NULL GROUP BY digest
), {OCCURRENCES_ADD}, earlier AS (
    SELECT digest, t.n - b.n AS before FROM totals t JOIN batch b USING (digest) WHERE t.n > b.n
)
UPDATE pg_temp.airlock_fast AS f SET dedupe_key = f.digest || '#' || (e.before + split_part(f.dedupe_key, '#', 2)::int)
FROM earlier e WHERE f.digest = e.digest AND f.ok
"""


def _assign_keys(
    cursor: Any, dedupe: DedupeKeys, python_valid: list[tuple[int, TargetRow]], *, fingerprints: bool
) -> None:
    """Give every valid row of the batch its dedupe key in line order, as the Python path does.

    The SQL rows' fingerprints are numbered within the batch by the conversion (`digest`, key '<digest>#<n>').
    When no row of the batch was converted by Python, those numbers stand unless an earlier batch of the file had
    the same digest: the batch's totals go in as new rows of the file's counters (a plain INSERT, which a digest
    seen before makes fail), else the counters are added to and the rows of such digests numbered on from them.
    When Python converted some, Postgres numbers the SQL rows' and the Python rows' digests together after the
    file's earlier batches (occurrences_sql), and the SQL rows' keys are set again. `fingerprints`: whether the
    plan gives SQL rows a digest (False: they are keyed by their trade id, only Python's rows may need numbers)."""
    numbered = dedupe.digests([order for _, order in python_valid])
    params = {"file_id": dedupe.file_id}
    if not numbered:
        if not fingerprints:  # (no row of the batch has a digest: nothing to count)
            return
        # (The conversion wrote the rows in the digests' order, which is the counters' index order: the hex of a
        # digest sorts as its bytes. Each insertion lands next to the one before, a sixth cheaper than at random.)
        counters = (
            f"INSERT INTO {OCCURRENCES_TABLE} (file_id, digest, n) SELECT %(file_id)s, decode(digest, 'hex'), "
            "copies FROM pg_temp.airlock_fast WHERE copies IS NOT NULL"
        )
        if _unless_unique_violation(cursor, counters, params) is not None:
            return
        # Some fills were seen before (a file of daily trades without times repeats many): the counters go up
        # by the batch's own, and only the rows of a digest the earlier batches had get their number moved on.
        cursor.execute(_RENUMBER_AFTER_EARLIER_BATCHES, params)
        return
    lines = [line for line, _ in numbered]
    source = (
        "SELECT line, digest FROM pg_temp.airlock_fast WHERE ok AND digest IS NOT NULL "
        "UNION ALL SELECT * FROM unnest(%(lines)s::int[], %(digests)s::text[])"
    )
    cursor.execute(
        occurrences_sql(source)
        + """, written AS (
            UPDATE pg_temp.airlock_fast AS f SET dedupe_key = keyed.key FROM keyed
            WHERE f.line = keyed.line AND f.ok AND f.digest IS NOT NULL
        )
        SELECT line, key FROM keyed WHERE line = ANY(%(lines)s::int[])""",
        {**params, "lines": lines, "digests": [digest for _, digest in numbered]},
    )
    keys = dict(cursor.fetchall())
    for _, order in python_valid:
        order.dedupe_key = keys.get(order.line, order.dedupe_key)


def accepted_lines(*, plan: FastPlan, file_id: int, statuses: tuple[str, ...], limit: int = 1_000_000) -> list[int]:
    """The lines of a file's open rows that SQL would convert itself (the rest go to Python); changes nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        ids, _ = open_rows(plan=plan, file_id=file_id, statuses=statuses, limit=limit)
        batch_prepare(plan=plan, file_id=file_id, ids=ids, statuses=statuses)
        cursor.execute("SELECT line FROM pg_temp.airlock_fast WHERE ok ORDER BY line")
        lines = [line for (line,) in cursor.fetchall()]
        transaction.set_rollback(True)
    return lines
