"""Background tasks of the caching app."""

import logging

from caching.redis import is_redis
from caching.warming import cache_warm
from jobs.models import JobRecord
from jobs.priorities import Priority
from jobs.registry import job
from jobs.services import enqueue

logger = logging.getLogger(__name__)

WARM_DEDUPE_KEY = "caching:warm"
# Without REDIS_URL each process has its own local-memory cache: a worker (or a command) that
# warms it fills memory no web process reads.
LOCAL_CACHE_NOTE = "the local-memory cache is private to each process, so only this one would be warm (set REDIS_URL)"


# One attempt: a failed run is retried by the next scheduled one (jobs/schedules.py, every
# 15 minutes). Targets that fail one by one are logged; the job fails only if the run does.
@job(priority=Priority.LOW, max_attempts=1, timeout=600)
def warm_cache_task() -> str:
    if not is_redis():
        return f"skipped: {LOCAL_CACHE_NOTE}"
    report = cache_warm(dry_run=False, progress=logger.debug)
    for result in report.failed:
        logger.warning("cache warming: %s failed: %s", result.target.describe(), result.detail)
    return report.summary()


def warm_cache_enqueue() -> JobRecord:
    """Queue one warming run; while one is already queued or running, that one is returned."""
    return enqueue(warm_cache_task, dedupe_key=WARM_DEDUPE_KEY)
