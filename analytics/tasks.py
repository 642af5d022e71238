"""Background tasks of the analytics app."""

import datetime

from django.utils import timezone

from accounts.models import User
from analytics.selectors import report_hosts
from analytics.services import host_report_email, host_report_generate, market_snapshots_refresh
from jobs.priorities import Priority
from jobs.registry import job
from jobs.services import enqueue


@job(priority=Priority.LOW, max_attempts=3, timeout=900)
def refresh_market_data() -> str:
    result = market_snapshots_refresh(today=timezone.localdate())
    return f"{len(result.refreshed)} cities refreshed, {len(result.removed)} removed"


@job(priority=Priority.NORMAL, max_attempts=3, timeout=300)
def generate_host_reports(day: str | None = None) -> str:
    """Yesterday's report for every active host, one job per host so each retries alone."""
    report_day = datetime.date.fromisoformat(day) if day else timezone.localdate() - datetime.timedelta(days=1)
    count = 0
    for host_id in report_hosts().values_list("pk", flat=True).iterator(chunk_size=1000):
        enqueue(
            generate_host_report,
            host_id,
            report_day.isoformat(),
            dedupe_key=f"host-report:{host_id}:{report_day.isoformat()}",
        )
        count += 1
    return f"{count} host report job(s) queued for {report_day.isoformat()}"


@job(priority=Priority.NORMAL, max_attempts=6, timeout=120, backoff_base_s=60, subject="host")
def generate_host_report(host_id: int, day: str) -> str:
    host = User.objects.filter(pk=host_id, is_host=True).first()
    if host is None:
        return "skipped: no such host"
    report, created = host_report_generate(host=host, day=datetime.date.fromisoformat(day))
    emailed = host_report_email(report=report)
    return f"report {'created' if created else 'existed'}, email {'sent' if emailed else 'already sent'}"
