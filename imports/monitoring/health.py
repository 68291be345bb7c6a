"""Health endpoints: liveness (/livez), readiness (/readyz) and the whole product (/healthz).

Three questions with three answers, so an orchestrator restarts only what is broken:
* /livez: does this web process answer? Nothing else is checked: a container probe that restarts the web
  server must not do it because Redis or a worker is away (restarting the web would not fix those).
* /readyz: can this web process serve requests? The database and Redis answer (pages and the API read
  the database; uploads and reviews need Redis for the queue and the rate limits).
* /healthz: is the product working? The database, Redis and at least one live RQ worker (registrations
  that dead workers left behind do not count). For monitoring and alerting, not for restarting the web.
"""

from __future__ import annotations

from typing import Any

import django_rq
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config.worker import live_workers


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - health reports any failure as "down"
        return f"down: {exc.__class__.__name__}"
    return "ok"


def _redis() -> tuple[str, Any]:
    try:
        redis = django_rq.get_connection("default")
        redis.ping()
    except Exception as exc:  # noqa: BLE001
        return f"down: {exc.__class__.__name__}", None
    return "ok", redis


def _answer(checks: dict[str, Any], healthy: bool) -> JsonResponse:
    return JsonResponse({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)


@never_cache
@require_safe
def livez(request: HttpRequest) -> HttpResponse:
    """GET /livez: 200 while the web process answers requests."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    """GET /readyz: 200 when the database and Redis answer, else 503 with what is down."""
    checks: dict[str, Any] = {"database": _database(), "redis": _redis()[0]}
    return _answer(checks, all(value == "ok" for value in checks.values()))


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """GET /healthz: 200 when the database, Redis and at least one live worker are up, else 503."""
    checks: dict[str, Any] = {"database": _database()}
    checks["redis"], redis = _redis()
    checks["workers"] = 0
    if redis is not None:
        try:
            checks["workers"] = len(live_workers(redis))
        except Exception as exc:  # noqa: BLE001 - Redis went away between the two calls
            checks["redis"] = f"down: {exc.__class__.__name__}"
    healthy = checks["database"] == "ok" and checks["redis"] == "ok" and checks["workers"] > 0
    if checks["redis"] == "ok" and checks["workers"] == 0:
        checks["problem"] = "no RQ worker is running"
    return _answer(checks, healthy)
