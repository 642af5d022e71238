"""Tasks of the jobs app itself: the daily cleanup and a no-op to check the pipeline."""

from jobs.cleanup import cleanup_run
from jobs.priorities import Priority
from jobs.registry import job


@job(priority=Priority.LOW, max_attempts=3, timeout=1800, backoff_base_s=300)
def cleanup() -> str:
    counts = cleanup_run()
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


@job(priority=Priority.NORMAL, max_attempts=1)
def noop(*args: object) -> None:
    """Does nothing: end-to-end checks and the benchmark measure the pipeline around it."""
