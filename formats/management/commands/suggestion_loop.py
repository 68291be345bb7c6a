"""The whole loop per corpus file: upload, suggest, approve the suggestion unchanged, import, compare.

Runs in a throwaway database (`airlock_loop_<pid>`, made by Django's test-database machinery on the same
server, migrated, dropped at the end), so the real data is never read or written. Every file runs in its
own transaction, rolled back when measured: the files do not see each other's approved formats (no learned
evidence between them) and the jobs the pipeline enqueues on commit are never sent to Redis: the command
runs them itself, synchronously, the way a worker would.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.test.utils import override_settings

from config.errors import AppError
from formats.builtin import load_builtin_formats
from formats.management.commands.mapping_accuracy import (
    BANDS,
    DEFAULT_EXPECTED,
    TARGET,
    band_of,
    pct,
    suggest_for_file,
    suggested_columns,
)
from formats.models import FormatStatus
from formats.services import learned_evidence
from imports.jobs.tasks import file_process_job, format_migrate_job
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve, upload_batch_create

DEFAULT_TRADES = Path(settings.BASE_DIR) / "tests" / "fixtures" / "corpus_expected_trades.json"
NO_TRADES = "NO_TRADES"  # the file status of the "this file holds no trades" verdict


@dataclass
class LoopResult:
    """What happened to one corpus file, and how it compares with what the file holds."""

    path: str
    kind: str  # "trades", "not_trades" or "unlisted"
    suggest_seconds: float | None = None
    status: str = ""
    error: str = ""
    approvable: bool | None = None  # None: nothing to approve (no pending format)
    why: str = ""
    orders: int = 0
    invalid: int = 0
    skipped: int = 0
    expected_orders: int | None = None
    first: list[str] = field(default_factory=list)  # differences in the first trade ([] = right)
    last: list[str] = field(default_factory=list)
    crash: str = ""
    format_id: int | None = None  # the format the file was matched to (None: refused before any)
    calibration: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def verdict(self) -> bool:
        return self.status == NO_TRADES

    @property
    def refused(self) -> bool:
        """Refused as unreadable before any suggestion (a binary or corrupted file): FAILED with its reason and
        no pending format, which the issue counts with the verdicts ('unreadable')."""
        return self.status == "FAILED" and self.format_id is None and bool(self.error) and not self.crash

    @property
    def exact(self) -> bool:
        return (
            self.kind == "trades"
            and not self.crash
            and not self.verdict
            and self.orders == self.expected_orders
            and self.orders > 0
            and not self.first
            and not self.last
        )


def load_expected_trades(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The expected trades per trade file and the reasons of the files that hold none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"Cannot read the expected trades {path}: {exc}") from exc
    return data.get("files") or {}, data.get("not_trades") or {}


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _zone(mapping: dict[str, Any]) -> ZoneInfo:
    """The time zone the approved mapping reads trade times in: the date a file writes is a date there."""
    spec = (mapping.get("fields") or {}).get("executed_at") or {}
    name = (spec.get("options") or {}).get("tz") or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _same_number(got: Decimal, expected: Any) -> bool:
    """Equal as numbers; a derived price (amount / quantity) may differ in its 10th decimal place."""
    want = _decimal(expected)
    return want is not None and abs(got - want) <= max(Decimal("1e-10"), abs(want) * Decimal("1e-9"))


def _trade_differences(order: Order, expected: dict[str, Any], zone: ZoneInfo) -> list[str]:
    differences = []
    symbols = expected["symbol"] if isinstance(expected["symbol"], list) else [expected["symbol"]]
    if order.symbol.strip().upper() not in {str(s).strip().upper() for s in symbols}:
        differences.append(f"symbol {order.symbol!r} (expected {' or '.join(map(repr, symbols))})")
    if order.side != expected["side"]:
        differences.append(f"side {order.side} (expected {expected['side']})")
    for name in ("quantity", "price"):
        got = getattr(order, name)
        if not _same_number(got, expected[name]):
            differences.append(f"{name} {got.normalize():f} (expected {expected[name]})")
    got_date = order.executed_at.astimezone(zone).date()
    if got_date != date.fromisoformat(expected["date"]):
        differences.append(f"date {got_date.isoformat()} (expected {expected['date']})")
    return differences


def compare_trade(order: Order, expected: dict[str, Any] | list[dict[str, Any]], zone: ZoneInfo) -> list[str]:
    """The fields of a stored order that differ from the expected trade, each saying both values.

    `expected` may list alternative readings of the same trade (a crypto pair read from either side): the
    order is right when it matches one; otherwise the differences from the closest one are given.
    """
    alternatives = expected if isinstance(expected, list) else [expected]
    return min((_trade_differences(order, one, zone) for one in alternatives), key=len)


def calibration_points(suggestion: dict[str, Any], expectation: dict[str, Any]) -> list[tuple[float, bool]]:
    """(confidence, column choice right) for each expected field the suggestion filled with a confidence."""
    fields = suggestion.get("fields") or {}
    points = []
    for name, expected_columns in (expectation.get("fields") or {}).items():
        spec = fields.get(name)
        if not spec or spec.get("confidence") is None:
            continue
        points.append((float(spec["confidence"]), suggested_columns(fields, name) == list(expected_columns)))
    return points


class ScratchDatabase:
    """A throwaway, migrated database on the configured server; the connection points at it while open."""

    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.connection = connections[alias]
        self.name = f"airlock_loop_{os.getpid()}"
        self.old_name = ""
        self.old_test_name: Any = None

    def __enter__(self) -> ScratchDatabase:
        test = self.connection.settings_dict.setdefault("TEST", {})
        self.old_name = self.connection.settings_dict["NAME"]
        self.old_test_name = test.get("NAME")
        test["NAME"] = self.name
        try:
            self.connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=False)
        except Exception:
            test["NAME"] = self.old_test_name
            raise
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            current = cursor.fetchone()[0]
        if current != self.name:  # never measure (and roll back) in the real database
            self.__exit__(None, None, None)
            raise CommandError(f"The scratch database is not in use (connected to {current!r}); stopped.")
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()
        self.connection.creation.destroy_test_db(self.old_name, verbosity=0, keepdb=False)
        self.connection.settings_dict["TEST"]["NAME"] = self.old_test_name


def make_users() -> tuple[Any, Any]:
    """An uploader and a second person with the approve permission (segregation of duties)."""
    users = get_user_model()
    uploader = users.objects.create_user(username="loop-uploader", password=None, email="")
    reviewer = users.objects.create_user(username="loop-reviewer", password=None, email="", is_staff=True)
    reviewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="formats", codename="approve_csvformat")
    )
    return uploader, users.objects.get(pk=reviewer.pk)


def run_file(
    path: Path,
    result: LoopResult,
    *,
    uploader: Any,
    reviewer: Any,
    learned: dict[str, dict[str, int]],
    expected: dict[str, Any] | None,
    mapping_expectation: dict[str, Any] | None,
) -> None:
    """Suggest (timed), upload, process, approve unchanged, migrate and compare one file (fills `result`)."""
    started = time.perf_counter()
    try:
        suggestion, _ = suggest_for_file(path, learned=learned)
    except AppError:
        suggestion = None  # unreadable: the pipeline says why below
    result.suggest_seconds = time.perf_counter() - started
    if suggestion is not None and mapping_expectation is not None:
        result.calibration = calibration_points(suggestion["mapping"], mapping_expectation)

    try:
        _, files = upload_batch_create(owner=uploader, files=[SimpleUploadedFile(path.name, path.read_bytes())])
    except AppError as exc:
        result.status, result.error = "REFUSED", f"{exc.http_status} {exc.code}: {exc.message}"
        result.approvable, result.why = False, f"upload refused: {result.error}"
        return
    file_id = files[0].pk
    file_process_job(file_id)
    file = ImportFile.objects.select_related("format").get(pk=file_id)
    fmt = file.format
    if file.status == FileStatus.PENDING_APPROVAL and fmt is not None and fmt.status == FormatStatus.PENDING:
        try:
            with transaction.atomic():
                review_approve(format_id=fmt.pk, actor=reviewer)
        except AppError as exc:
            result.approvable, result.why = False, f"approval refused: {exc.http_status} {exc.code}: {exc.message}"
        else:
            result.approvable = True
            format_migrate_job(fmt.pk)
    elif fmt is not None and fmt.builtin:
        result.why = f"built-in format '{fmt.name}'"
    else:
        result.approvable, result.why = False, f"no pending format: file {file.status}"
    file.refresh_from_db()
    result.status, result.error, result.format_id = file.status, file.error, file.format_id
    orders = list(Order.objects.filter(source_file=file).order_by("source_line"))
    result.orders, result.invalid, result.skipped = len(orders), file.rows_invalid, file.rows_skipped
    if expected is None:
        return
    if not orders:
        result.first = result.last = ["no orders"]
        return
    zone = _zone(file.format.mapping if file.format else {})
    result.first = compare_trade(orders[0], expected["first"], zone)
    result.last = compare_trade(orders[-1], expected["last"], zone)


class Command(BaseCommand):
    help = (
        "Run the whole suggestion loop on every corpus file in a throwaway database: upload, process, approve "
        "the suggested mapping unchanged, import, and compare the orders with the file's trades; print per "
        "file, totals, suggestion times and the calibration of the suggested confidences."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("corpus", help="The corpus folder (e.g. ../shared/corpus).")
        parser.add_argument(
            "--expected-trades",
            default=str(DEFAULT_TRADES),
            help="JSON of each file's trades (default tests/fixtures/corpus_expected_trades.json).",
        )
        parser.add_argument(
            "--expected-mappings",
            default=str(DEFAULT_EXPECTED),
            help="JSON of expected mappings, for the confidence calibration "
            "(default tests/fixtures/corpus_expected_mappings.json).",
        )
        parser.add_argument(
            "--with-builtin",
            action="store_true",
            help="Load the built-in formats first (as a deployment does): their files then import without a "
            "suggestion. Default off, so that every file measures the suggestion.",
        )
        parser.add_argument("--only", default="", help="Only the files whose path contains this text.")

    def handle(self, *args: Any, **options: Any) -> None:
        corpus = Path(options["corpus"])
        if not corpus.is_dir():
            raise CommandError(f"Corpus folder {corpus} not found.")
        trades, not_trades = load_expected_trades(Path(options["expected_trades"]))
        try:
            mappings = json.loads(Path(options["expected_mappings"]).read_text(encoding="utf-8")).get("files") or {}
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the expected mappings {options['expected_mappings']}: {exc}") from exc
        paths = sorted(
            p.relative_to(corpus).as_posix()
            for p in corpus.rglob("*")
            if p.is_file() and p.parent != corpus and not p.name.startswith(".")
        )
        paths = [p for p in paths if options["only"] in p]
        if not paths:
            raise CommandError(f"No corpus files found in {corpus}.")
        with (
            tempfile.TemporaryDirectory(prefix="airlock-loop-") as media,
            override_settings(
                MEDIA_ROOT=media,
                STORAGES={**settings.STORAGES, "default": {"BACKEND": "config.storage.DurableFileSystemStorage"}},
                EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            ),
            ScratchDatabase() as scratch,
        ):
            self.stderr.write(f"Scratch database {scratch.name} created and migrated.")
            results = self._run(corpus, paths, trades, not_trades, mappings, with_builtin=options["with_builtin"])
        self._report(results, trades, not_trades)

    def _run(
        self,
        corpus: Path,
        paths: list[str],
        trades: dict[str, Any],
        not_trades: dict[str, str],
        mappings: dict[str, Any],
        *,
        with_builtin: bool,
    ) -> list[LoopResult]:
        if with_builtin:
            load_builtin_formats()
        uploader, reviewer = make_users()
        learned = learned_evidence(target=TARGET)
        results = []
        for relative in paths:
            kind = "trades" if relative in trades else "not_trades" if relative in not_trades else "unlisted"
            result = LoopResult(path=relative, kind=kind)
            if kind == "trades":
                result.expected_orders = int(trades[relative]["trades"])
            try:
                with transaction.atomic():
                    run_file(
                        corpus / relative,
                        result,
                        uploader=uploader,
                        reviewer=reviewer,
                        learned=learned,
                        expected=trades.get(relative),
                        mapping_expectation=mappings.get(relative),
                    )
                    transaction.set_rollback(True)  # measured: nothing of this file stays, nothing is enqueued
            except Exception as exc:  # noqa: BLE001 - a crash of one file is reported, the loop goes on
                last = traceback.extract_tb(exc.__traceback__)[-1]
                result.crash = f"{type(exc).__name__}: {exc} (at {Path(last.filename).name}:{last.lineno})"
            results.append(result)
        return results

    def _report(self, results: list[LoopResult], trades: dict[str, Any], not_trades: dict[str, str]) -> None:
        out = self.stdout
        out.write(f"Suggestion loop on {len(results)} corpus files (each approved as suggested, in a scratch database)")
        for r in results:
            timing = f"suggested in {r.suggest_seconds:.3f} s" if r.suggest_seconds is not None else ""
            if r.kind == "trades":
                tag = "EXACT" if r.exact else "WRONG"
            elif r.kind == "not_trades":
                tag = "DECLARED" if r.verdict else "REFUSED" if r.refused else "UNDECLARED"
            else:
                tag = "UNLISTED"
            out.write(f"\n[{tag}] {r.path}  ({timing})")
            if r.crash:
                out.write(f"    CRASH: {r.crash}")
                continue
            if r.verdict:
                out.write(f"    verdict: no trades: {r.error}")
            else:
                if r.approvable is None:
                    approvable = f"n/a ({r.why})"
                else:
                    approvable = "yes" if r.approvable else f"no: {r.why}"
                out.write(f"    approvable as suggested: {approvable}")
                error = f"; error: {r.error[:300]}" if r.error else ""
                expected = f" / {r.expected_orders} expected" if r.expected_orders is not None else ""
                out.write(
                    f"    status {r.status}; orders {r.orders}{expected} (invalid rows {r.invalid}, "
                    f"skipped {r.skipped}){error}"
                )
            if r.kind == "trades" and not r.verdict:
                out.write(f"    first trade: {'right' if not r.first else 'wrong: ' + '; '.join(r.first)}")
                out.write(f"    last trade: {'right' if not r.last else 'wrong: ' + '; '.join(r.last)}")
            elif r.kind == "trades":
                out.write(f"    (the file holds {r.expected_orders} trades)")
            elif r.kind == "not_trades" and not r.verdict:
                out.write(f"    expected verdict: no trades: {not_trades[r.path]}")
                if r.refused:
                    out.write("    refused as unreadable: no format was created, the user sees why")

        trade_results = [r for r in results if r.kind == "trades"]
        other = [r for r in results if r.kind == "not_trades"]
        crashed = [r for r in results if r.crash]
        approvable = [r for r in results if r.approvable]
        times = sorted((r.suggest_seconds, r.path) for r in results if r.suggest_seconds is not None)
        out.write("\nTotals:")
        out.write(f"exact trade files: {sum(r.exact for r in trade_results)} of {len(trade_results)}")
        out.write(f"non-trade files declared so: {sum(r.verdict for r in other)} of {len(other)}")
        out.write(
            f"non-trade files declared so or refused as unreadable: {sum(r.verdict or r.refused for r in other)} "
            f"of {len(other)}"
        )
        out.write(
            f"approvable as suggested: {len(approvable)} of {len(results)} files "
            f"({sum(bool(r.approvable) for r in trade_results)} of {len(trade_results)} trade files)"
        )
        out.write(f"files that crashed the loop: {len(crashed)}")
        if times:
            median = statistics.median(t for t, _ in times)
            out.write(f"suggestion time: max {times[-1][0]:.3f} s ({times[-1][1]}), median {median:.3f} s")
        unlisted = [r.path for r in results if r.kind == "unlisted"]
        if unlisted:
            out.write(f"files in neither list of the expected trades: {', '.join(unlisted)}")

        out.write(
            "\nConfidence calibration (trade files with an expected mapping; a field is right when its columns are):"
        )
        out.write(f"{'band':<12} {'fields':>6} {'right':>6}  fraction")
        points = [point for r in trade_results for point in r.calibration]
        for index, (low, high) in enumerate(BANDS):
            in_band = [right for confidence, right in points if band_of(confidence) == index]
            label = f"[{low:.1f},{high:.1f}{']' if high == 1.0 else ')'}"
            out.write(f"{label:<12} {len(in_band):>6} {sum(in_band):>6}  {pct(sum(in_band), len(in_band))}")
        listed = set(trades) | set(not_trades)
        missing = sorted(listed - {r.path for r in results})
        if missing and len(results) > 1:
            self.stderr.write(f"{len(missing)} expected file(s) not found in the corpus: {', '.join(missing)}")
