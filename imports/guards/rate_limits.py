"""Per-user rate limits with counters in Redis, so they hold across every web process.

A sliding window: each counted request is a member of a sorted set per (bucket, user), scored by its
time; a request is allowed while fewer than the limit were counted in the last hour (not per clock hour,
where a user uploading files one by one hit the limit after 25 minutes and waited 54). One Lua script
trims, counts and adds atomically, so concurrent web processes never over-admit; the set expires an hour
after its last member. A refusal says when the next request will be allowed (the oldest counted request
in the window leaves it then).
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import django_rq
import redis.exceptions
from django.conf import settings
from django.utils import timezone

from config.errors import RateLimited, ServiceUnavailable

WINDOW_SECONDS = 3600
REDIS_DOWN_RETRY_AFTER = 30
KEY_PREFIX = "airlock:ratelimit"

# bucket -> (settings.AIRLOCK key of the limit, what the user was doing, for the message)
BUCKETS: dict[str, tuple[str, str]] = {
    "upload": ("UPLOADS_PER_HOUR", "upload requests"),
    "review": ("REVIEWS_PER_HOUR", "approve/reject decisions"),
}


def _key(bucket: str, user_id: int) -> str:
    return f"{KEY_PREFIX}:{bucket}:{user_id}"


def _redis_down(bucket: str) -> ServiceUnavailable:
    # Checked before anything is stored: an upload or a review during a Redis outage changes nothing and
    # says so (503 + Retry-After) instead of failing with a server error.
    return ServiceUnavailable(
        "Airlock's job queue is unavailable right now, so nothing was done with this request. Try again in a minute.",
        details={"retry_after": REDIS_DOWN_RETRY_AFTER, "bucket": bucket},
    )


def _limit(bucket: str) -> int:
    return int(settings.AIRLOCK[BUCKETS[bucket][0]])


# KEYS[1] the set; ARGV: now, window, limit, member, add (1 = count this request when allowed).
# Returns {count in the window after this call, score of the request whose leaving frees a place (or -1)}.
_SLIDE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local n = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[3])
if n >= limit then
  local first = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return {n, first[2]}
end
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 60)
  n = n + 1
end
return {n, '-1'}
"""


def _slide(*, bucket: str, user: Any, now: float, add: bool) -> int:
    """Run the window script; RateLimited when the window is full; the count in the window otherwise."""
    limit = _limit(bucket)
    member = f"{now:.6f}:{secrets.token_hex(4)}"
    try:
        connection = django_rq.get_connection("default")
        count, freed_at = connection.eval(
            _SLIDE, 1, _key(bucket, user.pk), repr(now), WINDOW_SECONDS, limit, member, "1" if add else "0"
        )
    except redis.exceptions.RedisError as exc:
        raise _redis_down(bucket) from exc
    freed = float(freed_at)
    if freed >= 0:
        _refuse(bucket=bucket, limit=limit, retry_after=freed + WINDOW_SECONDS - now, now=now)
    return int(count)


def _refuse(*, bucket: str, limit: int, retry_after: float, now: float) -> None:
    what = BUCKETS[bucket][1]
    seconds = max(1, math.ceil(retry_after))
    minutes = (seconds + 59) // 60
    at = timezone.localtime(datetime.fromtimestamp(now + seconds, tz=UTC))
    raise RateLimited(
        f"Too many {what}: the limit is {limit} in any hour. The next one is possible in {minutes} "
        f"minute{'s' if minutes != 1 else ''}, at {at:%H:%M} ({at.tzname()}).",
        details={"retry_after": seconds, "limit": limit, "bucket": bucket, "next_allowed_at": at.isoformat()},
    )


def rate_limit_hit(*, bucket: str, user: Any, now: float | None = None) -> int:
    """Count one request of `user` in `bucket`; raise RateLimited (429) when the last hour is full.

    Call it only once the request is known to be the user's own and new work: after the CSRF check and
    after an idempotent replay was ruled out (a forged or retried request must not spend the budget).
    A refused request is not counted. Returns how many requests remain in the window.
    """
    count = _slide(bucket=bucket, user=user, now=time.time() if now is None else now, add=True)
    return _limit(bucket) - count


def rate_limit_check(*, bucket: str, user: Any, now: float | None = None) -> None:
    """Raise RateLimited if `user` has already used up `bucket` in the last hour, without counting anything.

    Lets a guard refuse a blocked user before reading a request body, and the review screens refuse before
    a decision that is then counted by `rate_limit_record` only when it was accepted.
    """
    _slide(bucket=bucket, user=user, now=time.time() if now is None else now, add=False)


def rate_limit_record(*, bucket: str, user: Any, now: float | None = None) -> None:
    """Count one accepted request (checked before with `rate_limit_check`); never refuses."""
    now = time.time() if now is None else now
    try:
        with django_rq.get_connection("default").pipeline(transaction=True) as pipe:
            pipe.zadd(_key(bucket, user.pk), {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.expire(_key(bucket, user.pk), WINDOW_SECONDS + 60)
            pipe.execute()
    except redis.exceptions.RedisError as exc:
        raise _redis_down(bucket) from exc


def rate_limit_reset(*, bucket: str, user: Any) -> None:
    """Forget a user's counter for the current window (ops: lift a block early)."""
    django_rq.get_connection("default").delete(_key(bucket, user.pk))
