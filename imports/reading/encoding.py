"""Which legacy (non-UTF) encoding a file's bytes are in: charset-normalizer over a bounded prefix.

Called only for bytes that are not UTF-8 and carry no byte-order mark (imports/reading/__init__.py decides
those first). The detector weighs how coherent the text is in each candidate encoding (letters of one
language, no mess of symbols), so Polish cp1250, Russian cp1251, Japanese Shift-JIS (cp932), Chinese
GB18030/GBK and Western cp1252/latin-1 are told apart on real text. Western European text stays cp1252
(today's name) whenever cp1252 reads it as well as the best candidate.
"""

from __future__ import annotations

from charset_normalizer import from_bytes

# At most this many bytes go to the detector (a limit before the work: its cost grows with the input).
DETECT_BYTES = 64 * 1024
# The encodings broker exports come in, besides UTF: Windows code pages of Europe, Cyrillic and the
# common Asian encodings (supersets where one exists: cp932 for Shift-JIS, gb18030 for GBK/GB2312).
CANDIDATES = (
    "cp1252",
    "latin_1",
    "cp1250",
    "cp1251",
    "cp1253",
    "cp1254",
    "cp1257",
    "iso8859_2",
    "koi8_r",
    "cp932",
    "euc_jp",
    "gb18030",
    "big5",
    "cp949",
)
# Fewer non-ASCII bytes than this say too little to leave the Western reading (a '©' or two).
MIN_EVIDENCE_BYTES = 4
# Names as the pages show them (Python accepts both spellings).
_SHOWN = {"latin_1": "latin-1", "iso8859_2": "iso8859-2", "koi8_r": "koi8-r", "euc_jp": "euc-jp"}


def detect_prefix(data: bytes) -> bytes:
    """What the detector reads: the lines of `data` that hold non-ASCII bytes (the only evidence there is:
    a mostly numeric export has a few words with accents among thousands of ASCII lines), whole, at most
    DETECT_BYTES of them; in these encodings a line feed byte is never part of a multi-byte character."""
    kept: list[bytes] = []
    size = 0
    for line in data.splitlines(keepends=True):
        if line.isascii():
            continue
        if size + len(line) > DETECT_BYTES:
            if not kept:  # one line longer than the limit: its first DETECT_BYTES
                kept.append(line[:DETECT_BYTES])
            break
        kept.append(line)
        size += len(line)
    return b"".join(kept)


def legacy_encoding(data: bytes) -> str:
    """The encoding of non-UTF-8 bytes: cp1252 for Western text (latin-1 where cp1252 cannot decode), else
    the detector's best candidate when the text reads clearly better in it and there is evidence enough."""
    sample = detect_prefix(data)
    western_text = _decodes(sample, "cp1252")
    western = "cp1252" if western_text is not None else "latin-1"
    if sum(byte >= 0x80 for byte in sample) < MIN_EVIDENCE_BYTES:
        return western  # a stray '©' or 'é' is no evidence for Shift-JIS or Cyrillic
    results = from_bytes(sample, cp_isolation=list(CANDIDATES), explain=False)
    best = results.best()
    if best is None or best.encoding in ("cp1252", "latin_1") or str(best) == western_text:
        return western
    for match in results:
        # A tie keeps today's reading: cp1252 unless the other encoding reads the text better.
        if match.encoding == "cp1252" and match.chaos <= best.chaos and match.coherence >= best.coherence:
            return western
    return _SHOWN.get(best.encoding, best.encoding)


def _decodes(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None
