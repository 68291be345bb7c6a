"""`manage.py airlock_cron config/cron.py`: django-rq's cron scheduler, which also evaluates the alert rules.

The periodic jobs of config/cron.py are enqueued as with `manage.py rqcron` and run by the workers. The alert
rules are evaluated here, in the scheduler's own process, every AIRLOCK_ALERT_EVALUATE_SECONDS: an alert about
workers must not wait in a queue for a worker to run it ("no live worker" could never fire). A failing
evaluation (database away) is logged and tried again next time; it never stops the scheduler.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections
from django_rq.cron import DjangoCronScheduler
from rq.cron import CronJob

from imports.monitoring.alerts import alerts_evaluate

log = logging.getLogger(__name__)


class AlertingCronScheduler(DjangoCronScheduler):
    """Enqueues the cron jobs and, every EVALUATE_SECONDS, evaluates the alert rules in-process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.next_evaluation = time.monotonic()

    def enqueue_jobs(self) -> list[CronJob]:
        if time.monotonic() >= self.next_evaluation:
            self.next_evaluation = time.monotonic() + settings.AIRLOCK_ALERTS["EVALUATE_SECONDS"]
            self.evaluate_alerts()
        return super().enqueue_jobs()

    def evaluate_alerts(self) -> None:
        try:
            transitions = alerts_evaluate()
        except Exception:  # noqa: BLE001 - the scheduler must keep enqueuing the other jobs
            log.exception("alert evaluation failed; trying again in %s s", settings.AIRLOCK_ALERTS["EVALUATE_SECONDS"])
            connections.close_all()  # a broken connection is reopened at the next evaluation
            return
        for transition in transitions:
            log.warning("alert %s", transition)

    def calculate_sleep_interval(self) -> float:
        until_evaluation = max(self.next_evaluation - time.monotonic(), 0.0)
        return min(super().calculate_sleep_interval(), until_evaluation)


class Command(BaseCommand):
    help = "Run the cron scheduler (the jobs of a config file, like rqcron) and evaluate the alert rules."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("config_path", help="the cron configuration, e.g. config/cron.py")
        parser.add_argument("--logging-level", "-l", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    def handle(self, *args: Any, **options: Any) -> None:
        scheduler = AlertingCronScheduler(logging_level=getattr(logging, options["logging_level"]))
        scheduler.load_config_from_file(options["config_path"])
        self.stdout.write(f"Starting the cron scheduler with {len(scheduler.get_jobs())} jobs and the alert rules...")
        try:
            scheduler.start()
        except KeyboardInterrupt:
            sys.exit(0)
