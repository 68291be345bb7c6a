"""JSON uploads as tables: an array of objects, an object holding arrays of objects, or NDJSON.

Accepted shapes (anything else is refused with a message saying what the JSON holds instead):

* an array of objects: `[{"symbol": "AAPL", ...}, ...]`; each object is a record, numbered from 1;
* an object holding arrays of objects, at its top level or one level down (`{"account": ..., "trades":
  [...]}`, `{"data": {"fills": [...]}}`): the format can pin the array by its path (`reader.section`,
  e.g. "data.fills"), else the one named "trades", else the longest is read;
* NDJSON / JSON Lines: one object per line; a record is numbered by its line.

A record becomes a row: nested objects are flattened with dotted names (`fill.price`), arrays of
scalars are joined with ", ", arrays holding objects or arrays are kept as compact JSON text; numbers
keep the digits the file wrote (`1.10` stays `1.10`, never a float), `true`/`false` stay words, `null`
is empty. The columns are every field of every record, in order of first appearance.

Reading is streaming (ijson, C backend) and runs twice: the first pass (layout detection) checks the
whole document -- nesting depth, duplicate keys in an object, string and number sizes, how many
distinct fields -- before a single record is imported, so a broken record far down refuses the file
instead of leaving it half imported; the second pass yields the records.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

import ijson

from config.errors import UnreadableFile
from imports.reading import FileLayout, ReaderOptions, Record, Skipped, _unique_columns
from imports.sheets import cells as C

MAX_DEPTH = 32  # nesting levels of arrays and objects in the document
MAX_LINE_BYTES = 8 * 2**20  # one NDJSON line
MAX_NUMBER_CHARS = 1000
CHUNK = 1 << 16
JOINER = ", "


@dataclass
class JsonLayout(FileLayout):
    """A JSON file's layout: `kind` json or ndjson, `section` the path of the records array ('' = the root)."""

    kind: str = "json"
    column_offset: int = 0
    rows: int | None = None  # how many records (progress)


@dataclass(frozen=True)
class JsonLimits:
    max_columns: int = 500
    max_field_chars: int = 100_000


# --------------------------------------------------------------------------------------------------
# Public API


def detect_json_layout(
    path: str | os.PathLike, options: ReaderOptions | None = None, limits: JsonLimits | None = None
) -> JsonLayout:
    """Check the whole document and work out where its records are and what their fields are."""
    options, limits = options or ReaderOptions(), limits or JsonLimits()
    if options.header_line:
        raise UnreadableFile("A JSON file has no header line: remove reader.header_line from the format's mapping.")
    with _open(path) as handle:
        shape = _shape(handle)
        if shape == "ndjson":
            columns: dict[str, None] = {}
            count = 0
            for _, record in _ndjson_values(handle, limits):
                if isinstance(record, dict):
                    _collect(columns, record, limits, count + 1)
                    count += 1
            return _layout("ndjson", None, [], list(columns), count)
        scan = _Scan(limits)
        scan.run(handle)
    name = _choose(scan, options)
    candidate = scan.candidates[name]
    if candidate.objects == 0:
        where = "the array" if name == "" else f'"{name}"'
        raise UnreadableFile(f"{where.capitalize()} holds no objects, so no records to import.")
    sections = [n for n, c in scan.candidates.items() if n and c.objects]
    assert candidate.columns is not None
    return _layout("json", name, sections, list(candidate.columns), candidate.items)


def iter_json_records(
    path: str | os.PathLike, layout: FileLayout, limits: JsonLimits | None = None
) -> Iterator[Record | Skipped]:
    """The records of the layout's array (or lines), as rows of the layout's columns."""
    limits = limits or JsonLimits()
    positions = {name: i for i, name in enumerate(layout.header)}
    width = len(layout.header)
    plans: dict[tuple[str, ...], list[int] | None] = {}  # key order -> positions, for records of scalars
    with _open(path) as handle:
        if getattr(layout, "kind", "json") == "ndjson":
            items: Iterator[tuple[int, Any]] = _ndjson_values(handle, limits)
        else:
            prefix = f"{layout.section}.item" if layout.section else "item"
            items = enumerate(ijson.items(_guarded(handle, limits), prefix, use_float=False), start=1)
        try:
            for number, value in items:
                if type(value) is not dict:
                    yield Skipped(number, f"{_what(value)}, not an object")
                    continue
                cells = [""] * width
                # Most records are flat and share their keys: their cells go straight to known positions.
                shape = tuple(value)
                plan = plans.get(shape, ())
                if plan == ():
                    plan = [positions.get(key, -1) for key in shape] if len(plans) < 1000 else None
                    plans[shape] = plan
                if plan is not None and -1 not in plan:
                    for position, item in zip(plan, value.values(), strict=True):
                        kind = type(item)
                        if kind is str:
                            cells[position] = C.text_cell(item)
                        elif kind is int:
                            cells[position] = str(item)
                        elif kind is dict or kind is list:
                            break
                        else:
                            cells[position] = _scalar_text(item)
                    else:
                        yield Record(number, cells)
                        continue
                    cells = [""] * width
                for name, text in _flatten(value, limits, number).items():
                    position = positions.get(name)
                    if position is None:
                        raise UnreadableFile(
                            f"Record {number} has the field '{name[:80]}', which the file did not have when its "
                            "layout was detected; the file has changed."
                        )
                    cells[position] = text
                yield Record(number, cells)
        except ijson.JSONError as exc:
            raise _malformed(exc) from None


def sample_json_records(path: str | os.PathLike, layout: FileLayout, n: int = 20) -> list[Record]:
    items = iter_json_records(path, layout)
    try:
        found: list[Record] = []
        for item in items:
            if isinstance(item, Record):
                found.append(item)
                if len(found) >= n:
                    break
        return found
    finally:
        items.close()


# --------------------------------------------------------------------------------------------------
# Shape, encoding, guards


class _open:
    """The file in binary, past a UTF-8 byte-order mark; UTF-16/32 JSON is refused."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.handle = open(path, "rb")
        head = self.handle.read(4)
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
            len(head) >= 2 and (head[0] == 0 or head[1] == 0)
        ):
            self.handle.close()
            raise UnreadableFile("The JSON is written in UTF-16 or UTF-32; save it as UTF-8 and upload it again.")
        self.handle.seek(3 if head.startswith(codecs.BOM_UTF8) else 0)
        self.start = self.handle.tell()

    def __enter__(self) -> IO[bytes]:
        return self.handle

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


_WHITESPACE = b" \t\r\n"


def _shape(handle: IO[bytes]) -> str:
    """'ndjson' when the first line is a whole JSON object and more follows it, else 'document'."""
    start = handle.tell()
    line = handle.readline(MAX_LINE_BYTES + 1)
    rest = handle.read(CHUNK)
    handle.seek(start)
    stripped = line.strip(_WHITESPACE)
    if not stripped.startswith(b"{") or not rest.strip(_WHITESPACE):
        return "document"
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return "document"
    return "ndjson" if isinstance(value, dict) else "document"


_LONG_NUMBER = re.compile(rb"[0-9.eE+-]{%d}" % MAX_NUMBER_CHARS)


class _guarded:
    """The file as ijson reads it, refusing a string or a number too long to be a cell before the parser
    buffers it.

    In each chunk read, escapes are removed (`\\\\` then `\\"`), so the quotes left delimit strings; the
    pieces between them alternate outside/inside a string, and their lengths are compared with the limit
    in C (split, len), not byte by byte."""

    def __init__(self, handle: IO[bytes], limits: JsonLimits) -> None:
        self.handle = handle
        self.limits = limits
        self.limit = limits.max_field_chars * 6 + 16  # bytes: a character may take 6 as a \\uXXXX escape
        self.inside = False
        self.run = 0
        self.escaped = False

    def read(self, size: int = CHUNK) -> bytes:
        chunk = self.handle.read(size)
        if chunk:
            self._check(chunk)
        return chunk

    def _check(self, chunk: bytes) -> None:
        limit = self.limit
        data = chunk[1:] if self.escaped else chunk
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        self.escaped = data.endswith(b"\\")
        pieces = data.split(b'"')
        count = len(pieces)
        if count == 1:
            if self.inside:
                self.run += len(data)
            elif len(data) > MAX_NUMBER_CHARS and _LONG_NUMBER.search(data):
                raise _number_too_long()
        else:
            inside = self.inside
            if inside and self.run + len(pieces[0]) > limit:
                raise _string_too_long(self.limits)
            middle_inside = pieces[2:-1:2] if inside else pieces[1:-1:2]
            if middle_inside and max(map(len, middle_inside)) > limit:
                raise _string_too_long(self.limits)
            outside = pieces[1:-1:2] if inside else pieces[0:-1:2]
            if outside and max(map(len, outside)) > MAX_NUMBER_CHARS and any(map(_LONG_NUMBER.search, outside)):
                raise _number_too_long()
            self.inside = inside != ((count - 1) % 2 == 1)
            self.run = len(pieces[-1]) if self.inside else 0
            if not self.inside and len(pieces[-1]) > MAX_NUMBER_CHARS and _LONG_NUMBER.search(pieces[-1]):
                raise _number_too_long()
        if self.inside and self.run > limit:
            raise _string_too_long(self.limits)


def _string_too_long(limits: JsonLimits) -> UnreadableFile:
    return UnreadableFile(
        f"The JSON holds a string longer than {limits.max_field_chars:,} characters; that is not a trade export."
    )


def _number_too_long() -> UnreadableFile:
    return UnreadableFile(f"The JSON holds a number longer than {MAX_NUMBER_CHARS} characters.")


def _malformed(exc: Exception) -> UnreadableFile:
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return UnreadableFile(f"The JSON is malformed: {message}.")


def _what(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


# --------------------------------------------------------------------------------------------------
# NDJSON


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: an object with a repeated key is refused (which value would be meant?)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


_decode = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=Decimal).decode


def _ndjson_values(handle: IO[bytes], limits: JsonLimits) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise UnreadableFile(f"Line {number} is longer than {MAX_LINE_BYTES // 2**20} MB; that is not a record.")
        text = line.strip(_WHITESPACE)
        if not text:
            continue
        try:
            value = _decode(text.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"Line {number} is not valid UTF-8 ({exc.reason}).") from None
        except _DuplicateKey as exc:
            raise _duplicate(exc.key, f"line {number}") from None
        except RecursionError:
            raise UnreadableFile(f"Line {number} is nested more than {MAX_DEPTH} levels deep.") from None
        except ValueError as exc:
            raise UnreadableFile(
                f"Line {number} is not one JSON value ({exc}); NDJSON files hold one object per line."
            ) from None
        if not isinstance(value, dict):
            raise UnreadableFile(
                f"Line {number} holds {_what(value)}, not an object; NDJSON files hold one object per line."
            )
        yield number, value


def _duplicate(key: str, where: str) -> UnreadableFile:
    return UnreadableFile(
        f'An object ({where}) has the key "{key[:80]}" twice; which value is meant cannot be told, so the file '
        "is refused."
    )


# --------------------------------------------------------------------------------------------------
# Records -> cells


def _collect(columns: dict[str, None], record: dict[str, Any], limits: JsonLimits, number: int) -> None:
    for name in _flatten(record, limits, number):
        if name not in columns:
            if len(columns) >= limits.max_columns:
                raise UnreadableFile(
                    f"The records have more than {limits.max_columns} different fields (record {number} adds "
                    f"'{name[:60]}'); at most {limits.max_columns} columns are read."
                )
            columns[name] = None


def _flatten(record: dict[str, Any], limits: JsonLimits, number: int) -> dict[str, str]:
    """{dotted name: text} of a record."""
    out: dict[str, str] = {}
    _flatten_into(out, record, "", 1, limits, number)
    return out


def _flatten_into(
    out: dict[str, str], value: dict[str, Any], prefix: str, depth: int, limits: JsonLimits, number: int
) -> None:
    if depth > MAX_DEPTH:
        raise UnreadableFile(f"Record {number} is nested more than {MAX_DEPTH} levels deep.")
    for key, item in value.items():
        name = prefix + key
        if type(item) is dict:
            _flatten_into(out, item, name + ".", depth + 1, limits, number)  # an empty object adds no column
            continue
        if type(item) is list:
            text = _list_text(item, depth + 1, number)
        else:
            text = _scalar_text(item)
        if name in out:
            raise UnreadableFile(
                f"Record {number} has the field '{name[:80]}' twice (a key with a dot in it and a nested object "
                "give the same name)."
            )
        if len(text) > limits.max_field_chars:
            raise UnreadableFile(
                f"Record {number}, field '{name[:80]}' holds more than {limits.max_field_chars:,} characters."
            )
        out[name] = text


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return C.text_cell(value)
    if isinstance(value, Decimal):
        text = format(value, "f")
        return "0" if text == "-0" else text
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def _list_text(items: list[Any], depth: int, number: int) -> str:
    if depth > MAX_DEPTH:
        raise UnreadableFile(f"Record {number} is nested more than {MAX_DEPTH} levels deep.")
    if all(type(item) not in (dict, list) for item in items):
        return JOINER.join(text for text in map(_scalar_text, items) if text)
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(type(value).__name__)


# --------------------------------------------------------------------------------------------------
# JSON documents: the checking pass


@dataclass
class _Candidate:
    """An array reachable from the root through objects only: where records may be."""

    items: int = 0
    objects: int = 0
    columns: dict[str, None] | None = None
    too_wide: str = ""


class _Scan:
    """One streaming pass over a JSON document (ijson's basic events, no values built): nesting depth,
    duplicate keys, string lengths, and for every candidate array its item count and the union of its
    records' fields (named as `_flatten` names them)."""

    def __init__(self, limits: JsonLimits) -> None:
        self.limits = limits
        self.candidates: dict[str, _Candidate] = {}
        self.root_kind = ""

    def run(self, handle: IO[bytes]) -> None:
        try:
            self._run(handle)
        except ijson.JSONError as exc:
            raise _malformed(exc) from None
        if self.root_kind not in ("object", "array"):
            raise UnreadableFile(
                f"The file is JSON holding {self.root_kind or 'nothing'}, not records. JSON uploads must be an array "
                "of objects, an object holding an array of objects, or one object per line (NDJSON)."
            )

    def _run(self, handle: IO[bytes]) -> None:  # noqa: C901 - one event loop, kept flat for speed
        max_chars, max_columns = self.limits.max_field_chars, self.limits.max_columns
        # Outside records: frames [kind, current key or item count, path or None, keys seen].
        stack: list[list[Any]] = []
        # Inside a record: `frames` holds, per open container of the record, (is_map, name prefix, keys
        # seen); `opaque` counts containers below a field whose value is an array (one column, no names).
        record: _Candidate | None = None
        frames: list[tuple[bool, str, set[str]]] = []
        opaque = 0
        key = ""
        number = 0
        names: set[str] = set()  # the record's field names so far: a dotted key must not repeat a nested one
        for event, value in ijson.basic_parse(_guarded(handle, self.limits), use_float=False):
            if record is not None:
                if event == "map_key":
                    keys = frames[-1][2]
                    if value in keys:
                        raise _duplicate(value, f"record {number}")
                    keys.add(value)
                    key = value
                    continue
                top = frames[-1]
                if event == "start_map" or event == "start_array":
                    if len(stack) + len(frames) >= MAX_DEPTH:
                        raise UnreadableFile(f"Record {number} is nested more than {MAX_DEPTH} levels deep.")
                    if opaque or not top[0]:
                        opaque += 1
                        frames.append((event == "start_map", "", set()))
                    elif event == "start_map":
                        frames.append((True, top[1] + key + ".", set()))
                    else:
                        self._field(record, names, top[1] + key, number, max_columns)
                        opaque = 1
                        frames.append((False, "", set()))
                    continue
                if event == "end_map" or event == "end_array":
                    frames.pop()
                    if opaque:
                        opaque -= 1
                    if not frames:
                        record = None
                    continue
                if type(value) is str and len(value) > max_chars:
                    raise UnreadableFile(f"Record {number} holds a value longer than {max_chars:,} characters.")
                if not opaque and top[0]:
                    self._field(record, names, top[1] + key, number, max_columns)
                continue
            if event == "map_key":
                frame = stack[-1]
                if value in frame[3]:
                    raise _duplicate(value, f"at '{frame[2]}'" if frame[2] else "at the top level")
                frame[3].add(value)
                frame[1] = value
                continue
            if event == "end_map" or event == "end_array":
                stack.pop()
                continue
            if len(stack) >= MAX_DEPTH and (event == "start_map" or event == "start_array"):
                raise UnreadableFile(f"The JSON is nested more than {MAX_DEPTH} levels deep.")
            parent = stack[-1] if stack else None
            if parent is not None and parent[0] == "array":
                parent[1] += 1
                owner = self.candidates.get(parent[2]) if parent[2] is not None else None
                if owner is not None:
                    owner.items += 1
                    if event == "start_map":  # a record starts
                        owner.objects += 1
                        record, number, opaque = owner, owner.items, 0
                        frames = [(True, "", set())]
                        names = set()
                        continue
                    if event == "start_array":  # an array inside a records array: not a place for records
                        stack.append(["array", 0, None, None])
                    continue
            if event == "start_map":
                stack.append(["map", None, self._child_path(parent), set()])
                if parent is None:
                    self.root_kind = "object"
            elif event == "start_array":
                path = self._child_path(parent)
                if path is not None and len(self.candidates) < 1000:
                    self.candidates.setdefault(path, _Candidate(columns={}))
                stack.append(["array", 0, path, None])
                if parent is None:
                    self.root_kind = "array"
            elif parent is None:
                self.root_kind = _what(value)
            elif type(value) is str and len(value) > max_chars:
                raise UnreadableFile(f"The JSON holds a value longer than {max_chars:,} characters.")

    @staticmethod
    def _field(record: _Candidate, names: set[str], name: str, number: int, max_columns: int) -> None:
        if name in names:
            raise UnreadableFile(
                f"Record {number} has the field '{name[:80]}' twice (a key with a dot in it and a nested object "
                "give the same name)."
            )
        names.add(name)
        columns = record.columns
        assert columns is not None
        if name in columns or record.too_wide:
            return
        if len(columns) >= max_columns:
            record.too_wide = (
                f"The records have more than {max_columns} different fields (record {number} adds "
                f"'{name[:60]}'); at most {max_columns} columns are read."
            )
            return
        columns[name] = None

    @staticmethod
    def _child_path(parent: list[Any] | None) -> str | None:
        """The path of a container about to start: '' for the root, 'a' / 'a.b' under objects (two levels)."""
        if parent is None:
            return ""
        if parent[0] != "map" or parent[2] is None:
            return None
        key = parent[1]
        if "." in key:
            return None  # a dotted key cannot be told from a nested path
        path = f"{parent[2]}.{key}" if parent[2] else key
        return path if path.count(".") < 2 else None


def _choose(scan: _Scan, options: ReaderOptions) -> str:
    """The pinned path, else the root array, else the array named 'trades', else the one with most objects."""
    with_objects = {name: c for name, c in scan.candidates.items() if c.objects}
    if options.section is not None and options.section != "":
        if options.section in scan.candidates:
            name = options.section
        else:
            listed = ", ".join(f'"{n}"' for n in with_objects) or "none"
            raise UnreadableFile(
                f'The JSON has no array of records at "{options.section}"; arrays of objects: {listed}.'
            )
    elif scan.root_kind == "array":
        name = ""
    elif not with_objects:
        raise UnreadableFile(
            "The JSON object holds no array of objects, so no records to import. JSON uploads must be an array of "
            "objects, an object holding an array of objects, or one object per line (NDJSON)."
        )
    else:
        named = [n for n in with_objects if n.rpartition(".")[2].casefold() == "trades"]
        name = named[0] if named else max(with_objects, key=lambda n: with_objects[n].objects)
    candidate = scan.candidates[name]
    if candidate.too_wide:
        raise UnreadableFile(candidate.too_wide)
    return name


def _layout(kind: str, section: str | None, sections: list[str], columns: list[str], records: int) -> JsonLayout:
    if not columns:
        raise UnreadableFile("The JSON records have no fields.")
    return JsonLayout(
        encoding="utf-8",
        delimiter="",
        quotechar="",
        newline="",
        header_line=0,
        header=columns,
        columns=_unique_columns(columns),
        section=section or None,
        sections=sections,
        skipped_preamble=0,
        kind=kind,
        rows=records,
    )
