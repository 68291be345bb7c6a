"""Per-user rate limits with counters in Redis, so they hold across every web process.

Fixed one-hour windows: one key per (bucket, user, window), INCR and EXPIRE sent in one MULTI so the
counter and its expiry are set atomically (a crash between them cannot leave a counter that never
expires). A fixed window lets a user make up to twice the limit around a window edge; that is
acceptable for abuse protection and keeps the check to one round trip.
"""

from __future__ import annotations

import time
from typing import Any

import django_rq
import redis.exceptions
from django.conf import settings

from config.errors import RateLimited, ServiceUnavailable

WINDOW_SECONDS = 3600
REDIS_DOWN_RETRY_AFTER = 30
KEY_PREFIX = "airlock:ratelimit"

# bucket -> (settings.AIRLOCK key of the limit, what the user was doing, for the message)
BUCKETS: dict[str, tuple[str, str]] = {
    "upload": ("UPLOADS_PER_HOUR", "upload requests"),
    "review": ("REVIEWS_PER_HOUR", "approve/reject decisions"),
}


def _key(bucket: str, user_id: int, window: int) -> str:
    return f"{KEY_PREFIX}:{bucket}:{user_id}:{window}"


def _redis_down(bucket: str) -> ServiceUnavailable:
    # Checked before anything is stored: an upload or a review during a Redis outage changes nothing and
    # says so (503 + Retry-After) instead of failing with a server error.
    return ServiceUnavailable(
        "Airlock's job queue is unavailable right now, so nothing was done with this request. Try again in a minute.",
        details={"retry_after": REDIS_DOWN_RETRY_AFTER, "bucket": bucket},
    )


def _refuse_past(*, bucket: str, count: int, window: int, now: float) -> None:
    setting, what = BUCKETS[bucket]
    limit = int(settings.AIRLOCK[setting])
    if count <= limit:
        return
    retry_after = max(1, (window + 1) * WINDOW_SECONDS - int(now))
    minutes = (retry_after + 59) // 60
    raise RateLimited(
        f"Too many {what}: the limit is {limit} per hour. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        details={"retry_after": retry_after, "limit": limit, "bucket": bucket},
    )


def rate_limit_hit(*, bucket: str, user: Any, now: float | None = None) -> int:
    """Count one request of `user` in `bucket`; raise RateLimited (429) past the hourly limit.

    Call it only once the request is known to be the user's own and new work: after the CSRF check and
    after an idempotent replay was ruled out (a forged or retried request must not spend the budget).
    Returns how many requests remain in the current window.
    """
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    key = _key(bucket, user.pk, window)
    try:
        with django_rq.get_connection("default").pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 60)
            count, _ = pipe.execute()
    except redis.exceptions.RedisError as exc:
        raise _redis_down(bucket) from exc
    _refuse_past(bucket=bucket, count=count, window=window, now=now)
    return int(settings.AIRLOCK[BUCKETS[bucket][0]]) - count


def rate_limit_check(*, bucket: str, user: Any, now: float | None = None) -> None:
    """Raise RateLimited if `user` has already used up `bucket` this window, without counting anything.

    Lets a guard refuse a blocked user before reading a request body; the request is counted later, by
    `rate_limit_hit`, once it is known to be genuine.
    """
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    try:
        count = int(django_rq.get_connection("default").get(_key(bucket, user.pk, window)) or 0)
    except redis.exceptions.RedisError as exc:
        raise _redis_down(bucket) from exc
    _refuse_past(bucket=bucket, count=count + 1, window=window, now=now)


def rate_limit_reset(*, bucket: str, user: Any) -> None:
    """Forget a user's counter for the current window (ops: lift a block early)."""
    window = int(time.time() // WINDOW_SECONDS)
    django_rq.get_connection("default").delete(_key(bucket, user.pk, window))
