"""gunicorn settings for Staybase: ``gunicorn -c config/gunicorn.py config.wsgi:application``.

Used by the Dockerfile and bench/. Command-line flags still override what is set here.

Metrics under several workers: each worker is its own process with its own counters, and
a scrape reaches one of them. prometheus_client's multiprocess mode has every worker write
its metrics to files in ``PROMETHEUS_MULTIPROC_DIR``; ``/metrics`` (in whichever worker
answers) adds them up. The directory must be set before the app imports prometheus_client,
which is why it is set here, in the master, before any worker forks; it is emptied at start
(files of a previous run would add old counts) and ``child_exit`` folds a dead worker's
counters into archive files (observability/multiprocess.py) and drops its live gauges.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

_created_multiproc_dir = False
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="staybase-metrics-")
    _created_multiproc_dir = True
MULTIPROC_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# Sync workers: on a 2-core machine they served about 4x the requests of gunicorn's
# Uvicorn worker for the same sync Django views (see the Dockerfile).
worker_class = "sync"
timeout = 30
graceful_timeout = 20
# Recycle workers so slow leaks cannot accumulate; jitter so they never restart all at once.
# A new worker imports the app again (about 0.5 s of CPU). Recycling every 1,000 requests,
# a worker serving ~450 cached requests/s restarted every 2 s: 2.3 instead of 1.6 ms of CPU
# per request, 21-34 % fewer requests/s and p99 600 instead of 29 ms (bench/run.py --variant
# recycle1000:GUNICORN_MAX_REQUESTS=1000 --variant recycle20000:GUNICORN_MAX_REQUESTS=20000).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
# gunicorn answers a request line over its limit (4,094 by default) with an HTML 414 the app never
# sees; 8,190 is its largest bounded limit, and what nginx's default buffers (8k) let through.
# Below it, a long query (a fuzzer's, or many filters) gets the API's own JSON answer.
limit_request_line = 8190
# The app writes one access line per request itself, with the request id (staybase.request).
accesslog = None
errorlog = "-"

# gunicorn's own lines (worker boots, timeouts) in the app's format: the app's LOGGING itself. Read
# here, after PROMETHEUS_MULTIPROC_DIR is set; a settings error stops the master before any fork.
from config.settings import LOGGING  # noqa: E402

logconfig_dict = LOGGING


def on_starting(server: Any) -> None:
    MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
    for stale in MULTIPROC_DIR.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    # Its counters join the archive files, so recycled workers do not pile up files.
    from observability.multiprocess import archive_dead_process

    archive_dead_process(worker.pid, MULTIPROC_DIR)


def worker_exit(server: Any, worker: Any) -> None:
    # Buffered per-endpoint stats of a recycled worker reach Redis instead of vanishing.
    from django.conf import settings

    if settings.configured:
        from observability.perfstats import perf_store

        perf_store().flush()


def on_exit(server: Any) -> None:
    if _created_multiproc_dir:
        shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)
