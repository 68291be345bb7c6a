"""What an uploaded file is, by its content (never its name): CSV text, a workbook, JSON -- or refused.

`sniff_kind` answers one of CSV, XLSX, XLS, ODS, JSON, or raises UnreadableFile with a message that
names what the file is instead (an image, a Word document, an XML or HTML page, a zip bomb, a
password-protected workbook, binary junk, a bare JSON number...). The upload request runs it before
anything is stored; the reader runs it again to choose how to read the stored bytes.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import IO

from config.errors import UnreadableFile
from imports.sheets.containers import ODS, XLS, XLSX, ContainerLimits, ole_kind, open_zip, zip_kind

CSV = "csv"
JSON = "json"
KINDS = (CSV, XLSX, XLS, ODS, JSON)
HEAD_BYTES = 64 * 1024
SCALAR_JSON_BYTES = 64 * 1024  # a whole file this small that is one JSON value is checked for being a scalar

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Signatures of files people upload by mistake.
MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\x1f\x8b", "a GZIP archive"),
    (b"BZh", "a BZIP2 archive"),
    (b"\xfd7zXZ\x00", "an XZ archive"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x09\x08\x10\x00\x00\x06\x05\x00", "an Excel 2.x-95 workbook (BIFF)"),
    (b"{\\rtf", "an RTF document"),
)
# Control characters that never appear in text (tab, LF, VT, FF and CR do).
CONTROL_CHARS = dict.fromkeys([*range(0, 9), *range(14, 32), 127])
_TAG = re.compile(r"<([!?]?[A-Za-z][\w.:-]*)")
_JSON_ARRAY_START = re.compile(r"\[\s*(?:[\[{\"\]tfn0-9-]|$)")


def sniff_kind(handle: IO[bytes], *, limits: ContainerLimits | None = None) -> str:
    """CSV, XLSX, XLS, ODS or JSON for the bytes (the handle is left at position 0)."""
    limits = limits or ContainerLimits()
    handle.seek(0)
    head = handle.read(HEAD_BYTES)
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    try:
        if not head:
            raise UnreadableFile("The file is empty (0 bytes): there is nothing to import.")
        if head.startswith(ZIP_MAGIC):
            archive = open_zip(handle, limits)
            try:
                return zip_kind(archive)
            finally:
                archive.close()
        if head.startswith(OLE_MAGIC):
            return ole_kind(handle, limits, size)
        for magic, what in MAGIC:
            if head.startswith(magic):
                raise UnreadableFile(
                    f"This is {what}, not a CSV, spreadsheet or JSON file (whatever its name says).",
                    details={"detected": what},
                )
        text = _head_text(head, complete=size <= len(head))
        first = text.lstrip()[:1]
        if first == "<":
            raise UnreadableFile(_markup_message(text))
        if first == "{" or (first == "[" and _JSON_ARRAY_START.match(text.lstrip())):
            return JSON
        if size <= SCALAR_JSON_BYTES:
            _refuse_bare_json(text)
        _refuse_binary(text)
        return CSV
    finally:
        handle.seek(0)


def _head_text(head: bytes, *, complete: bool) -> str:
    """The prefix as text for sniffing: by its BOM (UTF-8/16/32), else UTF-8 with replacement."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            return codecs.getincrementaldecoder(encoding)("replace").decode(head[len(bom) :], final=complete)
    sample = head[:4096]
    even, odd = sample[0::2], sample[1::2]
    if len(sample) >= 4 and odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return codecs.getincrementaldecoder("utf-16-le")("replace").decode(head, final=complete)
    if len(sample) >= 4 and even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return codecs.getincrementaldecoder("utf-16-be")("replace").decode(head, final=complete)
    return codecs.getincrementaldecoder("utf-8")("replace").decode(head, final=complete)


def _markup_message(text: str) -> str:
    """Why an XML or HTML file is refused, naming the kinds that are exported as tables."""
    lowered = text[:8192].lower()
    if "urn:schemas-microsoft-com:office:spreadsheet" in lowered or 'progid="excel.sheet"' in lowered:
        return (
            "This is an Excel 2003 XML spreadsheet (SpreadsheetML), which is not supported. Open it in Excel "
            "and save it as .xlsx or CSV, then upload that."
        )
    tags = [tag.lower() for tag in _TAG.findall(text[:8192])]
    if any(tag in ("!doctype", "html", "table", "body", "head") for tag in tags[:20]):
        return (
            "This is an HTML page, not a spreadsheet (some banks' 'Excel' exports are HTML tables in "
            "disguise). Open it in Excel and save it as .xlsx or CSV, then upload that."
        )
    return "This is an XML document, not a CSV, spreadsheet or JSON file. Export the trades as CSV, .xlsx or JSON."


def _refuse_bare_json(text: str) -> None:
    """A small file that is one JSON string, number, boolean or null holds no records."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    if isinstance(value, dict | list):
        return
    what = {str: "a single string", bool: "a single boolean", type(None): "only null"}.get(
        type(value), "a single number"
    )
    raise UnreadableFile(
        f"The file is JSON holding {what}, not records. JSON uploads must be an array of objects, an object "
        "holding one array of objects, or one object per line (NDJSON)."
    )


def _refuse_binary(text: str) -> None:
    """Refuse what cannot be tabular text: largely control characters (compressed, encrypted or binary
    data), or no line break and no delimiter at all (undecodable junk of high bytes).

    Undecodable bytes alone prove nothing: a cp1251 or Shift-JIS export is full of them when read as
    UTF-8 (the reader works out its encoding)."""
    sample = text[:65536]
    controls = len(sample) - len(sample.translate(CONTROL_CHARS))
    if controls >= 8 and controls > len(sample) * 0.1:
        share = round(100 * controls / max(len(sample), 1))
        raise UnreadableFile(
            f"The file looks binary ({share}% of its first characters are control characters), not like CSV "
            "text, a spreadsheet or JSON."
        )
    if len(sample) >= 64 and not any(mark in sample for mark in ("\n", "\r", ",", ";", "\t", "|")):
        raise UnreadableFile(
            "The file has no line break and no delimiter in its first characters: it is not a table (CSV "
            "text, a spreadsheet or JSON)."
        )
