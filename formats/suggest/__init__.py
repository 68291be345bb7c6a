"""Mapping suggestion: guess which columns feed which target fields, from headers, sample values and
what admins approved before. No network, deterministic: the same input always gives the same mapping.

Every (field, column) pair gets a score in [0, 1] from three kinds of evidence:
- the header: an exact synonym of the field, or a fuzzy match (rapidfuzz) against the synonyms;
- the sample values: dates and their format, numbers, buy/sell words, tickers, currency codes;
- `learned`: headers that admins mapped to a field in approved formats (the strongest evidence).
Columns are then assigned best-first so one column feeds one field (a date column and a time column
may feed executed_at together, and a signed quantity column may also give the side).
"""

from formats.suggest.assemble import suggest_mapping
from formats.suggest.vocabulary import ISO_CURRENCIES, learned_key

__all__ = ["ISO_CURRENCIES", "learned_key", "suggest_mapping"]
