"""The RQ worker class: forked work horses never share the parent's database connection."""

from __future__ import annotations

import os
import signal
from typing import Any

from django.db import connections
from rq.worker import Worker

_stop_requested = False


def stop_requested() -> bool:
    """True in a work horse once SIGTERM asked it to stop: long jobs end after their current batch."""
    return _stop_requested


def _request_stop(signum: int, frame: Any) -> None:
    global _stop_requested
    _stop_requested = True


class AirlockWorker(Worker):
    """Closes Django's connections before each fork and after each job (no shared or leaked sockets)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from imports.warmup import warm_up

        warm_up()  # horses inherit the imported modules and URLconf instead of loading them per job

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        # A forked child would inherit the parent's open socket; two processes on one Postgres
        # connection corrupt each other's protocol state.
        connections.close_all()
        super().fork_work_horse(job, queue)

    def setup_work_horse_signals(self) -> None:
        # RQ's horse dies on SIGTERM (SIG_DFL), and a service manager signals the whole process group:
        # instead, finish the batch in progress (its transaction commits), then return; the parent's
        # warm shutdown waits for that. The reconciler resumes the rest of the file later.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _request_stop)

    def handle_warm_shutdown_request(self) -> None:
        # The horse runs in its own process group (RQ calls setpgrp), so a `kill <worker pid>` never
        # reaches it: pass the request on, so it stops after its current batch instead of the whole job.
        super().handle_warm_shutdown_request()
        if getattr(self, "horse_pid", 0):
            try:
                os.kill(self.horse_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # the horse has just finished

    def perform_job(self, job: Any, queue: Any, execution: Any = None, **kwargs: Any) -> bool:
        try:
            return super().perform_job(job, queue, execution, **kwargs)
        finally:
            connections.close_all()
