"""How often the mapping suggestion picks the right columns on real broker files whose mapping is known."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import AppError, ConversionError
from formats.converters import build_cleaner
from formats.services import learned_evidence
from formats.suggest import suggest_mapping
from formats.targets import get_target
from imports.sheets.dispatch import detect_layout, sample_records, sheet_limits

DEFAULT_EXPECTED = Path(settings.BASE_DIR) / "tests" / "fixtures" / "corpus_expected_mappings.json"
TARGET = "orders"


@dataclass
class FileResult:
    path: str
    scored: int = 0
    correct: int = 0
    mistakes: list[str] = field(default_factory=list)
    side_ok: bool | None = None
    confidences: list[tuple[float, bool]] = field(default_factory=list)  # (suggested confidence, column right)
    date_ok: bool | None = None
    error: str = ""


def suggest_for_file(path: Path, *, learned: dict[str, dict[str, int]]) -> tuple[dict[str, Any], list[list[str]]]:
    """The suggestion exactly as imports/pipeline/process.py `_match_format` makes it for a new header."""
    limits = sheet_limits(settings.AIRLOCK)
    layout = detect_layout(path, None, limits=limits)
    sample = [record.cells for record in sample_records(path, layout, settings.AIRLOCK["SUGGEST_ROWS"], limits=limits)]
    mapping = suggest_mapping(
        target=TARGET,
        columns=layout.columns,
        sample_rows=sample,
        learned=learned,
        header=layout.header,
        context=layout.context,
        joined=bool(layout.ledger),
    )
    return {"mapping": mapping, "columns": layout.columns}, sample


def suggested_columns(fields: dict[str, Any], name: str) -> list[str]:
    """The columns a suggested mapping's fields give one target field ([] when the field is not suggested)."""
    return list((fields.get(name) or {}).get("columns") or [])


def _dates_agree(
    spec: dict[str, Any] | None,
    expected_formats: list[str],
    columns: list[str],
    expected_columns: list[str],
    sample: list[list[str]],
) -> bool | None:
    """True when the suggested date converter reads every sample date the way the expected formats do."""
    if not expected_formats:
        return None
    if (
        not spec
        or list(spec.get("columns") or []) != expected_columns
        or spec.get("converter") not in ("datetime", "date")
    ):
        return False
    # Compare in UTC: the timezone is a separate choice the file rarely tells. The expected formats come
    # from our own fixture, so a bad one is a fixture bug and may raise.
    expected = build_cleaner("datetime", {"formats": expected_formats, "tz": "UTC"})
    try:
        suggested = build_cleaner(spec["converter"], {**(spec.get("options") or {}), "tz": "UTC"})
    except AppError:
        return False
    indexes = [columns.index(column) for column in expected_columns]
    compared = 0
    for row in sample:
        cells = [row[i] if i < len(row) else "" for i in indexes]
        try:
            want = expected(cells)
        except ConversionError:
            continue  # not a date the expected formats read (a '-' on a dividend row): nothing to compare
        compared += 1
        try:
            if suggested(cells) != want:
                return False
        except ConversionError:
            return False
    return True if compared else None


def score_file(path: Path, expectation: dict[str, Any], *, learned: dict[str, dict[str, int]]) -> FileResult:
    """Compare the suggestion for one file with its expected columns per field, side converter and dates."""
    result = FileResult(path=str(path))
    try:
        suggestion, sample = suggest_for_file(path, learned=learned)
    except AppError as exc:
        result.error = exc.message
        return result
    fields = suggestion["mapping"].get("fields") or {}
    for name, expected_columns in expectation["fields"].items():
        got = suggested_columns(fields, name)
        result.scored += 1
        right = got == list(expected_columns)
        result.confidences.append((float((fields.get(name) or {}).get("confidence") or 0.0), right))
        if right:
            result.correct += 1
        else:
            result.mistakes.append(f"{name}: expected {expected_columns or '(none)'}, suggested {got or '(none)'}")
    side = fields.get("side") or {}
    if expectation.get("side_converter"):
        result.side_ok = side.get("converter") == expectation["side_converter"] and list(
            side.get("columns") or []
        ) == list(expectation["fields"].get("side") or [])
    result.date_ok = _dates_agree(
        fields.get("executed_at"),
        expectation.get("date_formats") or [],
        suggestion["columns"],
        list(expectation["fields"].get("executed_at") or []),
        sample,
    )
    return result


# Confidence bands of the calibration tables (this command and suggestion_loop): half-open, the last closed.
BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0))


def band_of(confidence: float) -> int:
    for index, (low, high) in enumerate(BANDS):
        if low <= confidence < high or (high == 1.0 and confidence == 1.0):
            return index
    return 0 if confidence < 0 else len(BANDS) - 1


def pct(numerator: int, denominator: int) -> str:
    return f"{100.0 * numerator / denominator:5.1f}%" if denominator else "   n/a"


class Command(BaseCommand):
    help = (
        "Run the mapping suggestion on every corpus file whose correct mapping is known and print per-field "
        "and overall accuracy."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("corpus", help="The corpus folder (e.g. ../shared/corpus).")
        parser.add_argument(
            "--expected",
            default=str(DEFAULT_EXPECTED),
            help="JSON of expected mappings (default tests/fixtures/corpus_expected_mappings.json).",
        )
        parser.add_argument(
            "--with-learned",
            action="store_true",
            help="Also use what admins approved in this database (as the pipeline does); default "
            "off so the figure measures the suggestion alone and does not depend on the data.",
        )
        parser.add_argument("--verbose-mistakes", action="store_true", help="List every wrong field.")

    def handle(self, *args: Any, **options: Any) -> None:
        corpus = Path(options["corpus"])
        if not corpus.is_dir():
            raise CommandError(f"Corpus folder {corpus} not found.")
        try:
            expected = json.loads(Path(options["expected"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the expected mappings {options['expected']}: {exc}") from exc
        files: dict[str, Any] = expected.get("files") or {}
        if not files:
            raise CommandError(f"{options['expected']} lists no files under 'files'.")
        learned = learned_evidence(target=TARGET) if options["with_learned"] else {}
        order = [f.name for f in get_target(TARGET).fields]
        per_field: dict[str, Counter] = {name: Counter() for name in order}
        results: list[FileResult] = []
        missing: list[str] = []
        for relative, expectation in sorted(files.items()):
            path = corpus / relative
            if not path.exists():
                missing.append(relative)
                continue
            result = score_file(path, expectation, learned=learned)
            result.path = relative
            results.append(result)
            if result.error:
                continue
            wrong = {m.split(":", 1)[0] for m in result.mistakes}
            for name in expectation["fields"]:
                per_field.setdefault(name, Counter())["scored"] += 1
                per_field[name]["correct"] += name not in wrong

        out = self.stdout
        out.write(
            f"Mapping suggestion accuracy on {len(results)} corpus files "
            f"({'with' if learned else 'without'} learned evidence)\n"
        )
        width = max([len(r.path) for r in results] + [4])
        out.write(f"{'file':<{width}}  correct/fields  side  dates  wrong fields")
        for r in results:
            if r.error:
                out.write(f"{r.path:<{width}}  UNREADABLE: {r.error}")
                continue
            flag = {True: "ok", False: "WRONG", None: "-"}
            wrong = ", ".join(m.split(":", 1)[0] for m in r.mistakes)
            out.write(
                f"{r.path:<{width}}  {r.correct:>3}/{r.scored:<3} {pct(r.correct, r.scored)}"
                f"  {flag[r.side_ok]:<5} {flag[r.date_ok]:<5}  {wrong}"
            )
        out.write("\nPer field:")
        out.write(f"{'field':<16} {'correct':>7} {'scored':>6}  accuracy")
        for name, counts in per_field.items():
            if counts["scored"]:
                accuracy = pct(counts["correct"], counts["scored"])
                out.write(f"{name:<16} {counts['correct']:>7} {counts['scored']:>6}  {accuracy}")
        scored = [r for r in results if not r.error]
        fields_total = sum(r.scored for r in scored)
        fields_correct = sum(r.correct for r in scored)
        exact = sum(1 for r in scored if r.correct == r.scored)
        sides = [r.side_ok for r in scored if r.side_ok is not None]
        dates = [r.date_ok for r in scored if r.date_ok is not None]
        out.write("")
        out.write(f"side converter correct: {sum(sides)}/{len(sides)} ({pct(sum(sides), len(sides)).strip()})")
        out.write(
            f"executed_at read correctly on the sample rows: {sum(dates)}/{len(dates)} "
            f"({pct(sum(dates), len(dates)).strip()})"
        )
        out.write(f"files with every scored field right: {exact}/{len(scored)}")
        overall = pct(fields_correct, fields_total).strip()
        out.write(f"OVERALL: {fields_correct}/{fields_total} fields correct ({overall})")
        out.write("\nConfidence calibration (fields scored, fraction whose columns were right):")
        points = [point for r in scored for point in r.confidences]
        for index, (low, high) in enumerate(BANDS):
            band = [right for confidence, right in points if band_of(confidence) == index]
            shown = f"[{low:.1f}, {high:.1f}{']' if high == 1.0 else ')'}"
            out.write(f"  {shown:<11} {len(band):>4} fields  {pct(sum(band), len(band)).strip():>6} right")
        if options["verbose_mistakes"]:
            out.write("\nMistakes:")
            for r in scored:
                for mistake in r.mistakes:
                    out.write(f"  {r.path}: {mistake}")
        if missing:
            self.stderr.write(f"{len(missing)} expected file(s) not found in {corpus}: {', '.join(missing)}")
