"""Types and constants shared by the converter modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Cleaner = Callable[[list[str]], Any]
TextCleaner = Callable[[str], Any]

# Cells that mean "no value" in real exports (Schwab '--', eToro '-', Fidelity 'n/a').
PLACEHOLDERS = frozenset({"", "-", "--", "---", "n/a", "—", "–", "null", "#n/a"})
