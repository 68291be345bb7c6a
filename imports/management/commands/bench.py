"""`manage.py bench [--quick]`: the import benchmark on a dedicated database, printed as one table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.paths import VAR_DIR
from imports.bench.runner import SCENARIO_GROUPS

ROOT = Path(__file__).resolve().parents[3]
PRESETS = {
    # rows per big scenario, django-import-export slice, files x rows in one request, memory-test file
    # (on 2 CPUs: ~12 min, more with --full; about twice that on a machine whose COPY is half as fast)
    "default": {"rows": 1_000_000, "die_rows": 20_000, "files": 300, "file_rows": 1_000, "big_mb": 256},
    "full": {"rows": 1_000_000, "die_rows": 20_000, "files": 300, "file_rows": 1_000, "big_mb": 1024},
    "quick": {"rows": 100_000, "die_rows": 5_000, "files": 300, "file_rows": 200, "big_mb": 64},
}


class Command(BaseCommand):
    help = "Benchmark the import pipeline against Postgres's own COPY and django-import-export."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quick", action="store_true", help="smaller sizes (~5 minutes)")
        parser.add_argument("--full", action="store_true", help="the default sizes, a 1 GB memory-test file (longer)")
        parser.add_argument("--rows", type=int, help="rows of the big single-file scenarios")
        parser.add_argument("--die-rows", type=int, help="rows of the django-import-export comparison")
        parser.add_argument("--files", type=int, help="files in the one-request scenario")
        parser.add_argument("--file-rows", type=int, help="rows per file in the one-request scenario")
        parser.add_argument("--big-mb", type=int, help="size of the worker-memory file, MB")
        parser.add_argument(
            "--repeat",
            type=int,
            default=3,
            help="runs of each scenario with a goal (staging, migration, the approved files) and of the baseline COPY; "
            "the fastest is its row",
        )
        parser.add_argument("--database", default="airlock_bench", help="bench database (dropped and re-created)")
        parser.add_argument("--redis-db", type=int, default=13, help="bench Redis database number (flushed)")
        parser.add_argument(
            "--only",
            default="",
            help="comma-separated scenario groups to run (baseline and staging always run): "
            + ", ".join(SCENARIO_GROUPS),
        )
        parser.add_argument("--inner", action="store_true", help="internal: run the scenarios here")

    def handle(self, *args: Any, **options: Any) -> None:
        preset = dict(PRESETS["quick" if options["quick"] else "full" if options["full"] else "default"])
        for key in ("rows", "die_rows", "files", "file_rows", "big_mb"):
            if options[key] is not None:
                preset[key] = options[key]
        only = frozenset(name.strip() for name in options["only"].split(",") if name.strip())
        if only - set(SCENARIO_GROUPS):
            raise CommandError(f"--only: unknown scenario group(s) {', '.join(sorted(only - set(SCENARIO_GROUPS)))}")
        if options["repeat"] < 1:
            raise CommandError("--repeat: at least 1")
        if options["inner"]:
            self._inner(preset, VAR_DIR / options["database"], only, options["repeat"])
            return
        self._outer(preset, options)

    def _outer(self, preset: dict[str, int], options: dict[str, Any]) -> None:
        """Re-create the bench database, migrate it and run the scenarios in a child on it."""
        db = settings.DATABASES["default"]
        name = options["database"]
        if name == db["NAME"]:
            raise CommandError("The bench database must not be the product database.")
        admin = psycopg.connect(
            dbname="postgres",
            user=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            autocommit=True,
        )
        with admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        workdir = VAR_DIR / name
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(db, name),
            "REDIS_URL": _redis_url(settings.REDIS_URL, options["redis_db"]),
            "MEDIA_ROOT": str(workdir / "media"),
            # The memory test uploads a file far above the product's default per-file limit.
            "AIRLOCK_MAX_FILE_BYTES": str(max(preset["big_mb"] + 64, 100) * 2**20),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
        args = [
            *manage,
            "bench",
            "--inner",
            f"--database={name}",
            *[f"--{k.replace('_', '-')}={v}" for k, v in preset.items()],
            f"--only={options['only']}",
            f"--repeat={options['repeat']}",
        ]
        # A run stores ~2.6 GB of uploads (its 1M-row files, the memory-test file, 900 small files). The previous
        # run's are orphans of the database dropped above, and this run's are deleted once its table is printed:
        # kept, they fill a disk within a few dozen runs.
        self._remove_uploads(workdir / "media")
        try:
            status = subprocess.run(args, cwd=ROOT, env=env).returncode
        finally:
            self._remove_uploads(workdir / "media")
        if status:
            raise CommandError(f"the benchmark failed (exit {status}); logs in {workdir}")

    def _remove_uploads(self, media: Path) -> None:
        """Delete the bench's stored uploads, saying how much was freed."""
        if not media.exists():
            return
        size = sum(path.stat().st_size for path in media.rglob("*") if path.is_file())
        shutil.rmtree(media)
        self.stderr.write(f"removed the bench's stored uploads ({size / 2**20:,.0f} MB) from {media}")

    def _inner(self, preset: dict[str, int], workdir: Path, only: frozenset[str], repeat: int) -> None:
        import django_rq

        from imports.bench import runner

        django_rq.get_connection("default").flushdb()
        opts = runner.Options(
            rows=preset["rows"],
            die_rows=preset["die_rows"],
            files=preset["files"],
            file_rows=preset["file_rows"],
            big_bytes=preset["big_mb"] * 2**20,
            workdir=workdir,
            only=only,
            repeat=repeat,
            log=lambda text: self.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}"),
        )
        started = time.perf_counter()
        results = runner.run(opts)
        self.stdout.write(runner.table(results))
        self.stdout.write(f"\n{runner.settings_summary()}; total {time.perf_counter() - started:.0f}s")


def _database_url(db: dict[str, Any], name: str) -> str:
    auth = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = str(db["HOST"] or "")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{name}?host={host}&port={db['PORT'] or 5432}"
    return f"postgresql://{auth}@{host or 'localhost'}:{db['PORT'] or 5432}/{name}"


def _redis_url(url: str, number: int) -> str:
    if url.startswith("unix://"):
        base = url.split("?", 1)[0]
        return f"{base}?db={number}"
    head, _, _ = url.rpartition("/") if url.count("/") > 2 else (url, "", "")
    return f"{head}/{number}"
