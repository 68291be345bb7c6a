"""How Airlock is deployed: every setting documented and passed through by docker-compose, one web command
everywhere, settings that refuse values they do not understand, no start-up without a SECRET_KEY."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from config import env, run

ROOT = Path(__file__).resolve().parent.parent
# Settings of a developer's machine, not of a deployment (the README marks them *local*), and those the
# container fixes itself (its paths, its bind address).
NOT_FOR_COMPOSE = {
    "AIRLOCK_VAR_DIR": "local servers' directory",
    "AIRLOCK_PG_BIN": "local Postgres binaries",
    "AIRLOCK_REDIS_SERVER": "local Redis binary",
    "AIRLOCK_WEED": "local S3 server binary",
    "AIRLOCK_TEST_S3_URL": "tests only",
    "AIRLOCK_DEMO_ADMIN": "make run's demo admin",
    "AIRLOCK_TEST_DB": "tests only",
    "AIRLOCK_TEST_REDIS_DB": "tests only",
    "GUNICORN_BIND": "the container binds 0.0.0.0:8000",
    "PORT": "make run's port (the container uses 8000)",
}


def readme_settings() -> set[str]:
    """The variables named in the first column of the README's configuration table."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Configuration") : text.index("## ", text.index("## Configuration") + 3)]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split(" | ")[0]))
    return names


def settings_read_by_the_code() -> set[str]:
    """Every environment variable config/ reads (env_* helpers and os.environ.get)."""
    names: set[str] = set()
    for path in (ROOT / "config").glob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r"(?:env_[a-z_]+|os\.environ\.get)\(\s*['\"]([A-Z][A-Z0-9_]+)['\"]", text))
    return names - {"DJANGO_SETTINGS_MODULE"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_setting_the_code_reads_is_in_the_readme_configuration_table() -> None:
    missing = sorted(settings_read_by_the_code() - readme_settings())
    assert not missing, f"read by config/ but not documented in the README's configuration table: {missing}"
    assert "AIRLOCK_SERVE_STATIC" not in readme_settings()


def test_docker_compose_passes_every_documented_deployment_setting_through() -> None:
    passed = set(compose()["x-app"]["environment"])
    missing = sorted(readme_settings() - passed - set(NOT_FOR_COMPOSE))
    assert not missing, f"documented but not passed to the containers by docker-compose.yml: {missing}"
    assert not (passed & set(NOT_FOR_COMPOSE)), "local settings have no place in a deployment"


def dockerfile_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    return json.loads(re.search(r"^CMD (\[.*\])\s*$", text, re.M).group(1))


def test_the_web_server_command_is_the_same_in_the_image_in_compose_and_in_make_run() -> None:
    web, worker, cron = run.Supervisor(8000).build_children()
    assert (
        dockerfile_command() == ["gunicorn", *web.args[3:]] == ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
    )
    services = compose()["services"]
    assert "command" not in services["web"], "compose's web must run the image's command"
    # python manage.py ... (compose) and sys.executable /path/to/manage.py ... (make run)
    assert services["worker"]["command"].split()[2:] == worker.args[2:]
    assert services["cron"]["command"].split()[2:] == cron.args[2:]


def test_compose_probes_the_web_for_liveness_only_and_runs_clamd_for_the_upload_scan() -> None:
    services = compose()["services"]
    probe = " ".join(services["web"]["healthcheck"]["test"])
    assert "/livez" in probe and "/healthz" not in probe and "/readyz" not in probe
    assert "clamd" in services and compose()["x-app"]["environment"]["CLAMAV_URL"] == "${CLAMAV_URL-clamd:3310}"
    assert "command" in services["worker"] and services["worker"]["restart"] == "unless-stopped"


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


def test_the_object_storage_override_gives_workers_no_volume_and_every_process_the_bucket() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: loader.construct_sequence(node))
    Loader.add_constructor("!override", lambda loader, node: loader.construct_sequence(node))
    override = yaml.load((ROOT / "deploy" / "compose.s3.yml").read_text(), Loader=Loader)  # noqa: S506
    services = override["services"]
    assert services["worker"]["volumes"] == []  # no shared disk: uploads are read from the bucket
    assert all(v != "media:/srv/media" for v in services["web"]["volumes"])
    documented = readme_settings()
    for name in ("migrate", "web", "worker", "cron"):
        env = services[name]["environment"]
        assert env["AIRLOCK_S3_BUCKET"] and env["AIRLOCK_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert set(env) - {"PROMETHEUS_MULTIPROC_DIR"} <= documented, set(env) - documented
    assert "storage_ready" in " ".join(services["migrate"]["command"])
    assert "minio" in services and services["minio"]["healthcheck"]
