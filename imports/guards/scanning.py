"""Checks on uploaded bytes that run synchronously in the upload request, before anything is stored.

Two checks, both on the content (never the name or the Content-Type the client claims):

* `upload_sniff`: what the file is, by its content (imports/sheets/sniff.py): CSV text, an Excel or
  OpenDocument workbook, or JSON are accepted; empty files, images, archives, PDFs, executables, XML and
  HTML pages, binary junk, bare JSON values, password-protected workbooks and zip bombs (by the archive's
  directory, before anything is unpacked) are refused at once with a 400 naming what the file is, so the
  user learns it in the upload answer instead of from a FAILED import later, and nothing is stored.
  Subtler problems (NUL bytes further down, undecodable bytes, header-only files, a broken record far
  down a JSON file) are the reader's job in the worker, which marks the file FAILED with a message
  naming the line.
* `clamd_scan`: when `CLAMAV_URL` is set, every upload is streamed to clamd (INSTREAM) before it is
  stored. This runs in the upload request rather than in the job so that an infected file is never
  written to the storage nor seen by a worker, and the uploader gets the verdict in the answer. It fails
  closed: clamd unreachable, a timeout, a size-limit error or any answer other than "OK" rejects the
  upload; nothing is ever treated as clean by default.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import File

from audit.models import AuditEvent
from audit.services import record
from config.errors import AppError, UnreadableFile
from imports.sheets.containers import ContainerLimits
from imports.sheets.sniff import sniff_kind
from imports.storage import delete_stored, sanitize_display_name

CHUNK_BYTES = 64 * 1024


class VirusDetected(AppError):
    """clamd found a signature in the upload."""

    code = "virus_detected"
    http_status = 400


class ScanFailed(AppError):
    """The upload could not be scanned (clamd down, timeout, size limit): rejected, never assumed clean."""

    code = "scan_failed"
    http_status = 503


def upload_sniff(*, uploaded: File, display_name: str) -> str:
    """The kind of an upload (csv, xlsx, xls, ods, json) by its content; raises UnreadableFile otherwise."""
    try:
        return sniff_kind(uploaded, limits=ContainerLimits.from_settings(settings.AIRLOCK))
    except UnreadableFile as exc:
        raise UnreadableFile(
            f"'{display_name}': {exc.message}", details={"file": display_name, **exc.details}
        ) from None


@dataclass(frozen=True)
class ScanResult:
    clean: bool
    signature: str = ""


def _connect(url: str, timeout: float) -> socket.socket:
    """clamd's address: a unix socket path (`/run/clamav/clamd.ctl`, `unix:///...`) or `host:port`."""
    if url.startswith("unix://"):
        url = url[len("unix://") :]
    if url.startswith("tcp://"):
        url = url[len("tcp://") :]
    if url.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(url)
        return sock
    host, _, port = url.rpartition(":")
    return socket.create_connection((host or "localhost", int(port)), timeout=timeout)


def clamd_instream(*, uploaded: File, url: str, timeout: float = 60.0) -> ScanResult:
    """Stream the bytes to clamd with the INSTREAM command; raises ScanFailed unless clamd gives a verdict."""
    try:
        sock = _connect(url, timeout)
    except (OSError, ValueError) as exc:
        raise ScanFailed(
            f"The virus scanner is unreachable ({exc.__class__.__name__}: {exc}); "
            "the upload was refused. Try again later.",
            details={"scanner": "clamd"},
        ) from exc
    uploaded.seek(0)
    try:
        with sock:
            sock.sendall(b"zINSTREAM\0")
            try:
                for chunk in uploaded.chunks(CHUNK_BYTES):
                    sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                sock.sendall(struct.pack(">I", 0))
            except OSError:
                # clamd closes the connection when the stream passes its StreamMaxLength; its answer
                # ("INSTREAM size limit exceeded") is still waiting to be read.
                pass
            reply = _read_reply(sock)
    except OSError as exc:
        raise ScanFailed(
            f"The virus scan did not finish ({exc.__class__.__name__}: {exc}); "
            "the upload was refused. Try again later.",
            details={"scanner": "clamd"},
        ) from exc
    finally:
        uploaded.seek(0)
    # Replies: "stream: OK", "stream: Eicar-Test-Signature FOUND", "INSTREAM size limit exceeded. ERROR".
    if reply.endswith(" FOUND"):
        return ScanResult(clean=False, signature=reply.removeprefix("stream:").removesuffix(" FOUND").strip())
    if reply == "stream: OK":
        return ScanResult(clean=True)
    raise ScanFailed(
        f"The virus scanner could not scan the file ({reply or 'no answer'}); the upload was refused.",
        details={"scanner": "clamd", "reply": reply[:200]},
    )


def _read_reply(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\0"):
        part = sock.recv(4096)
        if not part:
            break
        data += part
        if len(data) > 65536:
            break
    return data.rstrip(b"\0").decode("utf-8", "replace").strip()


def clamd_scan(*, uploaded: File, display_name: str) -> None:
    """Scan an upload when CLAMAV_URL is set: raise VirusDetected or ScanFailed (fail closed)."""
    url = settings.CLAMAV_URL
    if not url:
        return
    result = clamd_instream(uploaded=uploaded, url=url, timeout=settings.CLAMAV_TIMEOUT)
    if not result.clean:
        raise VirusDetected(
            f"'{display_name}' was refused: the virus scanner found {result.signature}.",
            details={"file": display_name, "signature": result.signature},
        )


def upload_check_content(*, owner: Any, files: list[File]) -> None:
    """Sniff every file, then virus-scan every file; the first problem refuses the whole request.

    All-or-nothing so that a rejected request stored nothing and the client can fix and resend it.
    A detection is audited (the event survives the refused request: uploads run in autocommit).
    """
    names = [sanitize_display_name(f.name or "upload.csv") for f in files]
    for uploaded, name in zip(files, names, strict=True):
        upload_sniff(uploaded=uploaded, display_name=name)
    for uploaded, name in zip(files, names, strict=True):
        try:
            clamd_scan(uploaded=uploaded, display_name=name)
        except VirusDetected as exc:
            record(
                action="file.virus_detected",
                actor=owner,
                severity=AuditEvent.Severity.ERROR,
                summary=f"Upload of '{name}' by {owner.get_username()} refused: {exc.details['signature']}",
                details={"file": name, "signature": exc.details["signature"], "size": uploaded.size},
            )
            raise
        except ScanFailed as exc:
            record(
                action="file.scan_failed",
                actor=owner,
                severity=AuditEvent.Severity.WARNING,
                summary=f"Upload of '{name}' by {owner.get_username()} refused: not scanned",
                details={"file": name, "reason": exc.message},
            )
            raise


def stored_check_content(*, file: Any, path: Path) -> None:
    """A direct upload, checked by its worker before anything reads it: what a form upload gets in its request.

    The object is a verified local copy (its sha256 is the one declared at upload). Sniffed by content, then
    virus-scanned, failing closed; an infected object is deleted from the storage at once, never read.
    """
    name = file.original_name
    with open(path, "rb") as handle:
        uploaded = File(handle, name=name)
        upload_sniff(uploaded=uploaded, display_name=name)
        try:
            clamd_scan(uploaded=uploaded, display_name=name)
        except VirusDetected as exc:
            delete_stored(file.stored_name)
            record(
                action="file.virus_detected",
                actor=file.owner,
                obj=file,
                severity=AuditEvent.Severity.ERROR,
                summary=f"Direct upload '{name}' by {file.owner.get_username()} refused: {exc.details['signature']}; "
                "the object was deleted",
                details={"file": name, "signature": exc.details["signature"], "size": file.size},
            )
            raise
        except ScanFailed as exc:
            raise ScanFailed(
                f"{exc.message} Nothing was read from the file; retry it once the scanner is back.",
                details=exc.details,
            ) from None
