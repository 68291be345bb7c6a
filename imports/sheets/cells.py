"""Spreadsheet cell values as the text the converters read.

A workbook stores numbers as binary doubles and dates as day counts ("serials") formatted as dates; the
converters read text. The rules, the same for every spreadsheet reader (.xlsx, .xls, .ods):

* numbers: plain decimal text with at most 15 significant digits, which is what Excel shows and all a
  double reliably holds (`0.1 + 0.2` is `0.3`, not `0.30000000000000004`); never an exponent, never a
  thousands separator or a locale's decimal comma (`1e-7` -> `0.0000001`, `1e20` -> `100000000000000000000`);
* dates and times (a serial whose number format shows a date or a time, in the 1900 or the 1904 date
  system): ISO text, `2024-01-31` for a date without a time of day, `2024-01-31 09:30:05` when the
  format shows a time or the value has one (milliseconds only when there are some), `09:30:05` for a
  time of day alone;
* booleans `TRUE` / `FALSE`, error values as Excel writes them (`#N/A`, `#DIV/0!`), text as it is.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal

# Day 0 of the two date systems. The 1900 system counts from 1899-12-31 but believes 1900 was a leap
# year (serial 60 is the non-existent 1900-02-29, a Lotus 1-2-3 bug kept for compatibility), so from
# serial 61 on its day 0 is effectively 1899-12-30.
EPOCH_1900 = datetime(1899, 12, 30)
EPOCH_1904 = datetime(1904, 1, 1)
MAX_SERIAL = 2_958_465.99999999  # 9999-12-31 23:59:59.999 in the 1900 system: Excel's last date
MS_PER_DAY = 86_400_000

DATE = "date"  # the number format shows a date (d, m, y...), no time of day
DATETIME = "datetime"  # a date and a time of day
TIME = "time"  # a time of day only (h, m, s, AM/PM)
DURATION = "duration"  # elapsed time: [h]:mm, [mm]:ss

_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def number_text(value: float | int) -> str:
    """A number as plain decimal text with at most 15 significant digits (Excel's display precision)."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = format(value, ".15g")
    if "e" in text:
        text = format(Decimal(text), "f")
    return text


def number_text_from_xml(text: str) -> str:
    """A number written in a workbook's XML (`<v>116.1268</v>`, `office:value="0.30000000000000004"`)."""
    if len(text) < 16 and _PLAIN_NUMBER.fullmatch(text):
        # At most 15 digits and no exponent: already plain (nearly every cell); '1855.0' -> '1855'.
        if "." in text and text[-1] == "0":
            text = text.rstrip("0").rstrip(".")
            return "0" if text == "-0" else text
        return text
    try:
        return number_text(float(text))
    except ValueError:
        return text.strip()  # not a number after all: keep what the file says


def serial_datetime(serial: float, *, date1904: bool = False) -> datetime | None:
    """The datetime of a date serial, rounded to the millisecond; None when it is not a valid date."""
    if not math.isfinite(serial) or serial < 0 or serial > MAX_SERIAL:
        return None
    ms = round(serial * MS_PER_DAY)
    if date1904:
        return EPOCH_1904 + timedelta(milliseconds=ms)
    if ms < 60 * MS_PER_DAY:
        return EPOCH_1900 + timedelta(days=1, milliseconds=ms)  # before the phantom 1900-02-29
    if ms < 61 * MS_PER_DAY:
        return None  # 1900-02-29 never existed
    return EPOCH_1900 + timedelta(milliseconds=ms)


def datetime_text(value: datetime, kind: str = DATETIME) -> str:
    """ISO text for a date/time value: date only when the format has no time and the value none."""
    if kind == TIME:
        return time_text(value.time())
    if kind == DATE and value.hour == value.minute == value.second == value.microsecond == 0:
        return value.date().isoformat()
    if value.microsecond:
        return value.isoformat(" ", timespec="milliseconds")
    return value.isoformat(" ", timespec="seconds")


def time_text(value: time) -> str:
    """A time of day as HH:MM:SS (milliseconds when there are some)."""
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def duration_text(days: float) -> str:
    """Elapsed time ([h]:mm:ss formats) as H:MM:SS, hours past 24 kept."""
    ms = round(abs(days) * MS_PER_DAY)
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{'-' if days < 0 else ''}{hours}:{minutes:02d}:{seconds:02d}"
    return f"{text}.{millis:03d}" if millis else text


def serial_text(serial: float, kind: str, *, date1904: bool = False) -> str:
    """A number cell whose format is a date/time format, as ISO text (the number itself if no date)."""
    if kind == DURATION:
        return duration_text(serial)
    if kind == TIME and 0 <= serial < 1:
        ms = round(serial * MS_PER_DAY) % MS_PER_DAY
        return time_text((datetime.min + timedelta(milliseconds=ms)).time())
    value = serial_datetime(serial, date1904=date1904)
    if value is None:
        return number_text(serial)  # outside Excel's calendar: the number as stored
    return datetime_text(value, DATETIME if kind == TIME else kind)


def value_text(value: object, kind: str | None = None) -> str:
    """Text of a typed value from a reader library (str, float, int, bool, date, datetime, time)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, datetime):
        return datetime_text(value, kind or DATETIME)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return time_text(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def text_cell(text: str) -> str:
    """A text cell as stored: surrounding spaces trimmed (what Excel and csv's skipinitialspace ignore), every
    other character kept as the file has it, a leading TAB or CR included (a formula behind one stays visible
    to the export's neutralisation, and staged rows are what was uploaded); a cell of blanks only is empty."""
    trimmed = text.strip(" ")
    return trimmed if trimmed.strip() else ""


def text_cells(cells: list[str]) -> list[str]:
    """`text_cell` of every cell of a row (inlined: the CSV reader calls it once per row)."""
    return ["" if cell.isspace() else cell.strip(" ") for cell in cells]


def iso_text(text: str) -> str:
    """An ISO 8601 date/datetime as a workbook writes it (`2024-01-31T09:30:05`, `...Z`) in the reader's form."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    if len(text) <= 10:
        return value.date().isoformat()
    if value.tzinfo is not None:
        return value.isoformat(" ", timespec="milliseconds" if value.microsecond else "seconds")
    return datetime_text(value, DATETIME)


# --------------------------------------------------------------------------------------------------
# Number formats: which ones show dates and times

# Built-in number formats (ECMA-376 18.8.30) that show dates or times; ids 27-36 and 50-58 are the
# East Asian locales' date formats.
BUILTIN_FORMAT_KINDS: dict[int, str] = {
    14: DATE,
    15: DATE,
    16: DATE,
    17: DATE,
    18: TIME,
    19: TIME,
    20: TIME,
    21: TIME,
    22: DATETIME,
    45: TIME,
    46: DURATION,
    47: TIME,
    **dict.fromkeys(range(27, 37), DATE),
    **dict.fromkeys(range(50, 59), DATE),
}

# Parts of a format code that never mean a date: quoted text, escaped characters, fill/pad characters
# and bracketed colours/locales/conditions ([Red], [$-409], [>100]); kept apart: elapsed time ([h]).
# A bracket never holds '[': an unclosed '[' then stops at the next one instead of scanning to the end
# from every '[' (quadratic on a code of '[[[[...').
_LITERALS = re.compile(r'"[^"]*"|\\.|[_*].|\[(?![hms]+\])[^\]\[]*\]', re.IGNORECASE)
_ELAPSED = re.compile(r"\[[hms]+\]", re.IGNORECASE)


def format_kind(code: str | None) -> str | None:
    """DATE, DATETIME, TIME or DURATION for a number format code that shows one, else None.

    Runs in linear time on any code (one regex of alternatives without nesting, then a scan)."""
    if not code:
        return None
    section = code.split(";", 1)[0]  # the format of positive numbers decides
    if _ELAPSED.search(section):
        return DURATION
    bare = _LITERALS.sub("", section).lower()
    if bare in ("general", "@", ""):
        return None
    has_date = "d" in bare or "y" in bare
    has_time = "h" in bare or "s" in bare or "am/pm" in bare or "a/p" in bare
    if not has_time and "m" in bare and not has_date:
        has_date = True  # "mmm" alone: a month
    if has_date and has_time:
        return DATETIME
    if has_date:
        return DATE
    if has_time:
        return TIME
    return None
