# Staybase API image. The same image runs the job worker: `python manage.py qcluster`.
# Needs DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS at run time (see README.md);
# run `python manage.py migrate` once per release before starting new containers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_ENV=production

RUN groupadd --system --gid 10001 staybase \
    && useradd --system --uid 10001 --gid staybase --no-create-home --shell /usr/sbin/nologin staybase

WORKDIR /app

# Dependencies first so the layer is cached until requirements.txt changes.
# psycopg[binary], hiredis and pillow ship manylinux wheels: no compiler needed.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# Code and static files stay owned by root (read-only to the app); only media is writable.
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-build-placeholder-not-used-at-runtime \
    DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/media \
    && chown staybase:staybase /app/media

USER staybase
EXPOSE 8000

# Liveness: /health/ touches no dependency and is answered ahead of host validation and the
# HTTPS redirect (observability.middleware.ProbeMiddleware), so the probe needs no headers.
# Orchestrators should route traffic on /health/ready/ (database, Redis, job broker,
# migrations, disk; 503 when not ready).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health/', timeout=4)"

# config/gunicorn.py: sync workers (WEB_CONCURRENCY, default 3; on this 2-core machine sync
# workers served about 4x the requests of gunicorn's Uvicorn worker for the same sync Django
# views, and CONN_MAX_AGE with ASGI exhausted PostgreSQL connections), worker recycling with
# jitter, Prometheus multiprocess metrics, logs in the app's format (JSON in production).
CMD ["gunicorn", "-c", "config/gunicorn.py", "--no-control-socket", "config.wsgi:application"]

# Real-time socket process (README: Real-time): the same image with another command, on its
# own port behind the load balancer's /api/v1/ws/ route (same origin as the API):
#   command: ["python", "manage.py", "runsockets", "--host", "0.0.0.0", "--port", "8001"]
#   liveness  http://127.0.0.1:8001/health/
#   readiness http://127.0.0.1:8001/health/ready/ (adds the channel layer check)
# SIGTERM: clients get {"type": "reconnect"} and close 1012, then the process exits; give it
# 15 s (terminationGracePeriodSeconds / stop_grace_period).
