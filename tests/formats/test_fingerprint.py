"""Fingerprints are stable under case, whitespace, BOM and quoting; column order matters."""

from formats.fingerprint import fingerprint, normalise_header


def test_it_ignores_case_surrounding_whitespace_bom_and_quotes() -> None:
    assert fingerprint(["\ufeffDate", ' "Symbol" ', "QTY"]) == fingerprint(["date", "symbol", "qty"])


def test_it_collapses_inner_whitespace() -> None:
    assert fingerprint(["Fees  &   Comm"]) == fingerprint(["fees & comm"])


def test_column_order_makes_a_different_format() -> None:
    assert fingerprint(["Date", "Symbol"]) != fingerprint(["Symbol", "Date"])


def test_a_trailing_empty_column_from_a_trailing_delimiter_is_ignored() -> None:
    assert fingerprint(["Date", "Symbol", ""]) == fingerprint(["Date", "Symbol"])


def test_a_section_name_is_part_of_the_fingerprint() -> None:
    assert fingerprint(["Symbol"], section="Trades") != fingerprint(["Symbol"])


def test_it_normalises_cells_for_display() -> None:
    assert normalise_header([" Trade  Date ", "Qty", ""]) == ["trade date", "qty"]
