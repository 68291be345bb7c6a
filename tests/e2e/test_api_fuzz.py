"""The JSON API fuzzed against its own generated OpenAPI document (schemathesis), on a real gunicorn server.

Every operation of GET /api/schema gets a bounded number of generated requests (query strings, path ids,
JSON and multipart bodies, headers), sent with a reviewer's API token so the review endpoints do real work.
Each answer must not be a server error, must have a status code the document lists for that operation, and
must match the documented schema of that status (the error shape included).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import api_key_for
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TRADES = (
    "Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref\n2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1\n"
)


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {"AIRLOCK_UPLOADS_PER_HOUR": "100000", "AIRLOCK_REVIEWS_PER_HOUR": "100000"}


def test_generated_requests_get_documented_answers_and_never_a_server_error(stack: Stack, reviewer: Any) -> None:
    auth = {"Authorization": f"Bearer {api_key_for(reviewer)}"}
    # Something to find: a file (pending approval: its format is in the review queue) and its batch.
    answer = requests.post(
        f"{stack.base_url}/api/uploads", files={"file": ("trades.csv", TRADES)}, headers=auth, timeout=60
    )
    assert answer.status_code == 202, answer.text
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/api/schema")
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tried += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(base_url=stack.base_url, headers=auth, timeout=60)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - every operation is tried; the failures are listed together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert tried >= 15, tried
    assert not failures, "\n\n".join(failures)
