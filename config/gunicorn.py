"""gunicorn's settings, the same wherever the web server runs: `gunicorn -c config/gunicorn.py config.wsgi`
(the Docker image's command, hence docker-compose's web service, and `make run`).

Environment (see the README's configuration table): GUNICORN_BIND (default 0.0.0.0:$PORT, PORT default
8000), WEB_CONCURRENCY (worker processes, default 2), GUNICORN_THREADS (per process, default 4),
GUNICORN_TIMEOUT (s, default 120), FORWARDED_ALLOW_IPS (proxies whose X-Forwarded-* headers are trusted,
default 127.0.0.1).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from prometheus_client import multiprocess

from config.env import env_int, env_str

bind = env_str("GUNICORN_BIND") or f"0.0.0.0:{env_int('PORT', 8000, minimum=1)}"
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
# Uploads of hundreds of files are read in the request; the limits are enforced by Django.
timeout = env_int("GUNICORN_TIMEOUT", 120, minimum=1)
graceful_timeout = 30
forwarded_allow_ips = env_str("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
# A worker is replaced after this many requests (plus jitter, so they do not all restart at once): a slow
# leak in a long-lived process cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn worker exited: prometheus-client's multiprocess mode drops its live gauge files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Files are named by host and pid (imports/monitoring/metrics.py: _process_identifier).
        multiprocess.mark_process_dead(f"{socket.gethostname()}-{worker.pid}")
