"""Loaded with `-p tests.bootstrap` before pytest-django reads the settings.

When DATABASE_URL / REDIS_URL are not set, it starts the project-local Postgres and Redis (as
`make run` does) and points the whole test session, and every process it starts, at them. Tests use
their own Redis database (15 by default) so a running `make run` worker never takes test jobs.
"""

from __future__ import annotations

import atexit
import os

from config import localstack
from config.paths import VAR_DIR, local_database_url, local_redis_url

_started = localstack.ensure_started()
atexit.register(localstack.stop, _started)

os.environ.setdefault("DATABASE_URL", local_database_url())
if not os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = local_redis_url(int(os.environ.get("AIRLOCK_TEST_REDIS_DB", "15")))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The suite runs with DEBUG off, as production does, over plain http (the HTTPS settings are tested in
# tests/security/test_deploy.py with production settings). SECRET_KEY: var/secret-key, made above.
os.environ.setdefault("AIRLOCK_SECURE", "0")
# Static files are collected once per session (tests/conftest.py), apart from make run's var/staticfiles.
os.environ.setdefault("STATIC_ROOT", str(VAR_DIR / "test-static"))
# The hourly upload/review rate limits (imports/guards/rate_limits.py) are tested in tests/security with explicit
# settings; every other test (and the e2e servers, which inherit this environment) must not trip them.
os.environ.setdefault("AIRLOCK_UPLOADS_PER_HOUR", "1000000")
os.environ.setdefault("AIRLOCK_REVIEWS_PER_HOUR", "1000000")
