"""`manage.py airlock_alerts`: the alert rules now (value, threshold, state) and the recent history."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from imports.models import Alert, AlertState
from imports.monitoring.alerts import alerts_evaluate, rules, snapshot_take


class Command(BaseCommand):
    help = "Show the alert rules' current state and recent alerts (--evaluate: run an evaluation first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--evaluate", action="store_true", help="evaluate the rules now (records, notifies)")
        parser.add_argument("--history", type=int, default=10, help="how many past alerts to list (default 10)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["evaluate"]:
            transitions = alerts_evaluate()
            self.stdout.write("Evaluated: " + (", ".join(transitions) if transitions else "no change"))
        snapshot = snapshot_take()
        open_alerts = {alert.rule: alert for alert in Alert.objects.filter(resolved_at__isnull=True)}
        self.stdout.write(f"{'rule':<20} {'state':<9} now")
        for rule in rules():
            check = rule.check(snapshot, settings.AIRLOCK_ALERTS)
            alert = open_alerts.get(rule.name)
            state = alert.state if alert else ("?" if check.holds is None else "ok")
            line = f"{rule.name:<20} {state:<9} {check.summary}"
            self.stdout.write(self.style.ERROR(line) if state == AlertState.FIRING else line)
        history = Alert.objects.exclude(state=AlertState.PENDING)[: options["history"]]
        self.stdout.write("")
        self.stdout.write("Recent alerts:" if history else "Recent alerts: none")
        for alert in history:
            until = f"resolved {alert.resolved_at:%Y-%m-%d %H:%M}" if alert.resolved_at else "still firing"
            self.stdout.write(f"  {alert.fired_at:%Y-%m-%d %H:%M} {alert.rule:<20} {until}: {alert.summary}")
