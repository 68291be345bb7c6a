"""The RQ worker class: forked work horses never share the parent's database connection."""

from __future__ import annotations

from typing import Any

from django.db import connections
from rq.worker import Worker


class AirlockWorker(Worker):
    """Closes Django's connections before each fork and after each job (no shared or leaked sockets)."""

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        # A forked child would inherit the parent's open socket; two processes on one Postgres
        # connection corrupt each other's protocol state.
        connections.close_all()
        super().fork_work_horse(job, queue)

    def perform_job(self, job: Any, queue: Any, execution: Any = None, **kwargs: Any) -> bool:
        try:
            return super().perform_job(job, queue, execution, **kwargs)
        finally:
            connections.close_all()
