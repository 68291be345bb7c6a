"""Non-UTF files are read in the encoding their text is in: Polish cp1250, Russian cp1251, Japanese Shift-JIS,
Chinese GB18030/GBK and Western cp1252/latin-1 told apart on realistic broker exports (they were all read as
cp1252 before, silently garbling every non-Western letter); UTF-8 (with or without a BOM) and UTF-16 as before.

Runs without a database, like test_reading.py.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from imports import reading
from imports.reading import encoding as detection
from tests.imports.reading.test_reading import read, write

POLISH = (
    "Data transakcji;Instrument;Rodzaj;Ilość;Kurs;Prowizja;Waluta;Uwagi\n"
    "2024-03-01;PKN ORLEN;Kupno;10;61,25;5,00;PLN;Zlecenie z rachunku maklerskiego\n"
    "2024-03-04;KGHM Polska Miedź;Sprzedaż;5;118,40;5,00;PLN;Rozliczenie w dniu sesji, opłata giełdowa\n"
    "2024-03-05;Żabka Group;Kupno;20;19,84;4,50;PLN;Zlecenie częściowo zrealizowane\n"
)
RUSSIAN = (
    "Дата сделки;Инструмент;Операция;Количество;Цена;Комиссия;Валюта;Примечание\n"
    "01.03.2024;Сбербанк ао;Покупка;10;285,40;14,27;RUB;Исполнено на бирже\n"
    "04.03.2024;Газпром;Продажа;100;160,12;80,06;RUB;Частичное исполнение заявки\n"
    "05.03.2024;Лукойл;Покупка;2;7350,00;73,50;RUB;Комиссия брокера включена\n"
)
JAPANESE = (
    "約定日,銘柄名,売買区分,数量,約定単価,手数料,通貨,備考\n"
    "2024/03/01,トヨタ自動車,買付,100,3520.0,550,JPY,特定口座\n"
    "2024/03/04,ソニーグループ,売付,50,13250.0,550,JPY,一般口座\n"
    "2024/03/05,任天堂,買付,10,8120.0,275,JPY,特定口座\n"
)
CHINESE = (
    "成交日期,证券名称,买卖方向,成交数量,成交价格,佣金,币种,备注\n"
    "2024-03-01,贵州茅台,买入,100,1688.00,5.00,CNY,普通账户\n"
    "2024-03-04,中国平安,卖出,500,41.20,5.00,CNY,融资融券账户\n"
    "2024-03-05,宁德时代,买入,200,186.50,5.00,CNY,普通账户\n"
)
GERMAN = (
    "Datum;Wertpapier;Art;Stück;Kurs;Gebühr;Währung;Bemerkung\n"
    "01.03.2024;Münchener Rück;Kauf;10;412,30;4,95;EUR;Ausführung an der Börse Xetra\n"
    "04.03.2024;Société Générale;Verkauf;25;24,15;4,95;EUR;Ordre exécuté – frais inclus\n"
    "05.03.2024;Nestlé;Kauf;8;96,40;4,95;EUR;Gebühren für „Fremdspesen“ enthalten\n"
)
FRENCH = (
    "Date;Valeur;Sens;Quantité;Cours;Frais;Devise;Remarque\n"
    "01/03/2024;Crédit Agricole;Achat;50;13,05;2,50;EUR;Ordre exécuté à la clôture\n"
    "04/03/2024;Société Générale;Vente;25;24,15;2,50;EUR;Exécution partielle, reste annulé\n"
    "05/03/2024;L'Oréal;Achat;3;440,10;2,50;EUR;Frais de courtage inclus\n"
)

# (text, how it is saved, the encodings the file may be reported in: a superset reads the same text)
CASES = {
    "polish-cp1250": (POLISH, "cp1250", {"cp1250"}),
    "russian-cp1251": (RUSSIAN, "cp1251", {"cp1251"}),
    "japanese-shift-jis": (JAPANESE, "shift_jis", {"cp932"}),
    "japanese-cp932": (JAPANESE, "cp932", {"cp932"}),
    "chinese-gbk": (CHINESE, "gbk", {"gb18030"}),
    "chinese-gb18030": (CHINESE, "gb18030", {"gb18030"}),
    "german-cp1252": (GERMAN, "cp1252", {"cp1252"}),
    "french-latin-1": (FRENCH, "latin-1", {"cp1252"}),  # no byte of 0x80-0x9F: cp1252 reads latin-1 text the same
}


def rows_of(text: str) -> list[list[str]]:
    delimiter = ";" if ";" in text.splitlines()[0] else ","
    return [line.split(delimiter) for line in text.splitlines()]


@pytest.mark.parametrize("case", list(CASES))
def test_a_legacy_encoded_export_is_read_in_its_own_encoding(tmp_path: Path, case: str) -> None:
    text, saved_as, reported = CASES[case]
    layout, records, _ = read(write(tmp_path, text, encoding=saved_as))
    assert layout.encoding in reported
    header, *rows = rows_of(text)
    assert layout.header == header
    assert [record.cells for record in records] == rows


@pytest.mark.parametrize("case", ["polish-cp1250", "russian-cp1251", "japanese-cp932", "chinese-gb18030"])
def test_the_encoding_is_detected_where_the_first_non_utf8_bytes_are_after_an_ascii_prefix(
    tmp_path: Path, case: str
) -> None:
    """The prefix read first is plain ASCII (valid UTF-8); the text further down decides the encoding."""
    text, saved_as, reported = CASES[case]
    _, first, *rest = text.splitlines(keepends=True)
    delimiter = ";" if ";" in first else ","
    header = delimiter.join(["Date", "Name", "Side", "Qty", "Price", "Fee", "Ccy", "Note"]) + "\n"
    filler = "".join(
        delimiter.join(["2024-01-02", f"ROW{i}", "Buy", "1", "2", "0", "EUR", "x"]) + "\n" for i in range(8_000)
    )
    path = write(tmp_path, (header + filler + first + "".join(rest)).encode(saved_as))
    assert path.stat().st_size > reading.HEAD_BYTES
    layout, records, _ = read(path)
    assert layout.encoding in reported
    assert [record.cells for record in records[-3:]] == [line.rstrip("\n").split(delimiter) for line in (first, *rest)]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (POLISH.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + RUSSIAN.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + JAPANESE.encode("utf-16-le"), "utf-16"),
        (CHINESE.encode("utf-16-le"), "utf-16-le"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-bom", "utf-16-le"],
)
def test_utf8_and_utf16_files_are_read_as_before(tmp_path: Path, data: bytes, encoding: str) -> None:
    layout, records, _ = read(write(tmp_path, data))
    assert layout.encoding == encoding
    assert len(records) == 3


def test_the_detector_reads_a_bounded_prefix() -> None:
    """Limits before work: however large the head, the detector sees at most DETECT_BYTES, cut at a line end."""
    big = (POLISH.encode("cp1250")) * 1000
    prefix = detection.detect_prefix(big)
    assert len(prefix) <= detection.DETECT_BYTES and prefix.endswith(b"\n")
    assert detection.legacy_encoding(big) == "cp1250"
