"""The containers spreadsheets come in, checked before anything is unpacked or parsed.

* ZIP (.xlsx/.xlsm and .ods): the central directory is read (its size and entry count checked first,
  from the end record), then every member's declared sizes: the total unpacked size and each big
  member's compression ratio are capped, so a zip bomb is refused before a byte is inflated. Python's
  zipfile stops a member at its declared size and checks its CRC, so a member cannot unpack to more
  than the directory says. What the archive holds decides what it is: an Excel workbook, an OpenDocument
  spreadsheet, or something else (a Word document, a zip of CSV files...) that is named in the refusal.
* OLE2 compound documents (.xls, and the envelope of every password-protected Office file): the
  directory tells an .xls workbook from an encrypted .xlsx, a Word .doc and the like.
* XML parts are parsed by expat with document type declarations refused outright: without a DTD no
  entity can be declared, so neither entity expansion (billion laughs) nor external entities (XXE)
  can happen. No part of a workbook or an OpenDocument file ever has a DTD.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from xml.parsers import expat

import olefile

from config.errors import UnreadableFile

XLSX = "xlsx"
ODS = "ods"
XLS = "xls"

MAX_ZIP_ENTRIES = 10_000
MAX_CENTRAL_DIRECTORY_BYTES = 16 * 2**20
RATIO_CHECK_BYTES = 10 * 2**20  # members unpacking to less than this are too small to matter as bombs
READ_CHUNK = 1 << 16

OPENDOCUMENT_SPREADSHEET = (
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.spreadsheet-template",
)
OTHER_OPENDOCUMENTS = {
    "application/vnd.oasis.opendocument.text": "an OpenDocument text document (.odt)",
    "application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (.odp)",
    "application/vnd.oasis.opendocument.graphics": "an OpenDocument drawing (.odg)",
}
SAVE_AS = "Open it in Excel or LibreOffice and save it as .xlsx or CSV, then upload that."


@dataclass(frozen=True)
class ContainerLimits:
    """How far an archive may unpack: in total, and per big member relative to its packed size."""

    max_unpacked_bytes: int = 2 * 1024**3
    max_ratio: int = 200
    max_xls_bytes: int = 32 * 2**20

    @classmethod
    def from_settings(cls, airlock: dict[str, Any]) -> ContainerLimits:
        """The limits configured in settings.AIRLOCK (AIRLOCK_MAX_UNPACKED_BYTES, ...)."""
        return cls(
            max_unpacked_bytes=airlock.get("MAX_UNPACKED_BYTES", cls.max_unpacked_bytes),
            max_ratio=airlock.get("MAX_COMPRESSION_RATIO", cls.max_ratio),
            max_xls_bytes=airlock.get("MAX_XLS_BYTES", cls.max_xls_bytes),
        )


# --------------------------------------------------------------------------------------------------
# ZIP


def open_zip(source: str | Any | IO[bytes], limits: ContainerLimits) -> zipfile.ZipFile:
    """The archive, after its directory and declared sizes passed the limits (raises UnreadableFile)."""
    handle = open(source, "rb") if isinstance(source, str | bytes) or hasattr(source, "__fspath__") else source
    try:
        _check_end_record(handle)
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
            raise UnreadableFile(f"The ZIP archive is damaged ({exc}).") from exc
        _check_members(archive, limits)
    except BaseException:
        if handle is not source:
            handle.close()
        raise
    return archive


def _check_end_record(handle: IO[bytes]) -> None:
    """Refuse an archive whose central directory is too big to read, before zipfile reads it."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    tail_size = min(size, 65_535 + 22)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    handle.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise UnreadableFile("The ZIP archive is damaged (its end record is missing).")
    entries, cd_size = struct.unpack("<10xHL", tail[at : at + 16])
    zip64 = tail.rfind(b"PK\x06\x06", 0, at)
    if zip64 >= 0 and len(tail) - zip64 >= 56:
        entries, cd_size = struct.unpack("<32xQQ", tail[zip64 : zip64 + 48])
    if entries > MAX_ZIP_ENTRIES or cd_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise UnreadableFile(
            f"The archive lists {entries:,} files ({cd_size:,} bytes of directory); a workbook has far fewer "
            f"(at most {MAX_ZIP_ENTRIES:,} are read)."
        )


def _check_members(archive: zipfile.ZipFile, limits: ContainerLimits) -> None:
    """Declared sizes within the limits, plain deflate or stored members, no duplicates, no encryption."""
    total = 0
    seen: set[str] = set()
    for info in archive.infolist():
        if info.filename in seen:
            raise UnreadableFile(f"The archive holds two files named '{info.filename[:100]}'.")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise UnreadableFile("The archive is password-protected (encrypted ZIP entries cannot be read).")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UnreadableFile(
                f"'{info.filename[:100]}' in the archive uses a compression method (#{info.compress_type}) "
                "that workbooks do not use."
            )
        total += info.file_size
        if total > limits.max_unpacked_bytes:
            raise UnreadableFile(
                f"The archive unpacks to more than {_size(limits.max_unpacked_bytes)}; that is more than any "
                "workbook we accept (a zip bomb?). Nothing was read."
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_BYTES and ratio > limits.max_ratio:
            raise UnreadableFile(
                f"'{info.filename[:100]}' in the archive unpacks {ratio:,.0f} times larger than it is packed "
                f"({_size(info.file_size)}); at most {limits.max_ratio}x is accepted (a zip bomb?). Nothing was read."
            )


def find_part(archive: zipfile.ZipFile, name: str) -> str | None:
    """The archive's member for a part name, matched as OPC says: case-insensitively (Excel opens
    'xl/SharedStrings.xml' for 'sharedStrings.xml'), and with Windows tools' backslashes as slashes."""
    names: dict[str, str] | None = getattr(archive, "_airlock_parts", None)
    if names is None:
        names = {}
        for info in archive.infolist():
            names.setdefault(info.filename.replace("\\", "/").lstrip("/").casefold(), info.filename)
        archive._airlock_parts = names  # type: ignore[attr-defined]
    return names.get(name.replace("\\", "/").lstrip("/").casefold())


def zip_kind(archive: zipfile.ZipFile) -> str:
    """XLSX or ODS for the archive; UnreadableFile naming what else it is."""
    names = {name.replace("\\", "/").casefold() for name in archive.namelist()}
    if "[content_types].xml" in names:
        if "xl/workbook.bin" in names:
            raise UnreadableFile(f"This is an Excel binary workbook (.xlsb), which is not supported. {SAVE_AS}")
        if office_document(archive) or "xl/workbook.xml" in names:
            return XLSX
        for folder, what in (("word/", "a Word document (.docx)"), ("ppt/", "a PowerPoint presentation (.pptx)")):
            if any(name.startswith(folder) for name in names):
                raise UnreadableFile(f"This is {what}, not a spreadsheet.")
        raise UnreadableFile("This is an Office document without a workbook in it, not a spreadsheet.")
    mimetype = _small_member(archive, "mimetype", 200)
    if mimetype is not None:
        kind = mimetype.decode("ascii", "replace").strip()
        if kind in OPENDOCUMENT_SPREADSHEET:
            manifest = _small_member(archive, "META-INF/manifest.xml", 4 << 20) or b""
            if b"encryption-data" in manifest:
                raise UnreadableFile(
                    "The spreadsheet is password-protected (encrypted), so it cannot be read. Save it without a "
                    "password (in LibreOffice: File › Properties › Security) and upload it again."
                )
            return ODS
        what = OTHER_OPENDOCUMENTS.get(kind, f"a document of type '{kind[:80]}'")
        raise UnreadableFile(f"This is {what}, not a spreadsheet.")
    files = [name for name in archive.namelist() if not name.endswith("/")]
    shown = ", ".join(f"'{name[-60:]}'" for name in files[:3]) + (", ..." if len(files) > 3 else "")
    hint = (
        " Unzip it and upload the files inside."
        if any(name.lower().endswith((".csv", ".xlsx", ".xls", ".ods", ".json", ".txt")) for name in files)
        else ""
    )
    raise UnreadableFile(
        f"This is a ZIP archive of {len(files)} file{'s' if len(files) != 1 else ''} ({shown or 'empty'}), "
        f"not a spreadsheet (whatever its name says).{hint}"
    )


def office_document(archive: zipfile.ZipFile) -> str | None:
    """The workbook part that _rels/.rels names as the office document (e.g. 'xl/workbook.xml')."""
    rels = _small_member(archive, "_rels/.rels", 1 << 20)
    if rels is None:
        return None
    for attrs in xml_elements(rels, "Relationship"):
        if attrs.get("Type", "").endswith("/officeDocument"):
            return find_part(archive, attrs.get("Target", ""))
    return None


def _small_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes | None:
    found = find_part(archive, name)
    if found is None:
        return None
    info = archive.getinfo(found)
    name = found
    if info.file_size > limit:
        raise UnreadableFile(f"'{name}' in the archive is {_size(info.file_size)}; at most {_size(limit)} is expected.")
    return read_member(archive, name)


def read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    """A (small) member's bytes; a damaged member is an UnreadableFile."""
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as exc:
        raise UnreadableFile(f"'{name[:100]}' in the archive cannot be unpacked ({exc}).") from exc


def member_chunks(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    """A member's bytes in chunks, as they are inflated (a damaged member is an UnreadableFile)."""
    try:
        with archive.open(name) as stream:
            while chunk := stream.read(READ_CHUNK):
                yield chunk
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UnreadableFile(f"'{name[:100]}' in the archive cannot be unpacked ({exc}).") from exc


def _size(n: int) -> str:
    return f"{n / 2**30:,.1f} GB" if n >= 2**30 else f"{n / 2**20:,.0f} MB"


# --------------------------------------------------------------------------------------------------
# OLE2 compound documents


def ole_kind(source: str | Any | IO[bytes], limits: ContainerLimits, size: int) -> str:
    """XLS for an Excel 97-2003 workbook; UnreadableFile for encrypted or other documents."""
    try:
        ole = olefile.OleFileIO(source)
    except (OSError, ValueError, IndexError, struct.error, RecursionError) as exc:
        raise UnreadableFile(f"The file looks like an Office 97-2003 document but is damaged ({exc}).") from exc
    try:
        streams = {"/".join(entry).lower() for entry in ole.listdir(streams=True, storages=False)}
        if "encryptedpackage" in streams or "encryptioninfo" in streams:
            raise UnreadableFile(
                "The workbook is password-protected (encrypted), so it cannot be read. Remove the password "
                "(in Excel: File › Info › Protect Workbook › Encrypt with Password, clear it), save, and upload again."
            )
        book = "workbook" if "workbook" in streams else ("book" if "book" in streams else None)
        if book is None:
            if "worddocument" in streams:
                raise UnreadableFile("This is a Word 97-2003 document (.doc), not a spreadsheet.")
            if "powerpoint document" in streams:
                raise UnreadableFile("This is a PowerPoint 97-2003 presentation (.ppt), not a spreadsheet.")
            raise UnreadableFile("This is an Office 97-2003 file that holds no workbook, not a spreadsheet.")
        if size > limits.max_xls_bytes:
            raise UnreadableFile(
                f"This Excel 97-2003 workbook (.xls) is {_size(size)}; .xls files are read whole, so at most "
                f"{_size(limits.max_xls_bytes)} is accepted. Save it as .xlsx (read as a stream, up to the "
                "upload limit) or CSV."
            )
        if _xls_encrypted(ole, book):
            raise UnreadableFile(
                "The workbook is password-protected (encrypted), so it cannot be read. Remove the password "
                "in Excel, save, and upload again."
            )
    finally:
        ole.close()
    return XLS


def _xls_encrypted(ole: olefile.OleFileIO, book: str) -> bool:
    """Whether the workbook stream has a FILEPASS record before its first sheet record."""
    with ole.openstream(book) as stream:
        for _ in range(200):
            head = stream.read(4)
            if len(head) < 4:
                return False
            kind, length = struct.unpack("<HH", head)
            if kind == 0x002F:  # FILEPASS
                return True
            if kind == 0x0085:  # BOUNDSHEET: the globals are past the point where FILEPASS stands
                return False
            stream.seek(length, io.SEEK_CUR)
    return False


# --------------------------------------------------------------------------------------------------
# XML


class _DoctypeRefused(Exception):
    pass


def _refuse_doctype(*_: Any) -> None:
    raise _DoctypeRefused


def xml_parser(*, namespaces: bool = False, buffer_text: bool = True) -> Any:
    """An expat parser that refuses any document type declaration (so any entity declaration).

    With `namespaces`, element and attribute names are `<namespace URI>|<local name>`."""
    parser = expat.ParserCreate(namespace_separator="|" if namespaces else None)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.ExternalEntityRefHandler = _refuse_doctype
    parser.buffer_text = buffer_text
    return parser


def xml_feed(parser: Any, chunks: Iterator[bytes] | list[bytes], part: str) -> None:
    """Parse a part chunk by chunk; XML errors and DTDs become UnreadableFile naming the part."""
    for _ in xml_stream(parser, chunks, part):
        pass


def xml_stream(parser: Any, chunks: Iterator[bytes] | list[bytes], part: str) -> Iterator[None]:
    """Parse a part chunk by chunk, yielding after each chunk (so the caller can drain what the handlers
    collected); XML errors and DTDs become UnreadableFile naming the part."""
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
            yield
        parser.Parse(b"", True)
        yield
    except _DoctypeRefused:
        raise UnreadableFile(
            f"'{part}' declares a document type (DTD), which no workbook does; it is refused because entity "
            "declarations can be used to attack XML readers."
        ) from None
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code]
        raise UnreadableFile(f"'{part}' is not well-formed XML ({message}, line {exc.lineno}).") from None


def xml_elements(data: bytes, local_name: str) -> list[dict[str, str]]:
    """The attributes of every element with this local name (any namespace prefix) in a small part."""
    found: list[dict[str, str]] = []
    suffix = ":" + local_name

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == local_name or name.endswith(suffix):
            found.append(attrs)

    parser = xml_parser()
    parser.StartElementHandler = start
    xml_feed(parser, [data], local_name)
    return found
