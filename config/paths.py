"""Filesystem locations shared by settings and the local-services launcher (no side effects)."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AIRLOCK_VAR_DIR", BASE_DIR / "var")).resolve()
RUN_DIR = VAR_DIR / "run"
LOCAL_PG_PORT = 54329


def local_database_url(name: str = "airlock") -> str:
    """The project-local Postgres started by config.localstack (unix socket under var/run)."""
    return f"postgresql://airlock@/{name}?host={RUN_DIR}&port={LOCAL_PG_PORT}"


def local_redis_url(db: int = 0) -> str:
    """The project-local Redis started by config.localstack (unix socket under var/run)."""
    return f"unix://{RUN_DIR}/redis.sock?db={db}"


SECRET_KEY_FILE = VAR_DIR / "secret-key"


def local_secret_key() -> str:
    """The random SECRET_KEY `make run` / `make test` keep in var/secret-key for local use ("" if none)."""
    try:
        return SECRET_KEY_FILE.read_text().strip()
    except FileNotFoundError:
        return ""
