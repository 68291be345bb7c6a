"""Header normalisation and fingerprints.

Column ORDER matters: mappings refer to columns by name, but real exports have blank and duplicate
header cells (DEGIRO's unnamed currency columns) that are only told apart by position, so two headers
with the same names in another order are a different format that an admin must look at once.
"""

from __future__ import annotations

import hashlib
import re

_SPACE = re.compile(r"\s+")


def normalise_header_cell(cell: str) -> str:
    """Case-folded, BOM/quote/whitespace-stripped header cell with inner whitespace collapsed."""
    cell = cell.replace("\ufeff", "").strip().strip('"').strip("'").strip()
    return _SPACE.sub(" ", cell).casefold()


def normalise_header(header: list[str]) -> list[str]:
    """Normalised cells; trailing blank cells (a trailing delimiter) are dropped."""
    cells = [normalise_header_cell(cell) for cell in header]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def fingerprint(header: list[str], *, section: str | None = None) -> str:
    """sha256 of the normalised header (and the section of a multi-section file)."""
    parts = normalise_header(header)
    if section:
        parts = [f"[section:{normalise_header_cell(section)}]", *parts]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
