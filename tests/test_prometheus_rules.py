"""deploy/prometheus: the shipped rules and scrape config are valid (promtool) and match the built-in alerts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (Debian: apt-get install prometheus): the rules were not checked by it"
        print(reason)
        pytest.skip(reason)
    return path


def rules() -> dict[str, dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_the_rules_use_the_same_thresholds_as_the_built_in_alerts() -> None:
    conf = settings.AIRLOCK_ALERTS
    shipped = rules()
    assert f"> {conf['ERROR_RATE']:g}" in shipped["AirlockErrorRateHigh"]["expr"]
    assert f"[{conf['ERROR_WINDOW_MINUTES'] // 60}h]" in shipped["AirlockErrorRateHigh"]["expr"]
    assert shipped["AirlockStagingBacklog"]["expr"] == f"airlock_staging_backlog_rows > {conf['BACKLOG_ROWS']}"
    pending_seconds = int(conf["PENDING_FORMAT_HOURS"] * 3600)
    assert (
        shipped["AirlockFormatPendingTooLong"]["expr"]
        == f"airlock_formats_pending_oldest_age_seconds > {pending_seconds}"
    )
    assert f"[{conf['MIGRATION_FAILURE_WINDOW_MINUTES'] // 60}h]" in shipped["AirlockMigrationFailures"]["expr"]
    assert shipped["AirlockQueueTooLong"]["expr"] == f"airlock_queue_length > {conf['QUEUE_LENGTH']}"
    assert shipped["AirlockQueueTooLong"]["for"] == f"{conf['QUEUE_MINUTES']:g}m"
    assert "airlock_workers_alive == 0" in shipped["AirlockNoWorker"]["expr"]


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([tool, "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS, capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr


def test_promtool_accepts_the_example_scrape_config(tmp_path: Path) -> None:
    tool = promtool()
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    (tmp_path / "airlock-metrics-token").write_text("token\n")  # the file the config names
    check = subprocess.run([tool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
