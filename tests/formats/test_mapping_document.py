"""One strict check of the mapping document, shared by the admin form, the JSON API and the import command:
unknown keys at any level, wrong types and converters or options the registry does not know are refused
with a message naming the key and what is allowed there, and nothing is stored. The unknown-key cases through
the admin, the API and import_formats are in tests/security/test_refusals.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.test import Client

from config.errors import MappingError
from formats.mapping import mapping_document_check
from formats.models import CsvFormat, FormatStatus
from formats.services import format_update_mapping, mapping_validate
from imports.models import ImportFile
from tests.formats.test_admin_review import GOOD, upload
from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> ImportFile:
    """A file of an unknown format uploaded by `user`, staged, its format's mapping set to GOOD."""
    file = upload(user, run_jobs, django_capture_on_commit_callbacks)
    format_update_mapping(format_id=file.format_id, actor=user, mapping=GOOD)
    return ImportFile.objects.get(pk=file.pk)


@pytest.fixture
def reviewer_client(reviewer: Any) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def changed(path: str, value: Any, *, delete: bool = False) -> dict[str, Any]:
    """GOOD with the value at a dotted path ('fields.symbol.colums', 'filters.0.op') set or deleted."""
    mapping = copy.deepcopy(GOOD)
    mapping["filters"] = [{"column": "Ccy", "op": "in", "values": ["USD"]}]
    *parents, last = path.split(".")
    node: Any = mapping
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if delete:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return mapping


# (mapping, words the message must hold): each a different level or kind of fault.
BAD = {
    "unknown-top-key": (changed("note", "x"), ["'note'", "top of the mapping", "version, reader, filters, fields"]),
    "unknown-field-key": (
        changed("fields.symbol.colums", ["Ticker"]),
        ["'colums'", "fields.symbol", "columns, converter, options, confidence, reason"],
    ),
    "unknown-reader-key": (changed("reader.sheet", "A"), ["'sheet'", "reader", "section, header_line"]),
    "unknown-filter-key": (changed("filters.0.colour", "red"), ["'colour'", "filters[0]", "column, op, values"]),
    "unknown-option": (changed("fields.symbol.options", {"lower": True}), ["'lower'", "symbol", "upper"]),
    "unknown-converter": (changed("fields.side.converter", "guess"), ["Unknown converter 'guess'", "side", "decimal"]),
    "converter-not-text": (changed("fields.side.converter", 7), ["Unknown converter 7"]),
    "option-type": (changed("fields.symbol.options", {"upper": "yes"}), ["'upper'", "true or false"]),
    "options-not-object": (changed("fields.symbol.options", ["upper"]), ["must be an object"]),
    "constant-value-type": (
        changed("fields.currency", {"columns": [], "converter": "constant", "options": {"value": ["USD"]}}),
        ["'value'", "a text or a number"],
    ),
    "columns-not-list": (changed("fields.symbol.columns", "Ticker"), ["fields.symbol.columns", "a list"]),
    "column-not-text": (changed("fields.symbol.columns", [3]), ["fields.symbol.columns[0]", "a text"]),
    "spec-not-object": (changed("fields.symbol", "Ticker"), ["fields.symbol", "an object"]),
    "confidence-type": (changed("fields.symbol.confidence", "high"), ["fields.symbol.confidence", "a number"]),
    "reason-type": (changed("fields.symbol.reason", {"a": 1}), ["fields.symbol.reason", "a text"]),
    "version": (changed("version", 2), ["'version' must be 1"]),
    "version-bool": (changed("version", True), ["'version' must be 1"]),
    "reader-type": (changed("reader", "line 3"), ["'reader' must be an object"]),
    "header-line-type": (changed("reader.header_line", "7"), ["reader.header_line", "line number"]),
    "header-line-zero": (changed("reader.header_line", 0), ["reader.header_line", "line number"]),
    "header-line-bool": (changed("reader.header_line", True), ["reader.header_line", "line number"]),
    "section-type": (changed("reader.section", 5), ["reader.section", "a text or null"]),
    "filters-type": (changed("filters", {"column": "Ccy"}), ["'filters' must be a list"]),
    "filter-type": (changed("filters.0", "Ccy"), ["filters[0]", "an object"]),
    "filter-op": (changed("filters.0.op", "regex"), ["filters[0].op", "not_in", "side_word"]),
    "filter-column-type": (changed("filters.0.column", ["Ccy"]), ["filters[0].column", "a text"]),
    "filter-values-type": (changed("filters.0.values", "USD"), ["filters[0].values", "a list"]),
    "filter-value-type": (changed("filters.0.values", [{"a": 1}]), ["filters[0].values[0]", "a text or a number"]),
    "fields-missing": (changed("fields", None, delete=True), ["'fields' object"]),
    "fields-type": (changed("fields", []), ["'fields' object", "a list"]),
    "not-an-object": ([GOOD], ["must be a JSON object"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_the_document_check_names_the_key_at_fault_and_what_is_allowed(case: str) -> None:
    mapping, words = BAD[case]
    with pytest.raises(MappingError) as caught:
        mapping_validate(target="orders", mapping=mapping, columns=COLUMNS)
    for word in words:
        assert word in caught.value.message, (case, caught.value.message)


COLUMNS = ["Trade Date", "Ticker", "Buy or Sell", "Shares", "Fill Price", "Fee", "Ccy", "Ref"]


def test_a_complete_document_and_the_suggestions_own_keys_pass() -> None:
    mapping = changed("fields.symbol.confidence", 0.9)
    mapping["fields"]["symbol"]["reason"] = "header 'Ticker' = symbol"
    mapping["filters"].append({"column": "Ticker", "op": "startswith", "value": "A"})
    mapping_document_check(mapping)
    assert mapping_validate(target="orders", mapping=mapping, columns=COLUMNS)["fields"] == mapping["fields"]


# --- the entry points (unknown keys through each: tests/security/test_refusals.py) --------------------------


@pytest.mark.parametrize("case", ["option-type", "filter-op", "confidence-type", "column-not-text", "version"])
def test_the_api_approval_refuses_a_bad_document_with_400_and_stores_nothing(
    client: Client, pending: ImportFile, reviewer: Any, case: str
) -> None:
    mapping, words = BAD[case]
    response = client.post(
        f"/api/admin/formats/{pending.format_id}/approve",
        {"mapping": mapping},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_mapping"
    assert all(word in body["message"] for word in words), body
    fmt = CsvFormat.objects.get(pk=pending.format_id)
    assert fmt.status == FormatStatus.PENDING and fmt.mapping == GOOD


def test_the_api_correction_of_an_approved_format_refuses_a_bad_document(
    client: Client,
    pending: ImportFile,
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    url = f"/api/admin/formats/{pending.format_id}/approve"
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {}, content_type="application/json", **bearer(reviewer)).status_code == 202
    bad = changed("fields.price.scale", "0.01")  # an option put beside 'options'
    response = client.post(url, {"mapping": bad}, content_type="application/json", **bearer(reviewer))
    assert response.status_code == 400 and "'scale'" in response.json()["message"]
    assert CsvFormat.objects.get(pk=pending.format_id).mapping == GOOD
