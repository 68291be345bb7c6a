# Airlock production image: gunicorn web (default command, static files served by WhiteNoise), RQ workers
# and the cron scheduler (see docker-compose.yml). Build: docker build -t airlock .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    STATIC_ROOT=/srv/static \
    MEDIA_ROOT=/srv/media \
    AIRLOCK_VAR_DIR=/srv/var

WORKDIR /app

RUN useradd --system --create-home --home-dir /home/airlock --uid 10001 airlock \
    && mkdir -p /srv/static /srv/media /srv/var /srv/metrics \
    && chown airlock:airlock /srv/static /srv/media /srv/var /srv/metrics

# Dependencies first, from the production lock file alone (exact versions, every wheel's hash checked;
# no test tools, no embedded Postgres/Redis), so code changes don't re-download them.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# Only the application (no .venv, var/ or tests from a developer's checkout end up in the image).
COPY manage.py ./
COPY config ./config
COPY audit ./audit
COPY formats ./formats
COPY imports ./imports
COPY staging ./staging
COPY templates ./templates
COPY static ./static
# The application runs from /app (the working directory); it is not installed as a package. The settings
# refuse to load without a SECRET_KEY: collectstatic gets a throw-away one (not kept in the image).
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && chown -R airlock:airlock /srv/static

USER airlock
EXPOSE 8000

# The same command as `make run`'s web server; its settings (bind, workers, threads, timeouts) are in
# config/gunicorn.py and read from the environment.
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
