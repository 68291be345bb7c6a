"""Streaming reader of Excel .xlsx/.xlsm workbooks (Office Open XML), in bounded memory.

The archive is checked first (imports/sheets/containers.py); then the workbook part (sheet names,
visibility, the 1900 or 1904 date system), the styles (which cell formats show dates and times) and
the shared-string table (imports/sheets/strings.py) are read, and a sheet's rows are parsed by expat as
they are inflated: a sheet of a million rows never exists in memory at once. Macros (`vbaProject.bin`)
are never opened; formulas are never evaluated: a formula cell reads as the value Excel saved with it.

Why not a library (measured on the same 1,000,000-row file, see the README): python-calamine reads a
sheet whole into memory (~0.9 GB for a million rows), openpyxl's read-only mode streams but reads ~20x
slower, and pandas drives either of them with the same costs plus a DataFrame.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from typing import Any
from xml.parsers import expat

from config.errors import UnreadableFile
from imports.sheets import cells as C
from imports.sheets.containers import (
    find_part,
    member_chunks,
    office_document,
    open_zip,
    read_member,
    xml_feed,
    xml_parser,
    xml_stream,
    zip_kind,
)
from imports.sheets.sniff import sniff_kind
from imports.sheets.strings import StringTable
from imports.sheets.workbook import MAX_SHEET_ROWS, Row, Sheet, SheetLimits, column_letters, merge_filler

MAIN_NAMESPACES = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
)
SMALL_PART_BYTES = 16 * 2**20  # workbook.xml, its rels: far smaller in any real workbook
MAX_STYLES = 65_536  # Excel allows 64,000 cell formats
MAX_MERGES = 100_000
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")  # Excel writes control characters as _x000D_


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text) if "_x" in text else text


class XlsxBook:
    """One open .xlsx workbook: its sheets and a streaming row reader per sheet."""

    kind = "xlsx"

    def __init__(self, path: Any, limits: SheetLimits) -> None:
        self.limits = limits
        with open(path, "rb") as handle:
            found = sniff_kind(handle, limits=limits.container)  # a clear refusal for anything else
        if found != "xlsx":
            raise UnreadableFile(f"This is not an Excel workbook (.xlsx) but a file of kind '{found}'.")
        self.archive = open_zip(path, limits.container)
        try:
            if zip_kind(self.archive) != "xlsx":
                raise UnreadableFile("This is not an Excel workbook.")
            self._open()
        except BaseException:
            self.archive.close()
            raise
        self._strings: StringTable | None = None
        self._merges: dict[str, list[tuple[int, int, int, int]]] = {}
        self._row_counts: dict[str, int] = {}

    # -- workbook structure ------------------------------------------------------------------------

    def _open(self) -> None:
        workbook = office_document(self.archive) or find_part(self.archive, "xl/workbook.xml")
        if workbook is None:
            raise UnreadableFile("The workbook has no workbook part (xl/workbook.xml); it is damaged.")
        rels = self._relationships(workbook)
        self.date1904 = False
        self.sheets: list[Sheet] = []
        self.formula_without_value = 0
        entries: list[tuple[str, str, str]] = []

        def start(name: str, attrs: dict[str, str]) -> None:
            local = name.rpartition("|")[2]
            if local == "workbookPr":
                self.date1904 = attrs.get("date1904", "").lower() in ("1", "true")
            elif local == "sheet":
                if len(entries) >= self.limits.max_sheets:
                    raise UnreadableFile(
                        f"The workbook has more than {self.limits.max_sheets:,} sheets; at most "
                        f"{self.limits.max_sheets:,} are read. Save the sheet with the trades on its own."
                    )
                rid = next((v for k, v in attrs.items() if k.rpartition("|")[2] == "id" and "|" in k), "")
                entries.append((attrs.get("name", ""), attrs.get("state", "visible"), rid))

        parser = xml_parser(namespaces=True)
        parser.StartElementHandler = start
        xml_feed(parser, [self._small(workbook)], workbook)
        for name, state, rid in entries:
            kind, target = rels.get(rid, ("", ""))
            if kind != "worksheet":
                continue  # chart sheets, dialog and macro sheets hold no table
            target = find_part(self.archive, target) or target
            if target not in self.archive.NameToInfo:
                raise UnreadableFile(f"Sheet '{name[:60]}' is missing from the workbook ({target}); it is damaged.")
            self.sheets.append(Sheet(name=name, index=len(self.sheets), hidden=state != "visible", ref=target))
        if not self.sheets:
            raise UnreadableFile("The workbook has no worksheet.")
        self._styles = self._read_styles(rels)
        self._strings_part = next((target for kind, target in rels.values() if kind == "sharedStrings"), None)

    def _small(self, name: str) -> bytes:
        info = self.archive.getinfo(name)
        if info.file_size > SMALL_PART_BYTES:
            raise UnreadableFile(f"'{name}' is {info.file_size:,} bytes; a workbook's {name} is far smaller.")
        return read_member(self.archive, name)

    def _relationships(self, source: str) -> dict[str, tuple[str, str]]:
        """{relationship id: (type's last word, target part)} of a part."""
        folder, name = posixpath.split(source.replace("\\", "/"))
        rels_part = find_part(self.archive, posixpath.join(folder, "_rels", name + ".rels"))
        if rels_part is None:
            return {}
        found: dict[str, tuple[str, str]] = {}

        def start(tag: str, attrs: dict[str, str]) -> None:
            if tag.rpartition("|")[2] == "Relationship" and attrs.get("TargetMode") != "External":
                target = attrs.get("Target", "")
                resolved = (
                    target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
                )
                found[attrs.get("Id", "")] = (attrs.get("Type", "").rpartition("/")[2], resolved)

        parser = xml_parser(namespaces=True)
        parser.StartElementHandler = start
        xml_feed(parser, [self._small(rels_part)], rels_part)
        return found

    def _read_styles(self, rels: dict[str, tuple[str, str]]) -> list[str | None]:
        """Per cell-format index (a cell's `s`): DATE/DATETIME/TIME/DURATION when it shows one, else None."""
        styles = next((target for kind, target in rels.values() if kind == "styles"), None)
        found = find_part(self.archive, styles) if styles else None
        if found is None:
            return []
        codes: dict[int, str] = {}
        formats: list[int] = []
        depth = {"cellXfs": 0}

        def start(name: str, attrs: dict[str, str]) -> None:
            local = name.rpartition("|")[2]
            if local == "numFmt":
                try:
                    codes[int(attrs.get("numFmtId", ""))] = attrs.get("formatCode", "")
                except ValueError:
                    pass
            elif local == "cellXfs":
                depth["cellXfs"] += 1
            elif local == "xf" and depth["cellXfs"]:
                if len(formats) >= MAX_STYLES:
                    raise UnreadableFile(f"The workbook defines more than {MAX_STYLES:,} cell formats; it is damaged.")
                try:
                    formats.append(int(attrs.get("numFmtId", "0")))
                except ValueError:
                    formats.append(0)

        def end(name: str) -> None:
            if name.rpartition("|")[2] == "cellXfs":
                depth["cellXfs"] -= 1

        parser = xml_parser(namespaces=True)
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        xml_feed(parser, member_chunks(self.archive, found), found)
        kinds: dict[int, str | None] = {}
        for number in set(formats):
            kinds[number] = C.format_kind(codes[number]) if number in codes else C.BUILTIN_FORMAT_KINDS.get(number)
        return [kinds[number] for number in formats]

    def strings(self) -> StringTable:
        """The shared-string table (read once, on first use)."""
        if self._strings is None:
            table = StringTable(self.limits.strings_memory)
            try:
                found = find_part(self.archive, self._strings_part) if self._strings_part else None
                if found is not None:
                    _read_shared_strings(self.archive, found, table, self.limits.max_field_chars)
                table.seal()
            except BaseException:
                table.close()
                raise
            self._strings = table
        return self._strings

    # -- rows ----------------------------------------------------------------------------------------

    def merges(self, sheet: Sheet) -> list[tuple[int, int, int, int]]:
        """The sheet's merged ranges (first row, first column, last row, last column), 1-based.

        They follow the cells in the sheet's XML, so the part is inflated once and searched for them
        (the rows are counted on the way, for progress)."""
        part = sheet.ref
        if part not in self._merges:
            self._merges[part], self._row_counts[part] = _scan_sheet(self.archive, part)
        return self._merges[part]

    def row_estimate(self, sheet: Sheet) -> int | None:
        """About how many rows the sheet has (its <row> elements), for progress."""
        self.merges(sheet)
        return self._row_counts.get(sheet.ref)

    def rows(self, sheet: Sheet, *, merges: bool = True) -> Iterator[Row]:
        """The sheet's rows in order (rows absent from the file are absent here)."""
        strings = self.strings()
        ranges = self.merges(sheet) if merges else []
        reader = _SheetReader(strings, self._styles, self.date1904, self.limits, sheet.name)
        rows = reader.parse(member_chunks(self.archive, sheet.ref), sheet.ref)
        yield from merge_filler(rows, ranges) if ranges else rows
        self.formula_without_value += reader.formula_without_value

    def close(self) -> None:
        if self._strings is not None:
            self._strings.close()
            self._strings = None
        self.archive.close()


def _read_shared_strings(archive: zipfile.ZipFile, part: str, table: StringTable, max_chars: int) -> None:
    """Fill the table from sharedStrings.xml: each <si>'s text (rich-text runs joined, phonetic runs left out)."""
    parts: list[str] = []
    size = 0
    state = {"text": False, "phonetic": 0}

    def start(name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition("|")[2]
        if local == "t" and not state["phonetic"]:
            state["text"] = True
        elif local == "rPh":
            state["phonetic"] += 1

    def end(name: str) -> None:
        nonlocal size
        local = name.rpartition("|")[2]
        if local == "t":
            state["text"] = False
        elif local == "rPh":
            state["phonetic"] -= 1
        elif local == "si":
            text = "".join(parts) if len(parts) != 1 else parts[0]
            parts.clear()
            size = 0
            table.append(text if text == _TOO_LONG else _unescape(text))

    def data(text: str) -> None:
        nonlocal size
        if state["text"]:
            size += len(text)
            if size > max_chars:
                # Too long for any cell we read: a marker is kept instead, and a cell that uses it is refused.
                parts[:] = [_TOO_LONG]
                return
            parts.append(text)

    parser = xml_parser(namespaces=True)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    xml_feed(parser, member_chunks(archive, part), part)


_TOO_LONG = "\x00too long\x00"


def _scan_sheet(archive: zipfile.ZipFile, part: str) -> tuple[list[tuple[int, int, int, int]], int]:
    """The <mergeCell ref="A1:B3"/> ranges of a sheet part and its number of <row> elements, found by
    searching the inflated bytes (C speed: find and count, no parsing).

    Cell text cannot hold '<' unescaped, so b'mergeCells' and b'<row ' only ever match markup. The
    mergeCells element's bytes are collected and parsed as a fragment."""
    found: list[tuple[int, int, int, int]] = []
    carry = b""
    collecting: list[bytes] | None = None
    collected = 0
    rows = 0
    for chunk in member_chunks(archive, part):
        rows += chunk.count(b"<row ") + chunk.count(b"<row>") + chunk.count(b":row ") + chunk.count(b":row>")
        data = carry + chunk
        if collecting is None:
            at = data.find(b"mergeCells")
            if at < 0:
                carry = data[-16:]
                continue
            start = data.rfind(b"<", 0, at)
            collecting = [data[start if start >= 0 else at :]]
            collected = len(collecting[0])
        else:
            collecting.append(chunk)
            collected += len(chunk)
        carry = b""
        if collected > 64 * 2**20:
            raise UnreadableFile(
                f"The sheet's list of merged cells is larger than 64 MB; at most {MAX_MERGES:,} are read."
            )
        if b"mergeCells>" in b"".join(collecting[-2:])[len(b"<mergeCells") :]:
            break  # the list is complete; only page settings and the like follow it
    if collecting is None:
        return found, rows
    fragment = b"".join(collecting)
    end = fragment.find(b"mergeCells>", len(b"<mergeCells"))
    fragment = fragment[: end + len(b"mergeCells>")] if end >= 0 else fragment
    refs: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if name.rpartition(":")[2] == "mergeCell":
            if len(refs) >= MAX_MERGES:
                raise UnreadableFile(
                    f"The sheet has more than {MAX_MERGES:,} merged ranges; at most that many are read."
                )
            refs.append(attrs.get("ref", ""))

    parser = xml_parser()
    parser.StartElementHandler = start
    try:
        parser.Parse(fragment, True)
    except expat.ExpatError:
        pass  # a fragment cut short (a damaged file): the ranges parsed so far are kept
    for ref in refs:
        first, _, last = ref.partition(":")
        a, b = _cell_position(first), _cell_position(last or first)
        if a and b:
            found.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
    return found, rows


_CELL_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d{1,7})")


def _cell_position(ref: str) -> tuple[int, int] | None:
    """(row, column), 1-based, of 'B12'; None when it is not a cell reference."""
    match = _CELL_REF.fullmatch(ref.strip())
    if match is None:
        return None
    return int(match.group(2)), column_number(match.group(1).upper())


_COLUMNS: dict[str, int] = {}


def column_number(letters: str) -> int:
    """1 for 'A', 27 for 'AA' (cached: a sheet uses few distinct columns)."""
    number = _COLUMNS.get(letters)
    if number is None:
        number = 0
        for ch in letters:
            number = number * 26 + ord(ch) - 64
        if len(_COLUMNS) < 20_000:
            _COLUMNS[letters] = number
    return number


class _SheetReader:
    """The expat handlers that turn a sheet part into rows of text cells."""

    def __init__(
        self, strings: StringTable, styles: list[str | None], date1904: bool, limits: SheetLimits, sheet: str
    ) -> None:
        self.strings = strings
        self.styles = styles
        self.date1904 = date1904
        self.limits = limits
        self.sheet = sheet
        self.formula_without_value = 0

    def parse(self, chunks: Iterator[bytes], part: str) -> Iterator[Row]:
        """The rows of the part, parsed as it is inflated (at most one chunk's rows are held).

        The handlers run for every cell of a sheet (millions), so they do the least per element: only
        start tags are handled (a cell is complete when the next cell or row starts, or the part ends);
        the text of a <v> or an inline string's <t> is collected by `list.append` itself, installed as
        expat's character-data handler while inside one; element names are compared by identity (expat
        hands out the strings of its `intern` table, which holds ours). Names are read without namespace
        processing (a third faster): the prefix of the main namespace is taken from the root element,
        and a cell, row or value element under any other prefix is refused rather than passed over."""
        strings, date1904 = self.strings, self.date1904
        # A cell's `s` attribute (as written) -> the date kind of that cell format, or None.
        kinds = {str(index): kind for index, kind in enumerate(self.styles) if kind}
        max_columns, max_chars, sheet = self.limits.max_columns, self.limits.max_field_chars, self.sheet
        number_text, serial_text, unescape = C.number_text_from_xml, _serial_text, _unescape
        columns = _COLUMNS
        chunks_of, starts_of, in_memory = strings.raw()
        parser = xml_parser()
        done: list[Row] = []
        prefix: list[str] = []
        ROW = CELL = VALUE = TEXT = FORMULA = PHONETIC = INLINE = "\x00"
        LOCAL = ("row", "c", "v", "t", "f", "rPh", "is", "r", "sheetData")
        # The row and the cell being read: the cell's column, type (`t`), date kind (from its style `s`),
        # whether it has a formula, and the text of its <v> (or of its inline string's <t> runs).
        row_cells: list[str] | None = None
        row_number = 0
        row_hidden = False
        column = 0
        ctype: str | None = None
        kind: str | None = None
        has_formula = False
        phonetic = False
        capturing = False
        parts: list[str] = []

        def setup(root: str, attrs: dict[str, str]) -> None:
            nonlocal ROW, CELL, VALUE, TEXT, FORMULA, PHONETIC, INLINE
            before, _, local = root.rpartition(":")
            space = attrs.get(f"xmlns:{before}" if before else "xmlns")
            if local != "worksheet" or space not in MAIN_NAMESPACES:
                raise UnreadableFile(f"'{part}' is not a worksheet (its root element is '{root[:80]}').")
            p = f"{before}:" if before else ""
            ROW, CELL, VALUE, TEXT, FORMULA, PHONETIC, INLINE = (
                f"{p}{n}" for n in ("row", "c", "v", "t", "f", "rPh", "is")
            )
            for name in (ROW, CELL, VALUE, TEXT, FORMULA, PHONETIC, INLINE):
                parser.intern[name] = name
            prefix.append(p)

        def finish_cell() -> None:
            """Add the cell just read to its row (called when the element after it starts)."""
            nonlocal parts, has_formula
            text = parts[0] if len(parts) == 1 else "".join(parts)
            parts = []
            has_formula = False
            if len(text) > max_chars:
                raise _too_long(sheet, row_number, column, max_chars)
            if ctype != "inlineStr":
                # A <v>'s text runs until the next element starts, so it may end with the indentation of a
                # pretty-printed file (an empty <v/> then holds only that): it is stripped.
                text = text.strip()
                if not text:
                    return
            if ctype == "s":
                try:
                    index = int(text)
                    if index < in_memory:
                        chunk, base = index >> 12, (index >> 12) * 4097 + (index & 4095)
                        value = chunks_of[chunk][starts_of[base] : starts_of[base + 1]]
                    else:
                        value = strings[index]
                except (ValueError, IndexError):
                    raise UnreadableFile(
                        f"Sheet '{sheet}', row {row_number}: a cell refers to shared string {text.strip()[:20]!r}, "
                        "which the workbook does not have; it is damaged."
                    ) from None
                if value == _TOO_LONG:
                    raise _too_long(sheet, row_number, column, max_chars)
                value = C.text_cell(value)
            elif ctype is None or ctype == "n":
                text = text.strip()
                value = number_text(text) if kind is None else serial_text(text, kind, date1904)
            elif ctype == "b":
                value = "TRUE" if text.strip() in ("1", "true") else "FALSE"
            elif ctype == "d":
                value = C.iso_text(text)
            else:  # inlineStr, str (a formula's text result), e (an error value such as #N/A)
                value = C.text_cell(unescape(text))
            if not value or row_cells is None:
                return
            filled = len(row_cells)
            if column == filled + 1:
                row_cells.append(value)
                return
            if column > max_columns:
                raise UnreadableFile(
                    f"Sheet '{sheet}', row {row_number} has a value in column {column_letters(column)} "
                    f"(column {column:,}); at most {max_columns} columns are read."
                )
            if column <= filled:
                raise UnreadableFile(
                    f"Sheet '{sheet}', row {row_number}: cell {column_letters(column)} comes after a cell to "
                    "its right; the sheet is damaged."
                )
            row_cells.extend([""] * (column - filled - 1))
            row_cells.append(value)

        def start(name: str, attrs: dict[str, str]) -> None:
            nonlocal column, ctype, kind, has_formula, phonetic, capturing
            nonlocal row_cells, row_number, row_hidden
            if name is CELL:
                if capturing:
                    parser.CharacterDataHandler = None
                    capturing = False
                if parts:
                    finish_cell()
                elif has_formula:
                    self.formula_without_value += 1
                ref = attrs.get("r")
                if ref:
                    letters = ref.rstrip("0123456789")
                    column = columns.get(letters) or (column_number(letters) if len(letters) <= 3 else 1 << 30)
                else:
                    column += 1
                ctype = attrs.get("t")
                kind = None if ctype else kinds.get(attrs.get("s"))
                has_formula = phonetic = False
            elif name is VALUE or (name is TEXT and not phonetic):
                parser.CharacterDataHandler = parts.append
                capturing = True
            elif name is INLINE:
                # An inline string's runs (<r><t>..</t></r>) are joined exactly: inside <is> the end tags
                # are handled too, so indentation between runs is not taken for text. Rare in exports.
                if capturing:
                    parser.CharacterDataHandler = None
                    capturing = False
                parser.EndElementHandler = end_inline
            elif name is ROW:
                if capturing:
                    parser.CharacterDataHandler = None
                    capturing = False
                finish_row()
                number = attrs.get("r")
                row_number = int(number) if number and number.isdigit() else row_number + 1
                if row_number > MAX_SHEET_ROWS:
                    raise UnreadableFile(
                        f"Sheet '{sheet}' has a row numbered {row_number:,}; a sheet has at most {MAX_SHEET_ROWS:,}."
                    )
                # Hidden by a filter or by hand (not a collapsed outline group, whose rows are data).
                row_hidden = attrs.get("hidden") in ("1", "true") and not attrs.get("outlineLevel", "0").strip("0")
                row_cells = []
                column = 0
            else:
                if capturing:
                    parser.CharacterDataHandler = None
                    capturing = False
                if name is FORMULA:
                    has_formula = True
                elif name is PHONETIC:
                    phonetic = True  # the phonetic guide after an inline string's text: not part of it
                elif not prefix:
                    setup(name, attrs)
                elif name.rpartition(":")[2] in LOCAL and not name.startswith(prefix[0] or name):
                    raise UnreadableFile(
                        f"'{part}' writes '{name[:40]}' with a namespace prefix other than its root's; "
                        "this reader does not read such sheets."
                    )

        def end_inline(name: str) -> None:
            nonlocal capturing
            if name is TEXT:
                parser.CharacterDataHandler = None
                capturing = False
            elif name is INLINE:
                parser.EndElementHandler = None

        def finish_row() -> None:
            nonlocal row_cells, has_formula
            if parts:
                finish_cell()
            elif has_formula:
                self.formula_without_value += 1
                has_formula = False
            if row_cells is not None:
                done.append(Row(row_number, row_hidden, row_cells))
                row_cells = None

        parser.StartElementHandler = start
        last = 0
        stream = xml_stream(parser, chunks, part)
        for _ in _after_row(stream, sheet, lambda: row_number):
            if len(parts) > 16 and sum(map(len, parts)) > max_chars:
                raise _too_long(sheet, row_number, column, max_chars)  # before a huge text piles up
            if done:
                for row in done:
                    if row.number <= last:
                        raise UnreadableFile(
                            f"Sheet '{sheet}': row {row.number} comes after row {last}; the sheet is damaged."
                        )
                    last = row.number
                yield from done
                done.clear()
        parser.CharacterDataHandler = None
        finish_row()
        for row in done:
            if row.number <= last:
                raise UnreadableFile(f"Sheet '{sheet}': row {row.number} comes after row {last}; the sheet is damaged.")
            last = row.number
        yield from done


def _after_row(stream: Iterator[None], sheet: str, row: Any) -> Iterator[None]:
    """The parse steps, a damaged part's error naming the row of the sheet it was reading."""
    try:
        yield from stream
    except UnreadableFile as exc:
        if row():
            raise UnreadableFile(f"Sheet '{sheet}', row {row()}: {exc.message}") from None
        raise


def _serial_text(text: str, kind: str, date1904: bool) -> str:
    try:
        serial = float(text)
    except ValueError:
        return text.strip()
    return C.serial_text(serial, kind, date1904=date1904)


def _too_long(sheet: str, row: int, column: int, max_chars: int) -> UnreadableFile:
    return UnreadableFile(
        f"Sheet '{sheet}', row {row}, column {column_letters(column)} holds more than {max_chars:,} characters; "
        "that is not a trade export."
    )


def open_book(path: Any, limits: SheetLimits | None = None) -> XlsxBook:
    """The workbook at `path` (raises UnreadableFile when it cannot be read)."""
    return XlsxBook(path, limits or SheetLimits())
