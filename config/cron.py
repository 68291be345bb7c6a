"""Periodic jobs, loaded by the cron scheduler: `python manage.py airlock_cron config/cron.py`.

airlock_cron is django-rq's rqcron scheduler that also evaluates the alert rules, in its own process, every
AIRLOCK_ALERT_EVALUATE_SECONDS (imports/management/commands/airlock_cron.py): not as a job here, since a job
needs a live worker and one rule is "no live worker".

rq's CronScheduler.load_config_from_file() imports this module, which records each job with
the module-level `rq.cron.register`; django_rq's DjangoCronScheduler then registers them
against the queues' Redis connection from settings.RQ_QUEUES. Cron strings are matched in the
scheduler's local time zone (UTC in our containers).
"""

from __future__ import annotations

from django.conf import settings
from rq import cron

from imports.jobs import tasks

# Re-enqueue work Postgres says is due but no job is running for (a lost job, a worker that died).
cron.register(tasks.reconcile_job, queue_name="default", interval=settings.AIRLOCK["RECONCILE_SECONDS"])

# Approval policy: pending formats waiting past escalate_after_hours are escalated to the approvers, once each.
cron.register(tasks.escalate_job, queue_name="default", interval=600)

# Retention: delete staged rows and uploads past AIRLOCK_RETENTION_DAYS, once a day at a quiet hour.
cron.register(tasks.cleanup_job, queue_name="default", cron="17 3 * * *")
