"""Deployment settings read from the environment refuse values they do not understand, with the variable's
name in the error, and nothing starts without a SECRET_KEY."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env

ROOT = Path(__file__).resolve().parent.parent


# -- settings that refuse what they do not understand -----------------------------------------------


@pytest.mark.parametrize("value", ["flase", "2", "yes please", "enabled"])
def test_a_yes_no_setting_refuses_a_value_it_does_not_understand(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIRLOCK_FAST_PATH", value)
    with pytest.raises(ImproperlyConfigured, match=rf"AIRLOCK_FAST_PATH='{re.escape(value)}' is not valid"):
        env.env_bool("AIRLOCK_FAST_PATH", True)


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), (" TRUE ", True), ("on", True), ("No", False), ("0", False)]
)
def test_a_yes_no_setting_understands_the_usual_words(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("AIRLOCK_FAST_PATH", value)
    assert env.env_bool("AIRLOCK_FAST_PATH", not expected) is expected


@pytest.mark.parametrize("value", ["10k", "1.5", "0", "-3", "ten"])
def test_a_number_setting_refuses_what_is_not_a_whole_number_in_range(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AIRLOCK_BATCH_SIZE", value)
    with pytest.raises(ImproperlyConfigured, match="AIRLOCK_BATCH_SIZE="):
        env.env_int("AIRLOCK_BATCH_SIZE", 1000, minimum=1)


def test_list_float_and_choice_settings_refuse_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_JOB_RETRY_INTERVALS", "10,soon")
    monkeypatch.setenv("CLAMAV_TIMEOUT", "nan")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ImproperlyConfigured, match="AIRLOCK_JOB_RETRY_INTERVALS"):
        env.env_int_list("AIRLOCK_JOB_RETRY_INTERVALS", "10,60", minimum=1)
    with pytest.raises(ImproperlyConfigured, match="CLAMAV_TIMEOUT"):
        env.env_float("CLAMAV_TIMEOUT", 60.0)
    with pytest.raises(ImproperlyConfigured, match="LOG_LEVEL"):
        env.env_choice("LOG_LEVEL", "info", ("debug", "info"))


def test_unset_and_empty_settings_take_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_BATCH_SIZE", "")
    monkeypatch.delenv("AIRLOCK_FAST_PATH", raising=False)
    assert env.env_int("AIRLOCK_BATCH_SIZE", 1000, minimum=1) == 1000
    assert env.env_bool("AIRLOCK_FAST_PATH", True) is True


def start_django(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess:
    """`manage.py check` in a fresh process with a production-like environment and an empty var/."""
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "AIRLOCK_SECURE"}}
    base.update({"AIRLOCK_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "config.settings"})
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **environment},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_setting_it_does_not_understand_stops_the_start_up_with_the_variables_name(tmp_path: Path) -> None:
    result = start_django(tmp_path, SECRET_KEY="x" * 60, DEBUG="flase")
    assert result.returncode != 0
    assert "DEBUG='flase' is not valid" in result.stderr


@pytest.mark.parametrize("debug", ["0", "1"])
def test_without_a_secret_key_nothing_starts_and_the_error_says_why(tmp_path: Path, debug: str) -> None:
    result = start_django(tmp_path, DEBUG=debug)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    web = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "SECRET_KEY"} | {"AIRLOCK_VAR_DIR": str(tmp_path / "v")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert web.returncode != 0 and "SECRET_KEY is not set" in web.stderr


def test_local_runs_use_the_random_key_kept_in_var(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "secret-key"
    subprocess.run(
        [sys.executable, "-c", "from config import localstack; localstack.ensure_local_secret_key()"],
        cwd=ROOT,
        env={**os.environ, "AIRLOCK_VAR_DIR": str(tmp_path / "var")},
        check=True,
        timeout=120,
    )
    key = key_file.read_text().strip()
    assert len(key) >= 50 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert start_django(tmp_path).returncode == 0  # no SECRET_KEY in the environment: the file's key
