"""`manage.py mapping_accuracy`: the suggestion scored against known mappings of real files."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import CORPUS

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "corpus_expected_mappings.json"

TRADES = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
"""
SIGNED = """Date,Symbol,Qty,Price,Currency
01/03/2024,AAPL,10,171.25,USD
02/03/2024,MSFT,-5,410.10,USD
"""


def run(*args: str) -> str:
    out = StringIO()
    call_command("mapping_accuracy", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_prints_per_field_and_overall_accuracy_on_the_shared_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent in this checkout: nothing to measure")
    output = run(str(CORPUS))
    expected_files = json.loads(FIXTURE.read_text())["files"]
    assert f"on {len(expected_files)} corpus files" in output
    assert "Per field:" in output
    for field in ("symbol", "side", "quantity", "price", "currency", "executed_at"):
        assert re.search(rf"^{field}\s+\d+\s+\d+\s+\d+\.\d%$", output, re.M), field
    assert re.search(r"^OVERALL: \d+/\d+ fields correct \(\d+\.\d%\)$", output, re.M)
    assert "side converter correct:" in output and "executed_at read correctly" in output
    # Confidence that means something: fields suggested at 0.9 or more are right at least 95% of the time.
    band = re.search(r"^\s+\[0\.9, 1\.0\]\s+(\d+) fields\s+(\d+\.\d)% right$", output, re.M)
    assert band, output
    assert int(band.group(1)) >= 100 and float(band.group(2)) >= 95.0, band.group(0)


def test_the_expected_mappings_name_real_columns_of_each_corpus_file() -> None:
    """The fixture is only useful if every expected column exists in the file as the reader sees it."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent in this checkout")
    from formats.management.commands.mapping_accuracy import suggest_for_file

    for relative, expectation in json.loads(FIXTURE.read_text())["files"].items():
        suggestion, _ = suggest_for_file(CORPUS / relative, learned={})
        for field, columns in expectation["fields"].items():
            unknown = set(columns) - set(suggestion["columns"])
            assert not unknown, f"{relative}: {field} expects unknown column(s) {unknown}"


def test_the_accuracy_is_computed_field_by_field_on_a_tiny_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "x").mkdir(parents=True)
    (corpus / "x" / "trades.csv").write_text(TRADES)
    (corpus / "x" / "signed.csv").write_text(SIGNED)
    right = {
        "symbol": ["Ticker"],
        "side": ["Buy or Sell"],
        "quantity": ["Shares"],
        "price": ["Fill Price"],
        "currency": ["Ccy"],
        "executed_at": ["Trade Date"],
        "broker_trade_id": ["Ref"],
    }
    # Deliberately "expect" a wrong column for price in the second file: the suggestion cannot match it.
    signed = {
        "symbol": ["Symbol"],
        "side": ["Qty"],
        "quantity": ["Qty"],
        "price": ["Currency"],
        "executed_at": ["Date"],
    }
    expected = tmp_path / "expected.json"
    expected.write_text(
        json.dumps(
            {
                "files": {
                    "x/trades.csv": {"fields": right, "side_converter": "side", "date_formats": ["%Y-%m-%d %H:%M:%S"]},
                    "x/signed.csv": {
                        "fields": signed,
                        "side_converter": "side_from_sign",
                        "date_formats": ["%d/%m/%Y"],
                    },
                    "x/missing.csv": {"fields": right},
                }
            }
        )
    )
    output = run(str(corpus), "--expected", str(expected), "--verbose-mistakes")
    assert "on 2 corpus files" in output
    assert re.search(r"^x/trades\.csv\s+7/7\s+100\.0%\s+ok\s+ok", output, re.M), output
    assert re.search(r"^x/signed\.csv\s+4/5\s+80\.0%\s+ok\s+\S+\s+price$", output, re.M), output
    assert re.search(r"^price\s+1\s+2\s+50\.0%$", output, re.M)
    assert re.search(r"^symbol\s+2\s+2\s+100\.0%$", output, re.M)
    assert "OVERALL: 11/12 fields correct (91.7%)" in output
    assert "files with every scored field right: 1/2" in output
    assert "x/signed.csv: price: expected ['Currency'], suggested ['Price']" in output


def test_it_explains_a_missing_corpus_or_expected_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not found"):
        run(str(tmp_path / "nope"))
    with pytest.raises(CommandError, match="Cannot read the expected mappings"):
        run(str(tmp_path), "--expected", str(tmp_path / "none.json"))
