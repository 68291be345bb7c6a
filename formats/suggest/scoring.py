"""Scoring: how well one column fits one target field, from header, value and learned evidence."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from formats.suggest.profiles import Profile
from formats.suggest.vocabulary import NEGATIVE, VALUE_STRENGTH, WEAK, compact_key, learned_key
from formats.targets import TARGETS, Target


@dataclass(frozen=True)
class Score:
    """How well one column fits one field, and why."""

    score: float
    field: str
    index: int
    reason: str


def synonym_index(target: Target) -> dict[str, list[tuple[str, str, bool]]]:
    """Per field: (normalised synonym, its compact form, is weak)."""
    index = {}
    for target_field in target.fields:
        seen: dict[str, tuple[str, str, bool]] = {}
        for synonym in target_field.synonyms:
            key = learned_key(synonym)
            if key and key not in seen:
                seen[key] = (
                    key,
                    compact_key(key),
                    synonym in WEAK.get(target_field.name, ()) or key in WEAK.get(target_field.name, ()),
                )
        index[target_field.name] = list(seen.values())
    return index


def _header_evidence(name: str, key: str, synonyms: list[tuple[str, str, bool]]) -> tuple[float, str]:
    """(score, reason) for how well a normalised header names the field."""
    if not key:
        return 0.0, ""
    compact = compact_key(key)
    best, reason = 0.0, ""
    tokens = set(key.split())
    for synonym, synonym_compact, weak in synonyms:
        if key == synonym or compact == synonym_compact:
            score = 0.72 if weak else 0.9
            if score > best:
                best, reason = score, f"= {name} (synonym{', generic' if weak else ''})"
            continue
        if set(synonym.split()) <= tokens:
            score = 0.65 * (len(synonym) / len(key)) ** 0.5 * (0.8 if weak else 1.0)
            if score > best:
                best, reason = score, f"≈ {name} (contains '{synonym}')"
            continue
        similarity = fuzz.ratio(key, synonym) / 100
        if similarity >= 0.88:
            score = 0.8 * similarity * (0.8 if weak else 1.0)
            if score > best:
                best, reason = score, f"≈ {name} (similar to '{synonym}')"
        elif len(synonym) >= 5 and fuzz.token_set_ratio(key, synonym) >= 90:
            score = 0.5 * (min(len(synonym), len(key)) / max(len(synonym), len(key))) ** 0.5
            if score > best:
                best, reason = score, f"≈ {name} (close to '{synonym}')"
    return best, reason


def header_fit(cells: list[str], target: Target) -> int:
    """How many of the target's fields some cell of a header row names outright (a synonym, or a header
    whose words contain one): a measure of which of several stacked tables in one file holds the target's
    rows. Exact matches only (no fuzzy matching): it runs on every candidate table of a file, so its cost
    stays a few set lookups per cell, whatever the file's header holds (at most MAX_FIT_CELLS cells)."""
    keys = {key for key in (learned_key(cell) for cell in cells[:MAX_FIT_CELLS] if cell) if key}
    compacts = {compact_key(key) for key in keys}
    tokens = [set(key.split()) for key in keys]
    named = 0
    for synonyms in synonym_index(target).values():
        for synonym, synonym_compact, _ in synonyms:
            words = set(synonym.split())
            if synonym in keys or synonym_compact in compacts or any(words <= found for found in tokens):
                named += 1
                break
    return named


MAX_FIT_CELLS = 200


def table_fit(cells: list[str]) -> int:
    """The most fields of any one trades target that a header row names (see header_fit). Only targets of trades:
    where a statement's table starts is judged by trade columns, the same whichever master data is known."""
    return max(header_fit(cells, target) for target in TARGETS.values() if target.trades)


_FITS, _WEAKENS, _CONTRADICTS = 1.0, 0.6, 0.3
LEARNED_CAP = 0.9


def _value_evidence(name: str, profile: Profile) -> tuple[float | None, float, str]:
    """(fit in [0, 1] or None without values, factor on the header score when values disagree, reason)."""
    n = profile.count
    if n == 0:
        return None, _FITS, ""
    numeric = profile.numeric / n
    dated = profile.date.ratio if profile.date else 0.0
    if name in ("quantity", "price", "commission"):
        if numeric < 0.5:
            return numeric, _CONTRADICTS, f"values are not numbers ({profile.numeric}/{n} are)"
        if numeric < 0.8:
            # Mostly numbers: rows of another kind (cash rows, a second layout appended) may hold other text.
            return numeric, _WEAKENS, f"values are partly numbers ({profile.numeric}/{n} samples)"
        fit = numeric * (0.3 if name == "price" and profile.negatives else 1.0)
        return fit, _FITS, f"values are numbers ({profile.numeric}/{n} samples)"
    if name == "executed_at":
        if profile.date is None or dated < 0.8:
            return dated, _CONTRADICTS, "values are not dates"
        guess = profile.date
        fit = dated * (1.0 if guess.has_time else 0.8)
        shown = " | ".join(guess.formats)
        described = "ISO dates" if guess.formats == ["iso"] else f"dates with format {shown}"
        return fit, _FITS, f"values parse as {described} ({guess.parsed}/{guess.total} samples)"
    if numeric >= 0.8 and name not in ("broker_trade_id", "account") or dated >= 0.8 or profile.time_only:
        return 0.0, _CONTRADICTS, "values are numbers or dates"
    if name == "side":
        hits = sum(1 for value in profile.values if value in profile.sides)
        if not hits:
            return 0.0, _WEAKENS, ""  # maybe only dividends in the sample, but another column may do better
        shown = ", ".join(_short(value) for value in list(profile.sides)[:4])
        return min(1.0, 0.6 + hits / n), _FITS, f"values are buy/sell words ({hits}/{n}: {shown})"
    if name == "currency":
        fit = profile.ratio(profile.currencies)
        if fit < 0.5:
            return fit, _CONTRADICTS, "values are not currency codes"
        return fit, _FITS, f"values are currency codes ({profile.currencies}/{n} samples)"
    if name == "symbol":
        if len(profile.sides) >= max(1, len(set(profile.values))):
            return 0.0, _CONTRADICTS, "values are buy/sell words"
        fit = profile.ratio(profile.tickers)
        return fit, _FITS, f"values look like tickers ({profile.tickers}/{n} samples)" if fit >= 0.5 else ""
    if name == "isin":
        fit = sum(1 for value in profile.values if _ISIN.fullmatch(value.strip().upper())) / n
        if fit < 0.5:
            return fit, _CONTRADICTS, "values are not ISINs"
        return fit, _FITS, f"values are ISINs ({round(fit * n)}/{n} samples)"
    if name == "mic":
        fit = sum(1 for value in profile.values if _MIC.fullmatch(value.strip().upper())) / n
        if fit < 0.5:
            return fit, _CONTRADICTS, "values are not 4-character market codes"
        return fit, _FITS, f"values are market codes ({round(fit * n)}/{n} samples)"
    if name == "ticker":
        fit = profile.ratio(profile.tickers)
        return fit, _FITS, f"values look like tickers ({profile.tickers}/{n} samples)" if fit >= 0.5 else ""
    if name == "broker_trade_id":
        fit = profile.ratio(profile.ids)
        return fit, _FITS, f"values look like ids ({profile.ids}/{n} unique)" if fit >= 0.8 else ""
    return 1.0, _FITS, ""


_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_MIC = re.compile(r"[A-Z][A-Z0-9]{3}")


def _short(value: str) -> str:
    """A value cut to 30 characters for reasons."""
    return value if len(value) <= 30 else value[:27] + "..."


def _learned_evidence(name: str, profile: Profile, learned: dict[str, dict[str, int]]) -> tuple[float, str]:
    """(score, reason) from the headers admins mapped to this field in approved formats."""
    counts = learned.get(learned_key(profile.column)) or learned.get(profile.key) or {}
    count = counts.get(name, 0)
    if not count:
        return 0.0, ""
    share = count / sum(counts.values())
    formats = "format" if count == 1 else "formats"
    reason = f"admins mapped '{profile.column}' to {name} in {count} approved {formats}"
    if share < 0.5:
        return 0.8, reason
    return 0.97 + 0.01 * min(count, 3) * share, reason


def score_pair(
    name: str, profile: Profile, synonyms: list[tuple[str, str, bool]], learned: dict[str, dict[str, int]]
) -> Score:
    """Combine header, value and learned evidence for one (field, column)."""
    header, header_reason = _header_evidence(name, profile.key, synonyms)
    fit, factor, value_reason = _value_evidence(name, profile)
    contradicts = factor == _CONTRADICTS
    strength = VALUE_STRENGTH[name]
    if fit is None:
        score = header * 0.85
    elif factor < _FITS:
        score = header * factor
    else:
        score = header + (1 - header) * strength * fit  # values add to, never replace, the header evidence
    reasons = [f"header '{profile.header or profile.column}' {header_reason}"] if header_reason else []
    if value_reason and not contradicts:
        reasons.append(value_reason)
    learned_score, learned_reason = _learned_evidence(name, profile, learned)
    if learned_score and factor >= _FITS:
        # What admins approved for another file counts, but never over this file's own evidence: values that
        # do not fit (a 'Type' column without buy/sell words) ignore it, and where the values tell columns
        # apart (tickers for a symbol, ids for a trade id) a column whose values do not look the part is held
        # below one whose header and values both fit.
        if fit is not None and fit < 0.5 and name in ("symbol", "side", "currency", "broker_trade_id"):
            learned_score = min(learned_score, LEARNED_CAP)
        score = max(score, learned_score)
        reasons.insert(0, learned_reason)
    if set(profile.key.split()) & NEGATIVE.get(name, set()) and not learned_score:
        score *= 0.55
    return Score(round(min(score, 1.0), 4), name, profile.index, "; ".join(reasons))
