"""The user's side of the JSON API: upload lists, row errors, staging, orders with cursors, the schema."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from imports.models import ImportFile
from imports.services.uploads import review_approve
from tests.imports.api.test_api import bearer
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db

HEADER = "Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref\n"


def trades(*rows: str) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


def approved_file(
    user: Any, reviewer: Any, run_jobs: Any, capture: Any, text: str = TRADES, name: str = "trades.csv"
) -> ImportFile:
    """Upload, approve the new format with its suggested mapping, migrate."""
    file = upload(user, text=text, name=name, run_jobs=run_jobs, capture=capture)
    with capture(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    file.refresh_from_db()
    return file


def get(client: Client, user: Any, url: str) -> Any:
    return client.get(url, **bearer(user))


@pytest.mark.parametrize(
    "url",
    ["/api/uploads", "/api/uploads/1/errors", "/api/staging/status", "/api/staging/orders", "/api/orders"],
)
def test_it_answers_401_in_the_error_shape_without_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message", "details"}
    assert response.json()["error"] == "not_authenticated"


def test_it_lists_only_the_callers_uploads_page_by_page(
    client: Client, user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    for n in range(3):
        upload(
            user,
            text=trades(f"2024-03-0{n + 1} 09:30:00,AAPL,Buy,{n + 1},1.5,0,USD,T-{n}"),
            name=f"f{n}.csv",
            run_jobs=run_jobs,
            capture=django_capture_on_commit_callbacks,
        )
    theirs = upload(other_user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)

    first = get(client, user, "/api/uploads?page_size=2").json()
    assert (first["count"], first["pages"], first["page"], len(first["results"])) == (3, 2, 1, 2)
    second = get(client, user, "/api/uploads?page_size=2&page=2").json()
    assert len(second["results"]) == 1
    names = [f["name"] for f in first["results"] + second["results"]]
    assert names == ["f2.csv", "f1.csv", "f0.csv"]  # newest first
    assert theirs.pk not in [f["id"] for f in first["results"] + second["results"]]


def test_it_filters_uploads_by_status_and_ids_and_refuses_an_unknown_status(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert get(client, user, "/api/uploads?status=PENDING_APPROVAL").json()["count"] == 1
    assert get(client, user, "/api/uploads?status=imported").json()["count"] == 0
    assert [f["id"] for f in get(client, user, f"/api/uploads?ids={file.pk}").json()["results"]] == [file.pk]
    bad = get(client, user, "/api/uploads?status=DONE")
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_filter" and "PENDING_APPROVAL" in bad.json()["message"]
    assert get(client, user, "/api/uploads?ids=1,x").status_code == 400


def test_it_lists_a_files_failed_rows_with_row_field_value_and_error(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    body = get(client, user, f"/api/uploads/{file.pk}/errors").json()
    assert body["rows_invalid"] == body["rows_failed"] == 1 and body["count"] == 1
    assert body["results"] == [
        {"row": 4, "field": "quantity", "value": "0", "error": "quantity must be greater than 0"}
    ]


def test_it_pages_through_row_errors(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = trades(
        *[f"2024-03-01 09:30:00,AAPL,Buy,0,1.5,0,USD,T-{n}" for n in range(5)],
        "2024-03-01 09:30:00,AAPL,Buy,1,1.5,0,USD,T-ok",
    )
    file = approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks, text=text)
    pages = [get(client, user, f"/api/uploads/{file.pk}/errors?page_size=2&page={n}").json() for n in (1, 2, 3)]
    assert [len(p["results"]) for p in pages] == [2, 2, 1]
    assert [e["row"] for p in pages for e in p["results"]] == [2, 3, 4, 5, 6]
    assert pages[0]["pages"] == 3


def test_another_users_file_errors_answer_404(
    client: Client, user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    response = get(client, other_user, f"/api/uploads/{file.pk}/errors")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not found.", "details": {}}


def test_staging_status_counts_the_callers_rows_and_files_by_status(
    client: Client, user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    mine = get(client, user, "/api/staging/status").json()
    assert mine["rows"]["PENDING"] == 3 and mine["rows"]["MIGRATED"] == 0
    assert mine["files"]["PENDING_APPROVAL"] == 1
    assert mine["waiting"] == {"rows": 3, "files": 1}
    theirs = get(client, other_user, "/api/staging/status").json()
    assert theirs["waiting"] == {"rows": 0, "files": 0} and theirs["rows"]["PENDING"] == 0


def test_staged_rows_are_cursor_paginated_in_file_and_line_order(
    client: Client, user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = trades(*[f"2024-03-01 09:30:00,AAPL,Buy,{n + 1},1.5,0,USD,T-{n}" for n in range(5)])
    file = upload(user, text=text, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    upload(other_user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    url, seen, pages = "/api/staging/orders?page_size=2&status=PENDING", [], 0
    while url:
        body = get(client, user, url).json()
        assert body["page_size"] == 2
        seen += body["results"]
        url, pages = body["next"], pages + 1
    assert pages == 3
    assert [(r["file"], r["line"]) for r in seen] == [(file.pk, line) for line in range(2, 7)]
    assert seen[0]["cells"][:3] == ["2024-03-01 09:30:00", "AAPL", "Buy"]
    assert seen[0]["status"] == "PENDING" and seen[0]["status_display"] == "Pending approval"
    assert seen[0]["format"]["status"] == "PENDING"


def test_staged_rows_can_be_fetched_by_id_and_file_and_refuse_bad_input(
    client: Client, user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    theirs = upload(other_user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    rows = get(client, user, f"/api/staging/orders?file={file.pk}").json()["results"]
    assert len(rows) == 3
    only = get(client, user, f"/api/staging/orders?ids={rows[1]['id']}").json()["results"]
    assert [r["line"] for r in only] == [3]
    their_row = theirs.staged_rows.first().pk
    assert get(client, user, f"/api/staging/orders?ids={their_row}").json()["results"] == []
    assert get(client, user, f"/api/staging/orders?file={theirs.pk}").status_code == 404
    bad = get(client, user, "/api/staging/orders?cursor=not-a-cursor")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_cursor"


def test_orders_are_cursor_paginated_with_a_next_link(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = trades(*[f"2024-03-0{n + 1} 09:30:00,AAPL,Buy,1,1.5,0,USD,T-{n}" for n in range(5)])
    approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks, text=text)
    first = get(client, user, "/api/orders?page_size=2").json()
    assert len(first["results"]) == 2 and first["next"] and "cursor=" in first["next"]
    assert "page_size=2" in first["next"]
    ids, url = [], "/api/orders?page_size=2"
    while url:
        body = get(client, user, url).json()
        ids += [o["broker_trade_id"] for o in body["results"]]
        url = body["next"]
    assert ids == ["T-4", "T-3", "T-2", "T-1", "T-0"]  # newest first, none repeated


def test_order_numbers_come_out_in_plain_notation_without_trailing_zeros(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # Decimal('300').normalize() prints '3E+2', and the stored scale gives '2450.00000000': neither is sent.
    text = trades(
        "2024-03-01 09:30:00,AAPL,Buy,300,2450,0.10,USD,T-1", "2024-03-01 09:31:00,AAPL,Buy,0.000001,1E-2,0,USD,T-2"
    )
    approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks, text=text)
    orders = {o["broker_trade_id"]: o for o in get(client, user, "/api/orders").json()["results"]}
    assert (orders["T-1"]["quantity"], orders["T-1"]["price"], orders["T-1"]["commission"]) == ("300", "2450", "0.1")
    assert (orders["T-2"]["quantity"], orders["T-2"]["price"], orders["T-2"]["commission"]) == ("0.000001", "0.01", "0")


def test_orders_filter_like_the_page_and_refuse_a_bad_filter(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)  # T-1 AAPL buy, T-2 MSFT sell

    def refs(query: str) -> list[str]:
        return sorted(o["broker_trade_id"] for o in get(client, user, f"/api/orders?{query}").json()["results"])

    assert refs("symbol=msft") == ["T-2"]
    assert refs("side=BUY") == ["T-1"]
    assert refs("date_from=2024-03-01&date_to=2024-03-01") == ["T-1", "T-2"]
    assert refs("date_from=2024-03-02") == []
    assert refs(f"source_file={file.pk}") == ["T-1", "T-2"]
    bad = get(client, user, "/api/orders?date_from=01/03/2024")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_filter"
    assert "date_from" in bad.json()["details"]


def test_staged_rows_never_appear_in_orders(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    body = get(client, user, "/api/orders").json()
    assert body["results"] == [] and body["next"] is None


def test_another_users_orders_are_not_listed(
    client: Client,
    user: Any,
    other_user: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    file = approved_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    assert get(client, other_user, "/api/orders").json()["results"] == []
    assert get(client, other_user, f"/api/orders?source_file={file.pk}").json()["results"] == []


def test_an_unknown_api_url_answers_404_in_the_error_shape(client: Client, user: Any) -> None:
    response = get(client, user, "/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def _api_routes() -> set[str]:
    routes: set[str] = set()

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                route = "/" + prefix + str(pattern.pattern)
                if route.startswith("/api/"):
                    routes.add(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns, "")
    return routes


def test_the_openapi_schema_documents_every_api_url(client: Client) -> None:
    schema = client.get("/api/schema").json()
    assert schema["openapi"].startswith("3.")
    missing = _api_routes() - set(schema["paths"]) - {"/api/schema"}  # the document itself
    assert not missing, f"undocumented API URLs: {sorted(missing)}"
    assert set(schema["paths"]["/api/uploads"]) == {"get", "post"}
    assert "cursor" in [p["name"] for p in schema["paths"]["/api/orders"]["get"]["parameters"]]


def test_every_reference_in_the_openapi_schema_resolves(client: Client) -> None:
    schema = client.get("/api/schema").json()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        target: Any = schema
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref
